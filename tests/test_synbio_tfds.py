"""The SynBio TFDS builder: array_record, read back through tfds.data_source without TensorFlow."""

import tensorflow_datasets as tfds

from data_gen.synbio import ATTRIBUTES, ByteTokenizer, Population, SynBio
from data_gen.tfds_synbio import SynBioConfig, data_source


def test_builder_writes_array_record_and_reads_back_in_person_order(tmp_path):
    source = data_source(str(tmp_path), num_people=30, seed=1)
    population = Population(30, seed=1)
    synbio = SynBio(population, ByteTokenizer(), seed=1)
    assert len(source) == 30
    for person in (0, 13, 29):
        example = source[person]
        assert example["person"] == person
        assert example["name"].decode() == population.name(person)
        assert example["biography"].decode() == synbio.render_text(person, 0)
        for a, attribute in enumerate(ATTRIBUTES):
            assert example[attribute].decode() == population.value(person, attribute)
            assert example[f"{attribute}_index"] == population.attributes[person, a]
    files = list(tmp_path.glob("synbio/n30_s1/1.0.0/*.array_record-*"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    assert len(data_source(str(tmp_path), num_people=30, seed=1)) == 30
    assert files[0].stat().st_mtime_ns == mtime  # prepared once, then reused


def test_tfds_data_source_by_registered_name(tmp_path):
    config = SynBioConfig(name="n12_s0", num_people=12, seed=0)
    source = tfds.data_source("synbio", split="train", data_dir=str(tmp_path), builder_kwargs={"config": config})
    assert len(source) == 12
    assert source[11]["name"].decode() == Population(12, seed=0).name(11)

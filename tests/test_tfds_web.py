"""The TFDS builder over a manual dir, read back without TensorFlow as the web corpus (data_gen.tfds_corpus)."""

import json
import sys
from pathlib import Path

import pytest

from data_gen.tfds_corpus import tfds_corpus
from data_gen.tfds_web import build_tfds
from tests.test_web import DOCS, write_fineweb_parquet


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    manual = tmp_path_factory.mktemp("manual")
    (manual / "data").mkdir()
    write_fineweb_parquet(manual / "data" / "000_00000.parquet", DOCS[:40])
    with open(manual / "extra.jsonl", "w") as f:
        for t in DOCS[40:]:
            f.write(json.dumps({"text": t}) + "\n")
    return build_tfds(manual, tmp_path_factory.mktemp("data") / "tfds")


def documents(builder) -> list[str]:
    """The web corpus tfds:mixlab_web_text of the config.data.dir that holds the builder's tfds/ directory."""
    return list(tfds_corpus("tfds:mixlab_web_text", Path(builder.data_dir).parents[2]).documents())


def test_builder_holds_every_document_without_tensorflow(builder):
    assert "tensorflow" not in sys.modules
    source = builder.as_data_source(split="train")
    assert len(source) == len(DOCS)
    assert sorted(documents(builder)) == sorted(DOCS)
    sources = {source[i]["source"].decode() for i in range(len(source))}
    assert sources == {"data/000_00000.parquet", "extra.jsonl"}


def test_rebuild_reuses_the_prepared_dataset(builder, tmp_path):
    again = build_tfds(tmp_path / "not-needed-once-prepared", Path(builder.data_dir).parents[1])
    assert again.data_dir == builder.data_dir and again.is_prepared()
    assert documents(again) == documents(builder)

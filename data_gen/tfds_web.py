"""A TensorFlow Datasets builder over a manual directory of web text (FineWeb-Edu parquet shards, jsonl(.gz), .txt).

It works without TensorFlow: the dataset is written as array_record files and read back with TFDS's random-access
data source (`builder.as_data_source()`), which needs only array_record. (`tfds.load` and `as_dataset` return
tf.data pipelines and therefore need TensorFlow.) Text features come back as UTF-8 bytes. Examples are keyed
"<relative file path>:<index>", so the content is a function of the manual directory alone; TFDS orders them by a
hash of the key. Training reads it as the web corpus through data_gen/tfds_corpus.py:

    build_tfds("/path/to/fineweb-edu/sample", "data/tfds")    # then --config.data.web=tfds:mixlab_web_text
"""

from __future__ import annotations

import os
from pathlib import Path

import tensorflow_datasets as tfds

from data_gen.web import list_files, read_documents


class MixlabWebText(tfds.core.GeneratorBasedBuilder):
    """Documents of the corpus files in the manual directory (one "train" split)."""

    VERSION = tfds.core.Version("1.0.0")
    # No checksums file: nothing is downloaded. (TFDS 4.9.10 would otherwise locate this module through the
    # `importlib_resources` backport, which it does not install on Python >= 3.9.)
    code_path = None
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put the corpus in the manual dir: parquet files with a `text` column (FineWeb-Edu's layout), jsonl(.gz) "
        "files of objects with a `text` field, or .txt files (one document each), in any subfolders."
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Local web text for mixlab (FineWeb-Edu shards or any text corpus).",
            features=tfds.features.FeaturesDict({"text": tfds.features.Text(), "source": tfds.features.Text()}),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(Path(dl_manager.manual_dir))}

    def _generate_examples(self, root: Path):
        for f in list_files(root):
            rel = f.relative_to(root).as_posix() if f != root else f.name
            for i, text in enumerate(read_documents(f)):
                yield f"{rel}:{i}", {"text": text, "source": rel}


def build_tfds(manual_dir: str | os.PathLike, data_dir: str | os.PathLike) -> MixlabWebText:
    """Prepare (once) the TFDS dataset of the files in manual_dir under data_dir, as array_record."""
    builder = MixlabWebText(data_dir=str(data_dir), file_format="array_record")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder

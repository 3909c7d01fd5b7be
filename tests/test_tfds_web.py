"""The TFDS builder over a manual dir, read back without TensorFlow, and fed to the token store."""

import json
import sys
from pathlib import Path

import pytest

from data_gen.tfds_web import build_tfds, tfds_documents
from data_gen.tokenizer import train_bpe
from data_gen.web import build_store
from tests.test_web import DOCS, write_fineweb_parquet


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    manual = tmp_path_factory.mktemp("manual")
    (manual / "data").mkdir()
    write_fineweb_parquet(manual / "data" / "000_00000.parquet", DOCS[:40])
    with open(manual / "extra.jsonl", "w") as f:
        for t in DOCS[40:]:
            f.write(json.dumps({"text": t}) + "\n")
    return build_tfds(manual, tmp_path_factory.mktemp("tfds"))


def test_builder_holds_every_document_without_tensorflow(builder):
    assert "tensorflow" not in sys.modules
    source = builder.as_data_source(split="train")
    assert len(source) == len(DOCS)
    assert sorted(tfds_documents(builder)) == sorted(DOCS)
    sources = {source[i]["source"].decode() for i in range(len(source))}
    assert sources == {"data/000_00000.parquet", "extra.jsonl"}


def test_rebuild_reuses_the_prepared_dataset(builder, tmp_path):
    again = build_tfds(tmp_path / "not-needed-once-prepared", Path(builder.data_dir).parents[1])
    assert list(tfds_documents(again)) == list(tfds_documents(builder))


def test_tfds_documents_feed_the_token_store(builder, tmp_path):
    tok = train_bpe(DOCS, 300, tmp_path / "tok.json")
    store = build_store(tfds_documents(builder), tok, tmp_path / "store", val_fraction=0.0)
    assert sorted(tok.decode(store.doc(i)) for i in range(store.num_docs)) == sorted(DOCS)

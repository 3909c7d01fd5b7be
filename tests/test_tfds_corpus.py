"""config.data.web=tfds:<name>: a prepared TFDS text data set under config.data.dir/tfds becomes the web corpus."""

import json
import subprocess
import sys

import pytest

from data_gen import prepare
from data_gen.tfds_corpus import tfds_corpus
from data_gen.tfds_web import build_tfds
from mixlab.config import base_config
from tests.test_web import DOCS, write_fineweb_parquet


@pytest.fixture(autouse=True)
def small_samples(monkeypatch):
    monkeypatch.setattr(prepare, "TOKENIZER_PEOPLE", 100)
    monkeypatch.setattr(prepare, "TOKENIZER_WEB_CHARS", 20_000)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """config.data.dir holding the TFDS data set mixlab_web_text (DOCS) in tfds/."""
    manual = tmp_path_factory.mktemp("manual")
    write_fineweb_parquet(manual / "000_00000.parquet", DOCS[:40])
    with open(manual / "extra.jsonl", "w") as f:
        for text in DOCS[40:]:
            f.write(json.dumps({"text": text}) + "\n")
    data_dir = tmp_path_factory.mktemp("data")
    build_tfds(manual, data_dir / "tfds")
    return data_dir


def data_cfg(data_dir, web: str):
    c = base_config().data
    c.dir, c.web, c.vocab_size, c.num_people = str(data_dir), web, 300, 20
    return c


def stored_documents(p) -> list[str]:
    stores = (p.web_train, p.web_val)
    return sorted(p.tokenizer.decode(s.doc(i)) for s in stores for i in range(s.num_docs))


def test_prepare_stores_exactly_the_data_sets_documents(data_dir):
    p = prepare.prepare(data_cfg(data_dir, "tfds:mixlab_web_text"))
    assert stored_documents(p) == sorted(DOCS)
    assert p.web_val.num_docs == 1
    assert p.web_train.directory.name.startswith("tfds-mixlab_web_text-1.0.0-train-")
    assert p.web_train.manifest["sources"]["name"] == "tfds:mixlab_web_text/1.0.0:train"
    assert "tensorflow" not in sys.modules


def test_an_unregistered_data_set_is_read_from_its_files(data_dir):
    """Any prepared data set, not only builders this process imported (here TFDS reads mixlab_web_text's files)."""
    code = (
        "import sys; from pathlib import Path; from data_gen.tfds_corpus import tfds_corpus; "
        f"c = tfds_corpus('tfds:mixlab_web_text', Path({str(data_dir)!r})); "
        "assert 'data_gen.tfds_web' not in sys.modules and 'tensorflow' not in sys.modules; "
        "print(sum(1 for _ in c.documents()), c.name)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(len(DOCS)), tfds_corpus("tfds:mixlab_web_text", data_dir).name]


def test_version_and_split_are_part_of_the_corpus_name(data_dir):
    full = tfds_corpus("tfds:mixlab_web_text", data_dir)
    assert tfds_corpus("tfds:mixlab_web_text:1.0.0:train", data_dir).name == full.name
    half = tfds_corpus("tfds:mixlab_web_text:train[:50%]", data_dir)
    assert half.name != full.name and "-train_50-" in half.name
    assert len(list(half.documents())) == len(DOCS) // 2
    p = prepare.prepare(data_cfg(data_dir, "tfds:mixlab_web_text:train[:50%]"))
    assert p.web_train.num_docs + p.web_val.num_docs == len(DOCS) // 2
    assert set(stored_documents(p)) < set(DOCS)


@pytest.mark.parametrize(
    "web, error, match",
    [
        ("tfds:no_such_set", FileNotFoundError, r"no prepared TFDS data set 'no_such_set' under .*/tfds"),
        ("tfds:mixlab_web_text:2.0.0", FileNotFoundError, r"'mixlab_web_text:2.0.0' under .*/tfds"),
        ("tfds:mnist", FileNotFoundError, r"no prepared TFDS data set 'mnist'"),
        ("tfds:mixlab_web_text:test", ValueError, r"cannot read mixlab_web_text/1.0.0 from .*Unknown split 'test'"),
        ("tfds:", ValueError, r"expected tfds:<name>"),
    ],
)
def test_bad_names_are_one_line_errors(data_dir, web, error, match):
    with pytest.raises(error, match=match) as caught:
        tfds_corpus(web, data_dir)
    assert "\n" not in str(caught.value)

"""prepare(config.data): builds tokenizer, stores, SynBio and eval set once, keyed by the inputs."""

import hashlib
import json

import numpy as np
import pytest

from data_gen import debian_docs, default_corpus, prepare
from data_gen.synbio import ATTRIBUTES
from data_gen.web import EmptyCorpusError
from mixlab.config import base_config

WORDS = "the of and to in is was for on that with as by at from his her an which or be are were".split()


@pytest.fixture(autouse=True)
def small_samples(monkeypatch):
    monkeypatch.setattr(prepare, "TOKENIZER_PEOPLE", 200)
    monkeypatch.setattr(prepare, "TOKENIZER_WEB_CHARS", 50_000)


@pytest.fixture()
def cfg(tmp_path):
    corpus = tmp_path / "web"
    corpus.mkdir()
    rng = np.random.default_rng(0)
    with open(corpus / "shard.jsonl", "w") as f:
        for i in range(120):
            words = " ".join(rng.choice(WORDS, rng.integers(20, 200)))
            f.write(json.dumps({"text": f"Page {i}. {words.capitalize()}."}) + "\n")
    c = base_config().data
    c.dir, c.web, c.vocab_size, c.num_people = str(tmp_path / "data"), str(corpus), 400, 60
    return c


def test_prepare_builds_everything_then_loads_it(cfg, tmp_path):
    p = prepare.prepare(cfg)
    assert p.tokenizer.num_tokens == 400 and p.tokenizer.vocab_size == 512
    assert p.tokenizer.path.parent.parent == tmp_path / "data" / "tokenizers"
    assert p.web_train.num_docs + p.web_val.num_docs == 120 and p.web_val.num_docs == 1
    assert p.web_train.manifest["tokenizer"]["fingerprint"] == p.tokenizer.fingerprint
    assert p.synbio.population.num_people == 60 and len(p.eval_set.person) == 60 * 5 * len(ATTRIBUTES)
    assert p.synbio.tokenizer is p.tokenizer
    stamps = {f: f.stat().st_mtime_ns for f in (tmp_path / "data").rglob("*") if f.is_file()}
    again = prepare.prepare(cfg)
    assert again.tokenizer.fingerprint == p.tokenizer.fingerprint
    assert {f: f.stat().st_mtime_ns for f in (tmp_path / "data").rglob("*") if f.is_file()} == stamps
    assert not [f for f in (tmp_path / "data").rglob(".*tmp*")]


def test_vocab_sizes_do_not_collide_and_a_tokenizer_file_loads(cfg, tmp_path):
    a = prepare.prepare(cfg)
    cfg.vocab_size = 300
    b = prepare.prepare(cfg)
    assert b.tokenizer.num_tokens == 300 and a.tokenizer.path != b.tokenizer.path
    assert b.web_train.directory != a.web_train.directory
    cfg.tokenizer = str(a.tokenizer.path)
    c = prepare.prepare(cfg)
    assert c.tokenizer.fingerprint == a.tokenizer.fingerprint and c.web_train.directory == a.web_train.directory


def test_knowledge_only_and_bad_web_settings(cfg, tmp_path):
    cfg.web = "none"
    p = prepare.prepare(cfg)
    assert p.web_train is None and p.web_val is None and p.tokenizer.num_tokens == 400
    cfg.web = str(tmp_path / "missing")
    expected = "expected 'default', 'debian-docs', 'synthetic', 'none', 'tfds:<name>' or a path"
    with pytest.raises(FileNotFoundError, match=expected):
        prepare.prepare(cfg)


def test_empty_corpus_is_a_clear_error(cfg, tmp_path):
    (tmp_path / "empty").mkdir()
    cfg.web = str(tmp_path / "empty")
    with pytest.raises(EmptyCorpusError, match="no corpus files"):
        prepare.prepare(cfg)
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "a.txt").write_text("  \n")
    cfg.web = str(tmp_path / "blank")
    with pytest.raises(EmptyCorpusError, match="no non-empty documents"):
        prepare.prepare(cfg)


def test_synthetic_web(cfg):
    cfg.web = "synthetic"
    cfg.synthetic = {"num_patterns": 500, "num_docs": 50, "facts_per_doc": 10, "key_syllables": 2}
    p = prepare.prepare(cfg)
    assert p.web_train.num_docs == 49 and "synthetic-" in str(p.web_train.directory)


def test_default_web_needs_no_apt_and_debian_docs_without_apt_names_the_alternatives(cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(debian_docs.shutil, "which", lambda name: None)
    cfg.web = "default"
    corpus = prepare.web_corpus(cfg, tmp_path / "data")
    assert hashlib.sha256(corpus.path.read_bytes()).hexdigest() == default_corpus.SUBSET_SHA256
    assert corpus.name == corpus.path.parent.name == f"debian-docs-subset-{default_corpus.corpus_key()}"
    cfg.web = "debian-docs"
    with pytest.raises(debian_docs.CorpusUnavailable, match="apt-get not found.*FineWeb-Edu parquet"):
        prepare.prepare(cfg)

"""The default web corpus: the shipped third of the Debian documentation, built with no apt, checked, rebuildable."""

import hashlib
import json
import lzma
import shutil
import subprocess

import pytest

from data_gen import debian_docs as dd
from data_gen import default_corpus as dc
from mixlab import train
from mixlab.config import ConfigError, base_config


def _no_apt(monkeypatch) -> None:
    """The pinned versions are gone and apt-get is missing; any subprocess fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"the default corpus ran a subprocess: {args}")

    monkeypatch.setattr(dd.shutil, "which", lambda name: None)
    monkeypatch.setattr(dd, "_apt_download", refuse)
    monkeypatch.setattr(subprocess, "run", refuse)


def test_default_corpus_builds_from_the_shipped_file_without_apt_byte_identically(tmp_path, monkeypatch):
    _no_apt(monkeypatch)
    a, b = dc.build_default_corpus(tmp_path / "a"), dc.build_default_corpus(tmp_path / "b")
    text = a.read_bytes()
    assert text == b.read_bytes() == lzma.decompress(dc.SUBSET_FILE.read_bytes())
    assert hashlib.sha256(text).hexdigest() == dc.SUBSET_SHA256
    assert a.parent.name == f"debian-docs-subset-{dc.corpus_key()}" and not (tmp_path / "a" / ".cache").exists()
    stamp = a.stat().st_mtime_ns
    assert dc.build_default_corpus(tmp_path / "a") == a and a.stat().st_mtime_ns == stamp


def test_the_manifest_names_the_text_used(tmp_path, monkeypatch):
    _no_apt(monkeypatch)
    path = dc.build_default_corpus(tmp_path)
    manifest = json.loads((path.parent / "manifest.json").read_text())
    docs = [json.loads(line) for line in path.read_text().splitlines()]
    assert manifest["docs_sha256"] == dc.SUBSET_SHA256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["source"] == {
        "file": "data_gen/corpus/default_docs.jsonl.xz",
        "xz_sha256": hashlib.sha256(dc.SUBSET_FILE.read_bytes()).hexdigest(),
    }
    assert [(p["name"], p["version"], p["deb_sha256"], p["license"], p["pinned"]) for p in manifest["packages"]] == [
        (p.name, p.version, p.sha256, p.license, True) for p in dd.PACKAGES
    ]
    assert manifest["docs"] == len(docs) == sum(p["docs"] for p in manifest["packages"])
    assert manifest["chars"] == sum(len(d["text"]) for d in docs) and manifest["bytes"] == path.stat().st_size
    assert manifest["full_corpus"]["key"] == dd.corpus_key()  # the pinned .debs and extractor it was cut from


def test_the_shipped_subset_is_the_selection_a_third_of_every_package(tmp_path, monkeypatch):
    _no_apt(monkeypatch)
    text, info = dc.read_shipped()
    docs = [json.loads(line) for line in text.splitlines()]
    assert all(dc.in_subset(d) for d in docs)
    for p in info["packages"]:
        mine = [d for d in docs if d["source"].startswith(p["name"] + "/")]
        assert len(mine) == p["docs"] and 0.28 < p["docs"] / p["full_docs"] < 0.39, p
    assert sum(p["docs"] for p in info["packages"]) == len(docs)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda raw: raw[:1000] + bytes([raw[1000] ^ 0xFF]) + raw[1001:], r"is damaged \(Corrupt input data\)"),
        (lambda raw: raw[: len(raw) // 2], r"is damaged \(Compressed data ended before the end-of-stream marker"),
        (lambda raw: lzma.compress(b'{"text": "other"}\n'), "is damaged: its text has sha256"),
        (None, "the default corpus is not installed: .* is missing"),
    ],
    ids=["flipped-byte", "truncated", "other-text", "missing"],
)
def test_a_damaged_shipped_file_is_a_one_line_error(tmp_path, monkeypatch, damage, message):
    shipped = tmp_path / "default_docs.jsonl.xz"
    if damage is not None:
        shipped.write_bytes(damage(dc.SUBSET_FILE.read_bytes()))
    monkeypatch.setattr(dc, "SUBSET_FILE", shipped)
    with pytest.raises(dd.CorpusUnavailable, match=message) as err:
        dc.build_default_corpus(tmp_path / "data")
    assert "\n" not in str(err.value) and "--build-subset" in str(err.value)
    assert not (tmp_path / "data" / "corpus").exists() or not list((tmp_path / "data" / "corpus").iterdir())
    config = base_config()
    config.data.dir = str(tmp_path / "data")
    with pytest.raises(ConfigError, match=f"^data.web='default': .*{message}"):
        train._prepare(config)  # mixlab.main prints a ConfigError as one line


@pytest.mark.parametrize("text, message", [("{", "default_docs.json is damaged"), ("{}", "describes another text")])
def test_a_bad_description_is_refused(tmp_path, monkeypatch, text, message):
    (tmp_path / "default_docs.json").write_text(text)
    monkeypatch.setattr(dc, "INFO_FILE", tmp_path / "default_docs.json")
    with pytest.raises(dd.CorpusUnavailable, match=message):
        dc.build_default_corpus(tmp_path / "data")


def test_a_corrupted_built_copy_is_rewritten(tmp_path, monkeypatch):
    _no_apt(monkeypatch)
    path = dc.build_default_corpus(tmp_path)
    path.write_text('{"text": "tampered", "source": "x", "part": 0}\n')
    assert hashlib.sha256(dc.build_default_corpus(tmp_path).read_bytes()).hexdigest() == dc.SUBSET_SHA256


def test_build_subset_from_the_debs_and_load_it_back(fake_packages, tmp_path, monkeypatch):
    data_dir, out = fake_packages, tmp_path / "shipped"
    monkeypatch.setattr(dc, "SUBSET_FRACTION", 1.0)  # the fake corpus has 3 documents: keep them all
    info = dc.build_subset(data_dir, out)
    full = dd.build_deb_corpus(data_dir).read_bytes()
    assert lzma.decompress((out / "default_docs.jsonl.xz").read_bytes()) == full
    assert info == json.loads((out / "default_docs.json").read_text())
    assert info["docs_sha256"] == hashlib.sha256(full).hexdigest() and info["docs"] == 3
    assert [(p["name"], p["version"], p["source_package"], p["docs"]) for p in info["packages"]] == [
        ("pydoc", "1.0-1", "pydoc-src", 2),
        ("hb", "2:3.0", "hb-src", 1),
    ]
    notice = (out / "NOTICE").read_text()
    for part in ("pydoc 1.0-1", "licence:  PSF-2.0", "hb 2:3.0", "licence:  GPL-2.0+", dd.PACKAGES[0].sha256,
                 "https://snapshot.debian.org/package/hb-src/2:3.0/"):  # fmt: skip
        assert part in notice
    assert (out / "copyright" / "hb").read_text() == "Copyright of hb 2:3.0\n"
    stamp = (out / "default_docs.jsonl.xz").stat().st_mtime_ns
    assert dc.build_subset(data_dir, out) == info and (out / "default_docs.jsonl.xz").stat().st_mtime_ns == stamp

    monkeypatch.setattr(dc, "SUBSET_FILE", out / "default_docs.jsonl.xz")
    monkeypatch.setattr(dc, "INFO_FILE", out / "default_docs.json")
    monkeypatch.setattr(dc, "SUBSET_SHA256", info["docs_sha256"])
    shutil.rmtree(data_dir / ".cache")
    path = dc.build_default_corpus(tmp_path / "elsewhere")
    assert path.read_bytes() == full
    assert json.loads((path.parent / "manifest.json").read_text())["packages"] == info["packages"]


def test_a_fraction_that_keeps_nothing_is_refused(fake_packages, tmp_path, monkeypatch):
    monkeypatch.setattr(dc, "SUBSET_FRACTION", 0.0)
    with pytest.raises(dd.CorpusUnavailable, match="keeps none of the 3 documents"):
        dc.build_subset(fake_packages, tmp_path / "shipped")

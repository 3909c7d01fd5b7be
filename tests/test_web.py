"""Web corpus readers, the token store (round trip, split, idempotence, refusals) and the WebSource stream."""

import gzip
import json
import os
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_gen.atomic import building
from data_gen.hashing import sha256_file
from data_gen.tokenizer import train_bpe
from data_gen.web import (
    EmptyCorpusError,
    TokenizerMismatchError,
    TokenStore,
    WebSource,
    build_store,
    list_files,
    read_documents,
)

_RNG = random.Random(1)
_WORDS = ["".join(_RNG.choice("etaoinshrdlucmwfgyp") for _ in range(_RNG.randint(1, 8))) for _ in range(500)]


def _doc(i: int) -> str:
    words = " ".join(_RNG.choice(_WORDS) for _ in range(_RNG.randint(1, 120)))
    return f"Doc {i}. {words.capitalize()}.\n\nÜber café — “quotes” ☃ {i}"


DOCS = [_doc(i) for i in range(60)]


def write_fineweb_parquet(path: Path, texts: list[str], row_group_size: int = 16) -> None:
    """A shard in FineWeb-Edu's column layout."""
    n = len(texts)
    table = pa.table(
        {
            "text": texts,
            "id": [f"<urn:uuid:{i:08x}>" for i in range(n)],
            "dump": ["CC-MAIN-2024-10"] * n,
            "url": [f"https://example.org/{i}" for i in range(n)],
            "file_path": ["s3://commoncrawl/crawl-data/x.warc.gz"] * n,
            "language": ["en"] * n,
            "language_score": np.linspace(0.9, 1.0, n),
            "token_count": np.array([len(t.split()) for t in texts], np.int64),
            "score": np.linspace(2.5, 4.5, n),
            "int_score": np.array([3] * n, np.int64),
        }
    )
    pq.write_table(table, path, row_group_size=row_group_size)


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return train_bpe(DOCS, 400, tmp_path_factory.mktemp("tok") / "tokenizer.json")


@pytest.fixture(scope="module")
def other_tok(tmp_path_factory):
    return train_bpe(DOCS, 300, tmp_path_factory.mktemp("tok2") / "tokenizer.json")


@pytest.fixture()
def corpus(tmp_path) -> Path:
    """A directory mixing the three formats: parquet shards, jsonl(.gz) and .txt files, plus an ignored file."""
    root = tmp_path / "corpus"
    (root / "data" / "CC-MAIN-2024-10").mkdir(parents=True)
    write_fineweb_parquet(root / "data" / "CC-MAIN-2024-10" / "000_00000.parquet", DOCS[:30])
    with open(root / "b.jsonl", "w") as f:
        for t in DOCS[30:45]:
            f.write(json.dumps({"text": t, "id": "x"}) + "\n")
    with gzip.open(root / "c.jsonl.gz", "wt") as f:
        for t in DOCS[45:55]:
            f.write(json.dumps({"text": t}) + "\n")
    for i, t in enumerate(DOCS[55:]):
        (root / "txt").mkdir(exist_ok=True)
        (root / "txt" / f"{i}.txt").write_text(t)
    (root / "README.md").write_text("not a corpus file")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.txt").write_text("hidden")
    return root


def corpus_order(root: Path) -> list[str]:
    return [t for f in list_files(root) for t in read_documents(f)]


def test_readers_find_every_document_in_sorted_file_order(corpus):
    names = [p.relative_to(corpus).as_posix() for p in list_files(corpus)]
    assert names == ["b.jsonl", "c.jsonl.gz", "data/CC-MAIN-2024-10/000_00000.parquet"] + [
        f"txt/{i}.txt" for i in range(5)
    ]
    assert sorted(corpus_order(corpus)) == sorted(DOCS)


def test_store_round_trips_and_splits(corpus, tok, tmp_path):
    train = build_store(corpus, tok, tmp_path / "store", val_fraction=0.1, seed=3)
    val = TokenStore.open(tmp_path / "store", tok, "val")
    texts = corpus_order(corpus)
    assert (train.num_docs, val.num_docs) == (54, 6)
    assert sorted(np.concatenate([train.doc_ids, val.doc_ids]).tolist()) == list(range(60))
    assert train.doc_ids.tolist() == sorted(train.doc_ids.tolist())
    for store in (train, val):
        for i in range(store.num_docs):
            assert tok.decode(store.doc(i)) == texts[store.doc_ids[i]]
    m = train.manifest
    tokens_bin = tmp_path / "store/train/tokens.bin"
    assert m["splits"]["train"] == {
        "docs": 54,
        "tokens": train.num_tokens,
        "bytes": 2 * train.num_tokens,
        "sha256": sha256_file(tokens_bin),
    }
    assert m["tokenizer"]["fingerprint"] == tok.fingerprint and m["dtype"] == "uint16"
    assert {f["name"] for f in m["sources"]["files"]} >= {"b.jsonl", "txt/0.txt"}
    assert train.num_tokens == sum(len(tok.encode(texts[j])) for j in train.doc_ids)


def test_rebuild_is_a_no_op(corpus, tok, tmp_path):
    build_store(corpus, tok, tmp_path / "store", val_fraction=0.1)
    files = sorted((tmp_path / "store").rglob("*"))
    stamps = [(p, p.stat().st_mtime_ns) for p in files]

    class Counting:
        fingerprint, vocab_size, eos_id = tok.fingerprint, tok.vocab_size, tok.eos_id
        calls = 0

        def encode_batch(self, texts):
            Counting.calls += 1
            return tok.encode_batch(texts)

    again = build_store(corpus, Counting(), tmp_path / "store", val_fraction=0.1)
    assert Counting.calls == 0
    assert [(p, p.stat().st_mtime_ns) for p in sorted((tmp_path / "store").rglob("*"))] == stamps
    assert again.num_tokens == TokenStore.open(tmp_path / "store", tok).num_tokens


def test_same_inputs_give_identical_stores(corpus, tok, tmp_path):
    a = build_store(corpus, tok, tmp_path / "a", val_fraction=0.1)
    b = build_store([Path(p) for p in list_files(corpus)], tok, tmp_path / "b", val_fraction=0.1)
    assert (tmp_path / "a/train/tokens.bin").read_bytes() == (tmp_path / "b/train/tokens.bin").read_bytes()
    assert np.array_equal(a.offsets, b.offsets)


def test_other_tokenizer_is_refused(corpus, tok, other_tok, tmp_path):
    build_store(corpus, tok, tmp_path / "store")
    with pytest.raises(TokenizerMismatchError, match="built with tokenizer"):
        TokenStore.open(tmp_path / "store", other_tok)
    with pytest.raises(TokenizerMismatchError, match="built with tokenizer"):
        build_store(corpus, other_tok, tmp_path / "store")


def test_other_inputs_in_the_same_directory_are_refused(corpus, tok, tmp_path):
    build_store(corpus, tok, tmp_path / "store", val_fraction=0.1)
    with pytest.raises(ValueError, match="other inputs"):
        build_store(corpus, tok, tmp_path / "store", val_fraction=0.2)
    (corpus / "b.jsonl").write_text(json.dumps({"text": "changed"}) + "\n")
    with pytest.raises(ValueError, match="other inputs"):
        build_store(corpus, tok, tmp_path / "store", val_fraction=0.1)


def test_in_memory_documents_and_empty_ones(tok, tmp_path):
    docs = ["alpha beta", "   ", "", "gamma delta", "epsilon"]
    train = build_store(docs, tok, tmp_path / "s", val_fraction=0.0)
    assert train.num_docs == 3 and train.manifest["skipped_empty"] == 2
    assert [tok.decode(train.doc(i)) for i in range(3)] == ["alpha beta", "gamma delta", "epsilon"]
    assert TokenStore.open(tmp_path / "s", tok, "val").num_docs == 0
    with pytest.raises(TypeError, match="document 1 is a int"):
        build_store(["a", 3], tok, tmp_path / "t")


def test_described_documents_are_streamed_and_not_read_again(tok, tmp_path):
    sources = {"name": "three documents", "version": 1}
    train = build_store(iter(DOCS[:3]), tok, tmp_path / "s", val_fraction=0.0, sources=sources)
    assert [tok.decode(train.doc(i)) for i in range(3)] == DOCS[:3] and train.manifest["sources"] == sources

    def unread():
        raise AssertionError("read the documents of a built store")
        yield

    assert build_store(unread(), tok, tmp_path / "s", val_fraction=0.0, sources=sources).num_docs == 3
    with pytest.raises(ValueError, match="other inputs"):
        build_store(unread(), tok, tmp_path / "s", val_fraction=0.0, sources={**sources, "version": 2})
    with pytest.raises(EmptyCorpusError, match="corpus no documents has no non-empty"):
        build_store(iter([" "]), tok, tmp_path / "e", sources={"name": "no documents"})
    with pytest.raises(TypeError, match="describes an iterable of documents"):
        build_store(tmp_path, tok, tmp_path / "p", sources=sources)


def test_empty_corpus_is_a_clear_error(tok, tmp_path):
    with pytest.raises(EmptyCorpusError, match="no non-empty documents"):
        build_store(["", " \n "], tok, tmp_path / "s")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyCorpusError, match="no corpus files"):
        build_store(tmp_path / "empty", tok, tmp_path / "s2")
    with pytest.raises(FileNotFoundError, match="corpus path not found"):
        build_store(tmp_path / "missing", tok, tmp_path / "s3")


def test_bad_files_are_clear_errors(tok, tmp_path):
    pq.write_table(pa.table({"content": ["x"]}), tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="no 'text' column"):
        build_store(tmp_path / "x.parquet", tok, tmp_path / "s")
    (tmp_path / "y.jsonl").write_text('{"text": "ok"}\n{"body": "no text"}\n')
    with pytest.raises(ValueError, match="y.jsonl:2 has no string 'text' field"):
        build_store(tmp_path / "y.jsonl", tok, tmp_path / "s2")
    (tmp_path / "z.csv").write_text("a,b")
    with pytest.raises(ValueError, match="unsupported corpus file"):
        build_store(tmp_path / "z.csv", tok, tmp_path / "s3")
    with pytest.raises(ValueError, match="val_fraction=1.0"):
        build_store(["a"], tok, tmp_path / "s4", val_fraction=1.0)
    with pytest.raises(ValueError, match="leaves none for training"):
        build_store(["a"], tok, tmp_path / "s5", val_fraction=0.5)


def test_missing_store_is_a_clear_error(tok, tmp_path):
    with pytest.raises(FileNotFoundError, match="no token store"):
        TokenStore.open(tmp_path, tok)


def test_web_source_random_access_equals_brute_force(tok, tmp_path):
    store = build_store(DOCS[:12] + ["z"], tok, tmp_path / "s", val_fraction=0.0)
    ws = WebSource(store, seed=5, eos_id=tok.eos_id)
    epochs = 4
    perms = [np.random.default_rng([5, e]).permutation(store.num_docs) for e in range(epochs)]
    assert len({tuple(p) for p in perms}) == epochs
    brute = np.concatenate([np.append(store.doc(int(d)), tok.eos_id) for p in perms for d in p])
    assert ws.tokens_per_epoch * epochs == len(brute)
    assert np.array_equal(ws.tokens(0, len(brute)), brute)
    rng = np.random.default_rng(0)
    starts = list(rng.integers(0, len(brute) - 200, 300)) + [ws.tokens_per_epoch - 1, ws.tokens_per_epoch, 0]
    for start in starts:
        for length in (0, 1, int(rng.integers(1, 200))):
            got = ws.tokens(int(start), length)
            assert got.dtype == np.int32
            assert np.array_equal(got, brute[start : start + length]), (start, length)
    assert [ws.epoch_of(p) for p in (0, ws.tokens_per_epoch - 1, ws.tokens_per_epoch, 3 * ws.tokens_per_epoch)] == [
        0,
        0,
        1,
        3,
    ]
    fresh = WebSource(store, seed=5, eos_id=tok.eos_id)
    assert np.array_equal(fresh.tokens(2 * ws.tokens_per_epoch + 7, 50), brute[2 * ws.tokens_per_epoch + 7 :][:50])


def test_web_source_rejects_empty_store(tok, tmp_path):
    build_store(["one doc", "two doc"], tok, tmp_path / "s", val_fraction=0.0)
    with pytest.raises(EmptyCorpusError, match="has no documents"):
        WebSource(TokenStore.open(tmp_path / "s", tok, "val"), seed=0, eos_id=tok.eos_id)
    with pytest.raises(ValueError, match="split='test'"):
        TokenStore.open(tmp_path / "s", tok, "test")


def test_large_vocab_uses_uint32(tmp_path):
    class Wide:
        fingerprint, vocab_size, eos_id = "wide", 70_000, 69_999

        def encode(self, text):
            return [69_000 + len(w) for w in text.split()]

    store = build_store(["a bb ccc"], Wide(), tmp_path / "s", val_fraction=0.0)
    assert store.manifest["dtype"] == "uint32" and store.doc(0).tolist() == [69_001, 69_002, 69_003]
    assert os.path.getsize(tmp_path / "s/train/tokens.bin") == 12


def test_publishing_keeps_the_first_complete_build(tmp_path):
    final = tmp_path / "out"
    with building(final) as tmp:
        (tmp / "x").write_text("ours")
        final.mkdir()  # another process publishes first
        (final / "x").write_text("theirs")
    assert (final / "x").read_text() == "theirs"
    with pytest.raises(RuntimeError, match="boom"), building(tmp_path / "failed") as tmp:
        (tmp / "x").write_text("partial")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_directory_without_manifest_is_refused(tok, tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "junk").write_text("x")
    with pytest.raises(ValueError, match="holds no token store"):
        build_store(["a b"], tok, tmp_path / "s")

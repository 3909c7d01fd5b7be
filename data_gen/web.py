"""Web text: readers for local corpora, a tokenized on-disk store, and the epoch-permuted web stream.

Readers: a path is a parquet file with a `text` column (FineWeb-Edu's layout), a jsonl(.gz) file of objects with a
`text` field, a .txt file (one document), or a directory holding any of these (read recursively, sorted by path,
hidden entries skipped).

Store layout (`build_store`), one directory:
    manifest.json                 sources (names + sha256), tokenizer fingerprint, dtype, counts, val split,
                                  and per split the size in bytes and sha256 of tokens.bin (checked at open)
    train/tokens.bin, val/tokens.bin          flat token arrays (uint16 when the vocabulary fits, else uint32)
    train/offsets.npy, val/offsets.npy        int64 [docs + 1]: document i is tokens[offsets[i]:offsets[i + 1]]
    train/doc_ids.npy, val/doc_ids.npy        index of each stored document in the input order
Documents hold no EOS; the stream adds one after every document. Whitespace-only documents are skipped (counted
in the manifest). The validation split is round(val_fraction * docs) documents (at least one when
val_fraction > 0) drawn with a seeded permutation; the rest, in input order, is the training split.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from data_gen.atomic import building
from data_gen.hashing import sha256_file

STORE_FORMAT = 1
SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz", ".txt")
SPLITS = ("train", "val")


class EmptyCorpusError(ValueError):
    """A corpus without any non-empty document."""


class TokenizerMismatchError(ValueError):
    """A store opened or rebuilt with a tokenizer other than the one that built it."""


class StoreIntegrityError(ValueError):
    """A store whose tokens.bin differs from its manifest's record (or that has no record: older code built it)."""


_REBUILD = "delete {} to have the next training run (or python -m data_gen.prepare) rebuild it"


def list_files(path: str | os.PathLike) -> list[Path]:
    """The corpus files at `path`: the file itself, or the supported files under a directory in sorted order."""
    path = Path(path)
    if path.is_file():
        if not path.name.endswith(SUFFIXES):
            raise ValueError(f"unsupported corpus file {path}: expected one of {SUFFIXES}")
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"corpus path not found: {path}")
    files = [
        p
        for p in path.rglob("*")
        if p.is_file() and p.name.endswith(SUFFIXES) and not any(s.startswith(".") for s in p.relative_to(path).parts)
    ]
    if not files:
        raise EmptyCorpusError(f"no corpus files ({', '.join(SUFFIXES)}) under {path}")
    return sorted(files, key=lambda p: p.relative_to(path).as_posix())


def read_documents(path: Path) -> Iterator[str]:
    """The documents of one corpus file (see the module docstring for formats)."""
    name = path.name
    if name.endswith(".parquet"):
        pf = pq.ParquetFile(path)
        if "text" not in pf.schema_arrow.names:
            raise ValueError(f"parquet file {path} has no 'text' column (columns: {pf.schema_arrow.names})")
        for batch in pf.iter_batches(batch_size=1024, columns=["text"]):
            yield from (t for t in batch.column(0).to_pylist() if t is not None)
    elif name.endswith((".jsonl", ".jsonl.gz")):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    text = json.loads(line).get("text")
                except (json.JSONDecodeError, AttributeError) as e:
                    raise ValueError(f"{path}:{line_no} is not a JSON object: {e}") from e
                if not isinstance(text, str):
                    raise ValueError(f"{path}:{line_no} has no string 'text' field")
                yield text
    elif name.endswith(".txt"):
        try:
            yield path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{path} is not UTF-8 text: {e}") from e
    else:
        raise ValueError(f"unsupported corpus file {path}: expected one of {SUFFIXES}")


def _resolve_source(source, sources: dict | None) -> tuple[Iterable[str], dict, str]:
    """(documents, manifest description, description for errors) of a path, list of Paths, or doc iterable."""
    if isinstance(source, (str, os.PathLike)) or (
        isinstance(source, (list, tuple)) and source and all(isinstance(s, os.PathLike) for s in source)
    ):
        if sources is not None:
            raise TypeError("`sources` describes an iterable of documents; corpus files are described by their hashes")
        roots = [Path(source)] if isinstance(source, (str, os.PathLike)) else [Path(s) for s in source]
        entries = []
        for root in roots:
            for f in list_files(root):
                rel = f.name if f == root else f.relative_to(root).as_posix()
                entries.append((f, {"name": rel, "sha256": sha256_file(f), "bytes": f.stat().st_size}))

        def docs() -> Iterator[str]:
            for f, _ in entries:
                yield from read_documents(f)

        return docs(), {"files": [e for _, e in entries]}, ", ".join(str(r) for r in roots)
    if sources is not None:
        return source, sources, str(sources["name"])
    docs = list(source)
    h = hashlib.sha256()
    for i, d in enumerate(docs):
        if not isinstance(d, str):
            raise TypeError(f"document {i} is a {type(d).__name__}, expected str (paths must be pathlib.Path)")
        b = d.encode("utf-8")
        h.update(len(b).to_bytes(8, "little") + b)
    return docs, {"documents": len(docs), "documents_sha256": h.hexdigest()}, f"{len(docs)} in-memory documents"


class TokenStore:
    """One split ("train" or "val") of a tokenized corpus on disk."""

    def __init__(self, directory: Path, split: str, manifest: dict):
        self.directory, self.split, self.manifest = directory, split, manifest
        d = directory / split
        self.offsets = np.load(d / "offsets.npy")
        self.doc_ids = np.load(d / "doc_ids.npy")
        self.num_docs = len(self.offsets) - 1
        self.num_tokens = int(self.offsets[-1])
        _check_tokens_file(d / "tokens.bin", manifest["splits"][split], directory)
        dtype = np.dtype(manifest["dtype"])
        self.tokens = (
            np.memmap(d / "tokens.bin", dtype=dtype, mode="r", shape=(self.num_tokens,))
            if self.num_tokens
            else np.zeros(0, dtype)
        )

    @classmethod
    def open(cls, directory: str | os.PathLike, tokenizer, split: str = "train") -> TokenStore:
        """Open a split of a store; refuses a store built with another tokenizer, or whose tokens.bin differs from
        the manifest's size and sha256 (StoreIntegrityError)."""
        directory = Path(directory)
        if split not in SPLITS:
            raise ValueError(f"split={split!r}: expected one of {SPLITS}")
        path = directory / "manifest.json"
        if not path.exists():
            raise FileNotFoundError(f"no token store at {directory} (manifest.json missing; build it first)")
        manifest = json.loads(path.read_text())
        _check_tokenizer(manifest, tokenizer, directory)
        return cls(directory, split, manifest)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def doc(self, i: int) -> np.ndarray:
        """Tokens of document i (int32, no EOS)."""
        if not 0 <= i < self.num_docs:
            raise IndexError(f"document {i} out of range for {self.num_docs} docs in {self.directory}/{self.split}")
        return np.asarray(self.tokens[self.offsets[i] : self.offsets[i + 1]], dtype=np.int32)

    def __repr__(self) -> str:
        return f"TokenStore({self.directory}, {self.split}: {self.num_docs} docs, {self.num_tokens} tokens)"


def _check_tokenizer(manifest: dict, tokenizer, directory: Path) -> None:
    built = manifest["tokenizer"]
    if built["fingerprint"] != tokenizer.fingerprint:
        raise TokenizerMismatchError(
            f"token store {directory} was built with tokenizer {built['fingerprint'][:16]} "
            f"(vocab_size {built['vocab_size']}), not with the given one {tokenizer.fingerprint[:16]} "
            f"(vocab_size {tokenizer.vocab_size}); use the matching tokenizer or rebuild into another directory"
        )


def _check_tokens_file(path: Path, record: dict, directory: Path) -> None:
    """StoreIntegrityError unless the file at path has the size and sha256 that the manifest records for it."""
    fix = _REBUILD.format(directory)
    if "sha256" not in record:
        _record_integrity(path, record, directory)
        return
    size = path.stat().st_size if path.exists() else None
    if size != record["bytes"]:
        found = "no file" if size is None else f"{size} bytes"
        raise StoreIntegrityError(f"token store file {path}: expected {record['bytes']} bytes, found {found}; {fix}")
    digest = sha256_file(path)
    if digest != record["sha256"]:
        raise StoreIntegrityError(
            f"token store file {path}: expected sha256 {record['sha256']}, found {digest} (same size, other "
            f"content); {fix}"
        )


def _record_integrity(path: Path, record: dict, directory: Path) -> None:
    """A store built before integrity records: record its file's size and sha256 in the manifest now (atomically;
    trusted on first use, with a warning), so that every later open checks them."""
    record.update(bytes=path.stat().st_size, sha256=sha256_file(path))
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["splits"][path.parent.name].update(bytes=record["bytes"], sha256=record["sha256"])
    tmp = manifest_path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, manifest_path)
    logging.getLogger(__name__).warning(
        "token store %s had no integrity record for %s: recorded its size and sha256 now", directory, path.name
    )


def _tokenize(docs: Iterable[str], tokenizer, path: Path, dtype: np.dtype, batch_docs: int) -> tuple[list, int]:
    """Write the tokens of the non-empty docs to path; return (per-doc (input index, length), skipped)."""
    kept, skipped, batch = [], 0, []

    encode_batch = getattr(tokenizer, "encode_batch", None) or (lambda texts: [tokenizer.encode(t) for t in texts])

    def flush(f) -> None:
        for (index, _), ids in zip(batch, encode_batch([t for _, t in batch]), strict=True):
            f.write(np.asarray(ids, dtype=dtype).tobytes())
            kept.append((index, len(ids)))
        batch.clear()

    with open(path, "wb") as f:
        for index, text in enumerate(docs):
            if not text.strip():
                skipped += 1
                continue
            batch.append((index, text))
            if len(batch) == batch_docs:
                flush(f)
        flush(f)
    return kept, skipped


def _write_split(all_tokens: np.ndarray, offsets: np.ndarray, ids: np.ndarray, doc_ids: np.ndarray, d: Path) -> dict:
    d.mkdir(parents=True, exist_ok=True)
    lengths = offsets[ids + 1] - offsets[ids]
    with open(d / "tokens.bin", "wb") as f:
        for chunk in np.array_split(ids, max(1, len(ids) // 4096)):
            if len(chunk):
                f.write(np.concatenate([all_tokens[offsets[i] : offsets[i + 1]] for i in chunk]).tobytes())
    np.save(d / "offsets.npy", np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
    np.save(d / "doc_ids.npy", doc_ids[ids].astype(np.int64))
    tokens_bin = d / "tokens.bin"
    return {
        "docs": int(len(ids)),
        "tokens": int(lengths.sum()),
        "bytes": tokens_bin.stat().st_size,
        "sha256": sha256_file(tokens_bin),
    }


def build_store(
    source: str | os.PathLike | list[os.PathLike] | Iterable[str],
    tokenizer,
    out_dir: str | os.PathLike,
    val_fraction: float = 0.01,
    seed: int = 0,
    batch_docs: int = 1024,
    sources: dict | None = None,
) -> TokenStore:
    """Tokenize a corpus into out_dir and return its training split (open the other with
    `TokenStore.open(out_dir, tokenizer, "val")`).

    source: a corpus path (file or directory, see `list_files`), a list of pathlib.Path, or an iterable of
    document strings. Rebuilding the same inputs with the same tokenizer is a no-op; out_dir holding a store of
    another tokenizer or of other inputs is refused.

    sources, for an iterable of documents only: what identifies them (a JSON-able dict whose "name" entry names
    them in errors), recorded in the manifest instead of their count and sha256; the documents are then streamed
    instead of read into memory first, and not read at all when out_dir already holds their store.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction} must be in [0, 1)")
    out_dir = Path(out_dir)
    docs, sources, where = _resolve_source(source, sources)
    inputs = {"format": STORE_FORMAT, "sources": sources, "val_fraction": val_fraction, "seed": seed}
    key = hashlib.sha256(json.dumps({**inputs, "tokenizer": tokenizer.fingerprint}, sort_keys=True).encode())
    key = key.hexdigest()
    manifest_path = out_dir / "manifest.json"
    if not manifest_path.exists():
        if out_dir.exists() and any(out_dir.iterdir()):
            raise ValueError(f"{out_dir} exists but holds no token store (no manifest.json); delete it")
        with building(out_dir) as tmp:
            _build(docs, tokenizer, tmp, {**inputs, "key": key}, where, batch_docs)
    manifest = json.loads(manifest_path.read_text())
    _check_tokenizer(manifest, tokenizer, out_dir)
    if manifest["key"] != key:
        raise ValueError(
            f"{out_dir} holds a token store built from other inputs (files, val_fraction or seed differ); "
            "delete it or choose another out_dir"
        )
    return TokenStore(out_dir, "train", manifest)


def _build(docs: Iterable[str], tokenizer, out_dir: Path, inputs: dict, where: str, batch_docs: int) -> None:
    """Tokenize, split and write a store (with its manifest) into the empty directory out_dir."""
    dtype = np.dtype(np.uint16 if tokenizer.vocab_size <= 2**16 else np.uint32)
    all_path = out_dir / "all.bin"
    kept, skipped = _tokenize(docs, tokenizer, all_path, dtype, batch_docs)
    if not kept:
        raise EmptyCorpusError(f"corpus {where} has no non-empty documents ({skipped} empty)")
    doc_ids = np.array([i for i, _ in kept], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum([n for _, n in kept])]).astype(np.int64)
    n, val_fraction = len(kept), inputs["val_fraction"]
    n_val = 0 if val_fraction == 0 else max(1, round(val_fraction * n))
    if n - n_val < 1:
        raise ValueError(f"corpus {where} has {n} documents: val_fraction={val_fraction} leaves none for training")
    is_val = np.zeros(n, bool)
    is_val[np.random.default_rng(inputs["seed"]).permutation(n)[:n_val]] = True
    all_tokens = np.fromfile(all_path, dtype=dtype)
    splits = {
        name: _write_split(all_tokens, offsets, np.flatnonzero(mask), doc_ids, out_dir / name)
        for name, mask in (("train", ~is_val), ("val", is_val))
    }
    del all_tokens
    all_path.unlink()
    manifest = {
        **inputs,
        "tokenizer": {
            "fingerprint": tokenizer.fingerprint,
            "vocab_size": tokenizer.vocab_size,
            "eos_id": tokenizer.eos_id,
        },
        "dtype": dtype.name,
        "skipped_empty": skipped,
        "splits": splits,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


class WebSource:
    """The infinite web stream "d_p(0) EOS d_p(1) EOS ..." over a store's documents, with random access.

    Epoch e walks the documents in the permutation seeded by (seed, e); the stream is a pure function of
    (store, seed), so any slice is computed from its start position alone (offsets + searchsorted, no state
    beyond a cache of the last epoch's permutation).
    """

    def __init__(self, store: TokenStore, seed: int, eos_id: int):
        if store.num_docs == 0:
            raise EmptyCorpusError(f"web store {store.directory}/{store.split} has no documents")
        self.store, self.seed, self.eos_id = store, int(seed), int(eos_id)
        self.num_docs = store.num_docs
        self.tokens_per_epoch = store.num_tokens + store.num_docs
        self._cache: tuple[int, np.ndarray, np.ndarray] | None = None

    def epoch_order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(document order, start of each document within the epoch, with the epoch length appended)."""
        cached = self._cache
        if cached is not None and cached[0] == epoch:
            return cached[1], cached[2]
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_docs)
        starts = np.concatenate([[0], np.cumsum(self.store.lengths[perm] + 1)])
        self._cache = (epoch, perm, starts)
        return perm, starts

    def epoch_of(self, position: int) -> int:
        return int(position) // self.tokens_per_epoch

    def tokens(self, start: int, length: int) -> np.ndarray:
        """Tokens [start, start + length) of the stream (int32)."""
        if start < 0 or length < 0:
            raise ValueError(f"start={start} and length={length} must be >= 0")
        out = np.empty(length, np.int32)
        offsets, tokens = self.store.offsets, self.store.tokens
        pos, filled = int(start), 0
        while filled < length:
            epoch, within = divmod(pos, self.tokens_per_epoch)
            perm, starts = self.epoch_order(epoch)
            k = int(np.searchsorted(starts, within, side="right")) - 1
            while filled < length and k < self.num_docs:
                begin, end = offsets[perm[k]], offsets[perm[k] + 1]
                skip = within - int(starts[k])  # 0 .. doc length (the EOS position)
                take = min(int(end - begin) - skip, length - filled)
                if take > 0:
                    out[filled : filled + take] = tokens[begin + skip : begin + skip + take]
                    filled += take
                if filled < length:
                    out[filled] = self.eos_id
                    filled += 1
                k += 1
                within = int(starts[k])
            pos = epoch * self.tokens_per_epoch + within
        return out

"""Token-level assembly helpers for SynBio: a cache of tokenized pieces, a vectorised gather, a counter-based hash
and a built-in byte-level tokenizer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class TextEncoder(Protocol):
    """What SynBio needs from a tokenizer: encode(a + b) may differ from encode(a) + encode(b), but
    decode(encode(a) + encode(b)) must equal a + b (true of byte-level BPE)."""

    def encode(self, text: str) -> list[int]: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens (ids 0-255), EOS = 256; vocab padded to 384, a multiple of 128."""

    eos_id = 256
    vocab_size = 384
    fingerprint = "byte-level-utf8"

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return bytes(int(i) for i in ids if int(i) < 256).decode("utf-8", errors="replace")


class PieceTable:
    """Token arrays of text pieces, each encoded once and stored back to back in one flat int32 array."""

    def __init__(self, tokenizer: TextEncoder):
        self._tokenizer = tokenizer
        self._tokens: list[int] = []
        self._lengths: list[int] = []
        self._frozen: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def add(self, texts: Sequence[str]) -> np.ndarray:
        """Encode `texts` and return their piece ids."""
        if self._frozen is not None:
            raise RuntimeError("PieceTable is frozen: pieces are added before the first gather")
        first = len(self._lengths)
        for text in texts:
            ids = self._tokenizer.encode(text)
            self._tokens.extend(ids)
            self._lengths.append(len(ids))
        return np.arange(first, len(self._lengths), dtype=np.int64)

    def freeze(self) -> None:
        """Concatenate the pieces into flat arrays (checked to be int32 token ids); later calls use them."""
        flat = np.asarray(self._tokens, dtype=np.int64)
        if flat.ndim != 1:
            raise ValueError("tokenizer.encode must return flat lists of ints")
        if flat.size and (flat.min() < 0 or flat.max() > np.iinfo(np.int32).max):
            raise ValueError(f"tokenizer returned ids outside [0, 2^31): range [{flat.min()}, {flat.max()}]")
        lengths = np.asarray(self._lengths, dtype=np.int64)
        self._frozen = (flat.astype(np.int32), np.cumsum(lengths) - lengths, lengths)
        self._tokens = []

    @property
    def lengths(self) -> np.ndarray:
        """Token length of every piece, indexed by piece id."""
        if self._frozen is None:
            self.freeze()
        return self._frozen[2]

    def gather(self, piece_ids: np.ndarray) -> np.ndarray:
        """Concatenate the tokens of `piece_ids` (any shape, row-major order) into one int32 array."""
        if self._frozen is None:
            self.freeze()
        flat, starts, lengths = self._frozen
        ids = np.asarray(piece_ids, dtype=np.int64).ravel()
        piece_len = lengths[ids]
        out_start = np.cumsum(piece_len) - piece_len
        total = int(out_start[-1] + piece_len[-1]) if ids.size else 0
        source = np.repeat(starts[ids] - out_start, piece_len) + np.arange(total, dtype=np.int64)
        return flat[source]


_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def _fmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, in place: a bijection on uint64 with full avalanche."""
    x ^= x >> 30
    x *= _MIX1
    x ^= x >> 27
    x *= _MIX2
    x ^= x >> 31
    return x


def counter_hash(seed: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A pseudo-random uint64 per (seed, a, b), vectorised; a and b are broadcast and must lie in [0, 2^32).

    Two SplitMix64 rounds keyed by the seed; distinct (a, b) pairs give distinct outputs for a fixed seed (each step
    is a bijection of the key a * 2^32 + b)."""
    key = np.asarray(a, dtype=np.uint64) << np.uint64(32)
    key = np.atleast_1d(key | np.asarray(b, dtype=np.uint64))
    seed_key = _fmix64(np.array([(seed * _GOLDEN + 1) % 2**64], dtype=np.uint64))[0]
    key *= _GOLDEN
    key += seed_key
    key = _fmix64(key)
    key ^= seed_key
    return _fmix64(key)


def check_counter(name: str, values: np.ndarray) -> np.ndarray:
    """Values as int64, checked to lie in [0, 2^32) for counter_hash."""
    array = np.asarray(values)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers, got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= 2**32):
        raise ValueError(f"{name} must lie in [0, 2^32); got range [{array.min()}, {array.max()}]")
    return array.astype(np.int64)

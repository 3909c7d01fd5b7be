"""The one tokenizer shared by every data source: a HuggingFace `tokenizers` byte-level BPE.

`train_bpe` trains one offline (deterministic for the same inputs) and saves it as tokenizer.json; any existing
tokenizer.json (for example GPT-NeoX's) loads through `Tokenizer.load`. The model's vocabulary size is the trained
size padded up to a multiple of 128; the padding ids are never produced by `encode`.

Round trip: with byte-level pre-tokenisation, no normaliser and the byte-level decoder,
decode(encode(a) + encode(b)) == a + b for any text. Special tokens written literally in the text ("<|endoftext|>")
are encoded as ordinary bytes, so a document can never smuggle in an EOS. A loaded tokenizer.json keeps its own
normaliser (GPT-NeoX's applies NFC), so the round trip then holds for NFC text only.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

EOS_TOKEN = "<|endoftext|>"
EOS_CANDIDATES = (EOS_TOKEN, "</s>", "<eos>", "<|end_of_text|>")
VOCAB_MULTIPLE = 128


def pad_vocab(size: int, multiple: int = VOCAB_MULTIPLE) -> int:
    """Smallest multiple of `multiple` that is >= size."""
    return -(-size // multiple) * multiple


class Tokenizer:
    """A byte-level BPE tokenizer loaded from a tokenizer.json file."""

    def __init__(self, hf: tokenizers.Tokenizer, fingerprint: str, path: Path | None = None):
        hf.no_padding()
        hf.no_truncation()
        hf.encode_special_tokens = True
        self._hf = hf
        self.fingerprint = fingerprint
        self.path = path
        self.num_tokens = hf.get_vocab_size(with_added_tokens=True)
        self.vocab_size = pad_vocab(self.num_tokens)
        eos = next((t for t in EOS_CANDIDATES if hf.token_to_id(t) is not None), None)
        if eos is None:
            where = f" {path}" if path else ""
            raise ValueError(f"tokenizer{where} has no end-of-text token; expected one of {EOS_CANDIDATES}")
        self.eos_token = eos
        self.eos_id = int(hf.token_to_id(eos))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Load any HuggingFace tokenizer.json; the fingerprint is the sha256 of its bytes."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        raw = path.read_bytes()
        try:
            hf = tokenizers.Tokenizer.from_str(raw.decode("utf-8"))
        except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
            raise ValueError(f"{path} is not a valid HuggingFace tokenizer.json: {e}") from e
        return cls(hf, hashlib.sha256(raw).hexdigest(), path)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without special tokens."""
        return self._hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text (parallel, in Rust)."""
        return [e.ids for e in self._hf.encode_batch_fast(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        """Text of `ids`; special tokens (EOS) are shown, not skipped."""
        return self._hf.decode([int(i) for i in ids], skip_special_tokens=False)

    def token_to_id(self, token: str) -> int | None:
        return self._hf.token_to_id(token)

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, tokens={self.num_tokens}, fingerprint={self.fingerprint[:12]})"


def train_bpe(texts: Iterable[str], vocab_size: int, out_path: str | os.PathLike) -> Tokenizer:
    """Train a byte-level BPE with `vocab_size` entries (256 bytes + EOS + merges) and save it to out_path.

    Deterministic: the same texts in the same order give a byte-identical tokenizer.json. The model's vocabulary
    (`Tokenizer.vocab_size`) is vocab_size padded up to a multiple of 128.
    """
    min_size = len(pre_tokenizers.ByteLevel.alphabet()) + 2
    if vocab_size < min_size:
        raise ValueError(f"vocab_size={vocab_size} is too small for a byte-level BPE (need >= {min_size})")
    hf = tokenizers.Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    hf.train_from_iterator(texts, trainer=trainer)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", dir=out_path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(hf.to_str(pretty=True))
    os.replace(tmp, out_path)
    return Tokenizer.load(out_path)

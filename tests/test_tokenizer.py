"""Byte-level BPE: determinism, vocabulary padding, EOS, lossless round trip, loading foreign tokenizer.json files."""

import json
import random
import subprocess
import sys

import pytest
import tokenizers
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import decoders, models, normalizers, pre_tokenizers

from data_gen.tokenizer import EOS_TOKEN, Tokenizer, pad_vocab, train_bpe

_RNG = random.Random(0)
_WORDS = ["".join(_RNG.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(_RNG.randint(2, 9))) for _ in range(2000)]
TEXTS = [
    " ".join(_RNG.choice(_WORDS) for _ in range(60))
    + f". Ünïcödé ☃ {i}, born August {i % 28 + 1:02d}, 19{i % 100:02d}.\n"
    for i in range(300)
]


@pytest.fixture(scope="module")
def tok(tmp_path_factory) -> Tokenizer:
    return train_bpe(TEXTS, 700, tmp_path_factory.mktemp("tok") / "tokenizer.json")


def test_training_is_deterministic_across_processes(tmp_path, tok):
    script = (
        "import json, sys; from data_gen.tokenizer import train_bpe; "
        "train_bpe(json.load(open(sys.argv[1])), 700, sys.argv[2])"
    )
    (tmp_path / "texts.json").write_text(json.dumps(TEXTS))
    subprocess.run([sys.executable, "-c", script, tmp_path / "texts.json", tmp_path / "b.json"], check=True)
    assert (tmp_path / "b.json").read_bytes() == tok.path.read_bytes()
    assert Tokenizer.load(tmp_path / "b.json").fingerprint == tok.fingerprint


def test_vocab_is_padded_to_a_multiple_of_128(tok):
    assert tok.num_tokens == 700
    assert tok.vocab_size == 768
    assert pad_vocab(50277) == 50304 and pad_vocab(256) == 256 and pad_vocab(257) == 384
    ids = [i for t in TEXTS for i in tok.encode(t)]
    assert max(ids) < tok.num_tokens


def test_eos_is_special_and_never_produced_from_text(tok):
    assert tok.token_to_id(EOS_TOKEN) == tok.eos_id
    text = f"a{EOS_TOKEN}b"
    ids = tok.encode(text)
    assert tok.eos_id not in ids
    assert tok.decode(ids) == text
    assert tok.decode(tok.encode("x") + [tok.eos_id]) == "x" + EOS_TOKEN


@settings(max_examples=200, deadline=None)
@given(a=st.text(max_size=40), b=st.text(max_size=40))
def test_concatenated_encodings_decode_to_concatenated_text(tok, a, b):
    assert tok.decode(tok.encode(a) + tok.encode(b)) == a + b


def test_encode_batch_matches_encode(tok):
    assert tok.encode_batch(TEXTS[:5]) == [tok.encode(t) for t in TEXTS[:5]]


def test_too_small_vocab_is_refused(tmp_path):
    with pytest.raises(ValueError, match="vocab_size=100"):
        train_bpe(TEXTS, 100, tmp_path / "t.json")


def _neox_like(tmp_path, specials):
    """A tokenizer.json in the GPT-NeoX layout (NFC normaliser, byte-level BPE, special tokens first)."""
    hf = tokenizers.Tokenizer(models.BPE(vocab={"a": 0}, merges=[]))
    hf.normalizer = normalizers.NFC()
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens(specials)
    path = tmp_path / "tokenizer.json"
    path.write_text(hf.to_str())
    return path


def test_any_tokenizer_json_loads(tmp_path):
    tok = Tokenizer.load(_neox_like(tmp_path, [EOS_TOKEN, "<|padding|>"]))
    assert tok.eos_id == 1
    assert tok.vocab_size == 128
    assert len(tok.fingerprint) == 64


def test_tokenizer_without_eos_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no end-of-text token"):
        Tokenizer.load(_neox_like(tmp_path, ["<pad>"]))


def test_missing_or_malformed_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        Tokenizer.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid HuggingFace tokenizer.json"):
        Tokenizer.load(tmp_path / "bad.json")

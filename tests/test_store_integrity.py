"""Token store integrity at open: each split's tokens.bin must have the size and sha256 its manifest records."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from data_gen.web import StoreIntegrityError, TokenStore, build_store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [f"document {i}: " + "abc " * (i + 1) for i in range(20)]


class Bytes:
    """A byte-level tokenizer (what build_store needs of one)."""

    fingerprint, vocab_size, eos_id = "bytes-test", 257, 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))


@pytest.fixture()
def store(tmp_path) -> Path:
    build_store(DOCS, Bytes(), tmp_path / "store", val_fraction=0.1)
    return tmp_path / "store"


def _same_size_other_content(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-2])


def test_an_intact_store_opens_and_its_manifest_records_size_and_sha256(store):
    manifest = json.loads((store / "manifest.json").read_text())
    for split in ("train", "val"):
        opened = TokenStore.open(store, Bytes(), split)
        record = manifest["splits"][split]
        assert record["bytes"] == os.path.getsize(store / split / "tokens.bin") == 2 * opened.num_tokens > 0
        assert re.fullmatch("[0-9a-f]{64}", record["sha256"])
        assert [bytes(opened.doc(i).astype(np.uint8)).decode() for i in range(opened.num_docs)] == [
            DOCS[j] for j in opened.doc_ids
        ]


@pytest.mark.parametrize(
    "damage, message",
    [
        (_same_size_other_content, r"tokens\.bin: expected sha256 [0-9a-f]{64}, found [0-9a-f]{64} \(same size"),
        (_truncated, r"tokens\.bin: expected \d+ bytes, found \d+ bytes;"),
        (Path.unlink, r"tokens\.bin: expected \d+ bytes, found no file;"),
    ],
)
def test_a_damaged_tokens_bin_is_refused_at_open_and_at_rebuild(store, damage, message):
    damage(store / "train" / "tokens.bin")
    fix = f"; delete {store} to have the next training run (or python -m data_gen.prepare) rebuild it"
    for opening in (lambda: TokenStore.open(store, Bytes()), lambda: build_store(DOCS, Bytes(), store, 0.1)):
        with pytest.raises(StoreIntegrityError, match=message) as e:
            opening()
        assert str(store / "train" / "tokens.bin") in str(e.value) and "\n" not in str(e.value)
        assert str(e.value).endswith(fix)
    TokenStore.open(store, Bytes(), "val")  # the intact split still opens


def test_a_store_built_without_integrity_records_records_them_once_and_is_checked_after(store):
    path = store / "manifest.json"
    manifest = json.loads(path.read_text())
    recorded = {split: (r.pop("bytes"), r.pop("sha256")) for split, r in manifest["splits"].items()}
    path.write_text(json.dumps(manifest))
    TokenStore.open(store, Bytes())  # trusted on first use: the records are written back
    again = json.loads(path.read_text())["splits"]["train"]
    assert (again["bytes"], again["sha256"]) == recorded["train"]
    damage = store / "train" / "tokens.bin"
    damage.write_bytes(damage.read_bytes()[:-2])
    with pytest.raises(StoreIntegrityError, match="expected .* bytes"):
        TokenStore.open(store, Bytes())


def test_the_cli_reports_a_damaged_store_in_one_line_with_exit_status_2(cli, data_dir, tmp_path):
    from data_gen.prepare import prepare
    from experiments.configs import tiny
    from mixlab import config as config_lib

    overrides = {
        "data.dir": str(tmp_path / "data"),
        "data.tokenizer": os.path.join(data_dir, "tokenizer.json"),
        "data.synthetic.num_docs": 200,
        "data.synthetic.num_patterns": 2000,
    }
    c = tiny.get_config("runlocal")
    config_lib.override(c, overrides)
    tokens_bin = prepare(c.data).web_train.directory / "train" / "tokens.bin"
    _same_size_other_content(tokens_bin)
    out = cli.run(
        "mixlab.main", "--config=experiments/configs/tiny.py:runlocal", f"--workdir={tmp_path}/run",
        "--jax_cache_dir=", "--config.sharding.num_devices=1", *[f"--config.{k}={v}" for k, v in overrides.items()],
    )  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"mixlab: data.dir='{tmp_path}/data': token store file {tokens_bin}: expected sha256 "), last
    assert not (tmp_path / "run" / "checkpoints").exists()

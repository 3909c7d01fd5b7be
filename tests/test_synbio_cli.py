"""The SynBio CLI: people table, sample biographies and the knowledge summary."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from data_gen.synbio import ATTRIBUTES, ByteTokenizer, Population, SynBio
from data_gen.synbio_cli import load_tokenizer, parse_pool_sizes, write_outputs


def test_write_outputs(tmp_path):
    population = Population(120, seed=2)
    synbio = SynBio(population, ByteTokenizer(), seed=2)
    _, info = load_tokenizer("")
    result = write_outputs(tmp_path, synbio, info, num_samples=4, stat_exp=3)

    csv = pd.read_csv(tmp_path / "people.csv")
    parquet = pd.read_parquet(tmp_path / "people.parquet")
    assert list(csv.columns) == ["person", "name", *ATTRIBUTES]
    assert len(csv) == 120 and csv["name"].is_unique
    assert csv.equals(parquet.astype(csv.dtypes.to_dict()))
    assert csv.loc[5, "major"] == population.value(5, "major") and csv.loc[5, "name"] == population.name(5)

    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [(s["person"], s["exposure"]) for s in samples] == [(p, e) for p in range(4) for e in (0, 1)]
    assert all(s["text"] == synbio.render_text(s["person"], s["exposure"]) for s in samples)
    assert all(s["num_tokens"] == len(s["text"].encode()) for s in samples)

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == result
    assert summary["bits_per_person"] == pytest.approx(population.bits_per_person)
    assert summary["total_bits"] == pytest.approx(120 * population.bits_per_person)
    lengths = synbio.bio_lengths(np.arange(120)[:, None], np.arange(3)[None, :])
    assert summary["tokens_per_bio"]["mean"] == pytest.approx(lengths.mean())
    assert summary["tokens_per_bio"]["std"] == pytest.approx(lengths.std())
    assert summary["tokens_per_bio"]["max"] == lengths.max() <= summary["tokens_per_bio"]["max_possible"]
    assert summary["tokenizer"]["kind"].startswith("built-in byte-level")


def test_parse_pool_sizes():
    assert parse_pool_sizes(["major=20", " birth_city = 5"]) == {"major": 20, "birth_city": 5}
    with pytest.raises(ValueError, match="must look like name=integer"):
        parse_pool_sizes(["major:20"])


def test_cli_runs_end_to_end(tmp_path):
    out = tmp_path / "synbio"
    proc = subprocess.run(
        [sys.executable, "-m", "data_gen.synbio_cli", "--num_people=40", "--seed=1", f"--out={out}", "--num_print=2",
         "--pool_sizes=major=10"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "--- person 1, exposure 0 ---" in proc.stdout and "SynBio-40 summary" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_people"] == 40 and summary["pool_sizes"]["major"] == 10


def test_cli_requires_out():
    proc = subprocess.run([sys.executable, "-m", "data_gen.synbio_cli"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "--out" in proc.stderr

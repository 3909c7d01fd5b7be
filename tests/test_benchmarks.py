"""The benchmarks run as `python -m experiments.benchmarks.<name>` (here only --help: nothing is measured)."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("name, flag", [("synbio", "--num_people"), ("mixture", "--num_people"), ("train", "--sizes")])
def test_benchmark_modules_start(name, flag):
    proc = subprocess.run(
        [sys.executable, "-m", f"experiments.benchmarks.{name}", "--help"], capture_output=True, text=True, timeout=120
    )
    assert "Traceback" not in proc.stderr and flag in proc.stdout, proc.stderr


@pytest.mark.tools
def test_train_bench_compares_with_a_baseline_checkout_side_by_side():
    """This checkout as its own baseline: three child runs (baseline, tuned baseline, new) and a table of ratios."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    flags = ["--sizes=t25k", "--vocab=256", "--seq_len=32", "--batch=2", "--steps=2", "--rounds=1"]
    env = {"PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.benchmarks.train", f"--baseline={repo}", *flags],
        capture_output=True, text=True, timeout=600, cwd=repo, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rounds = [line for line in proc.stdout.splitlines() if line.startswith("# round 1")]
    assert len(rounds) == 3
    row = [line for line in proc.stdout.splitlines() if line.startswith("| t25k |")]
    assert len(row) == 1 and row[0].count("x |") == 2, proc.stdout

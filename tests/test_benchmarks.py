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

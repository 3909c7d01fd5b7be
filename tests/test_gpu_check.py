"""experiments/gpu_check: refuses to run without a GPU; its measurement path works end to end on CPU."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}


def test_gpu_check_script_refuses_a_cpu_backend():
    out = subprocess.run(["bash", "experiments/gpu_check.sh"], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert out.returncode != 0 and "not 'gpu'" in out.stderr


@pytest.mark.tools
def test_gpu_check_measures_a_tiny_model_on_cpu(tmp_path):
    command = [
        sys.executable, "-m", "experiments.gpu_check", "--norequire_gpu", "--base=experiments/configs/tiny.py:runlocal",
        "--sizes=t25k", "--steps=6", "--log_every=2", f"--out_dir={tmp_path}",
    ]  # fmt: skip
    out = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith("t25k (") and "tokens/s, MFU " in line and "peak memory n/a" in line

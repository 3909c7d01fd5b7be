"""experiments/gpu_bench.sh --dry-run: the GPU script's whole path (sizes, ensembles, summary) on CPU, tiny shapes."""

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.tools
def test_gpu_bench_dry_run_prints_every_size_and_the_ensemble_ratios(tmp_path):
    env = {**os.environ, "PY": str(Path(os.sys.executable))}
    out = subprocess.run(
        ["bash", "experiments/gpu_bench.sh", "--dry-run", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "gpu_bench.jsonl").read_text().splitlines()]
    assert [(r["size"], r["ensemble"]) for r in rows] == [("t25k", 1), ("t57k", 1), ("t25k", 1), ("t25k", 2)]
    assert rows[-1]["tokens_per_step"] == 2 * rows[-2]["tokens_per_step"]
    assert all(r["tokens_per_s"] > 0 and r["dtype"] == "bfloat16" for r in rows)
    table = [line for line in out.stdout.splitlines() if line.startswith("| t25k | 2 | 2 |")]
    assert len(table) == 1 and table[0].endswith("x |"), out.stdout

"""Accelerator check: train Pythia presets briefly on synthetic web data; print tokens/s, MFU and peak memory.

Each size trains `--steps` steps of the pod-scale config (experiments/configs/pythia.py with model.size=<size>: batch
512 x 2048 tokens, bfloat16, 16 micro-batches) in a fresh folder under --out_dir. Only the data differ from a paper
run: data.web="synthetic" (nothing to download), SynBio-10k (quick to build), and the GPT-NeoX tokenizer only if its
file is present, else a BPE trained on the synthetic text (its vocabulary is printed, since it changes the FLOPs per
token). Reported: the median over the logged intervals after the first (which holds warm-up steps) of tokens/s, MFU
(against mixlab.metrics' peak table) and the share of time waiting on data; compile time; and the peak device memory
in use of this process (experiments/gpu_check.sh runs one process per size).
"""

from __future__ import annotations

import json
import shutil
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
from absl import app, flags
from ml_collections import ConfigDict

from mixlab.config import load_config, override, validate

NUM_PEOPLE = 10_000


def check_config(size: str, steps: int, base: str, log_every: int) -> ConfigDict:
    """The base config at `size` on synthetic web, `steps` steps, no eval or checkpoint before the end; validated."""
    config = load_config(base)
    tokenizer = str(config.data.tokenizer)
    overrides = {
        "model.size": size,
        "data.web": "synthetic",
        "data.num_people": NUM_PEOPLE,
        "data.tokenizer": tokenizer if tokenizer and Path(tokenizer).is_file() else "",
        "train.num_steps": steps,
        "train.log_every": log_every,
        "train.eval_every": 0,
        "train.checkpoint_every": 0,
        "train.milestone_every": 0,
        "train.tensorboard": False,
        "eval.num_people": 100,
    }
    override(config, overrides, f"gpu_check {size}")
    validate(config)
    return config


def check(size: str, steps: int, workdir: Path, base: str, log_every: int) -> dict[str, Any]:
    """Train `size` for `steps` steps in a fresh `workdir`; return its throughput and memory figures."""
    from mixlab import metrics
    from mixlab.train import train_and_evaluate

    config = check_config(size, steps, base, log_every)
    if workdir.exists():
        shutil.rmtree(workdir)
    train_and_evaluate(config, str(workdir))
    rows = metrics.read_jsonl(str(workdir / "metrics.jsonl"))
    if len(rows) < 2:
        raise ValueError(f"steps={steps} with log_every={log_every} gives {len(rows)} log rows; need at least 2")
    steady = rows[1:]
    mfu = [r["mfu"] for r in steady if r["mfu"] is not None]
    derived = json.loads((workdir / "config.json").read_text())["derived"]
    memory = jax.local_devices()[0].memory_stats() or {}
    return {
        "size": size,
        "params_total": derived["params_total"],
        "vocab_size": derived["vocab_size"],
        "device": jax.devices()[0].device_kind,
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady),
        "mfu": statistics.median(mfu) if mfu else None,
        "data_wait_share": statistics.median(r["data_wait_share"] for r in steady),
        "compile_s": rows[-1]["time_compile_s"],
        "peak_memory_gib": memory["peak_bytes_in_use"] / 2**30 if "peak_bytes_in_use" in memory else None,
    }


def format_result(r: dict[str, Any]) -> str:
    mfu = "n/a" if r["mfu"] is None else f"{r['mfu']:.1%}"
    memory = "n/a (no device memory stats)" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.2f} GiB"
    return (
        f"{r['size']} ({r['params_total']:,} params, V={r['vocab_size']}) on {r['device']}: "
        f"{r['tokens_per_s']:,.0f} tokens/s, MFU {mfu}, data wait {r['data_wait_share']:.1%}, "
        f"compile {r['compile_s']:.1f} s, peak memory {memory}"
    )


_SIZES = flags.DEFINE_list("sizes", ["14m", "70m"], "Model size presets to check, in this process.")
_STEPS = flags.DEFINE_integer("steps", 40, "Training steps per size.")
_LOG_EVERY = flags.DEFINE_integer("log_every", 10, "Steps per throughput measurement.")
_OUT_DIR = flags.DEFINE_string("out_dir", "runs/gpu_check", "Each size trains in <out_dir>/<size>/ (replaced).")
_BASE = flags.DEFINE_string("base", "experiments/configs/pythia.py", "Training config file[:arg] to start from.")
_REQUIRE_GPU = flags.DEFINE_bool("require_gpu", True, "Refuse to run unless JAX's backend is 'gpu'.")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    backend = jax.default_backend()
    if _REQUIRE_GPU.value and backend != "gpu":
        raise app.UsageError(f"JAX backend is {backend!r}, not 'gpu': on a GPU machine, pip install -e '.[gpu]'")
    for size in _SIZES.value:  # every size's config is valid before the first one trains
        check_config(size, _STEPS.value, _BASE.value, _LOG_EVERY.value)
    for size in _SIZES.value:
        result = check(size, _STEPS.value, Path(_OUT_DIR.value) / size, _BASE.value, _LOG_EVERY.value)
        print(format_result(result), flush=True)


if __name__ == "__main__":
    app.run(main)

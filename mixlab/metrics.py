"""Throughput accounting (FLOPs, MFU against a per-device peak table), phase timers, and metric writers."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# Dense peak FLOP/s per device, by compute dtype. Keys are matched as case-insensitive substrings of
# jax.Device.device_kind, first match wins (so "h100 pcie" precedes "h100"; "tpu v5 lite" precedes "tpu v5").
# float32 on GPUs is the TF32 tensor-core rate (XLA's default precision for f32 matmuls there).
# Sources: NVIDIA H100/H200/A100 datasheets (dense, no sparsity); Google Cloud TPU system-architecture pages.
PEAK_FLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("h100 pcie", {"bfloat16": 756e12, "float32": 378e12}),
    ("h100", {"bfloat16": 989e12, "float32": 494.5e12}),
    ("h200", {"bfloat16": 989e12, "float32": 494.5e12}),
    ("gh200", {"bfloat16": 989e12, "float32": 494.5e12}),
    ("b200", {"bfloat16": 2250e12, "float32": 1100e12}),
    ("a100", {"bfloat16": 312e12, "float32": 156e12}),
    ("l40s", {"bfloat16": 362e12, "float32": 183e12}),
    ("l4", {"bfloat16": 121e12, "float32": 60e12}),
    ("tpu v4", {"bfloat16": 275e12, "float32": 275e12}),
    ("tpu v5 lite", {"bfloat16": 197e12, "float32": 197e12}),
    ("tpu v5e", {"bfloat16": 197e12, "float32": 197e12}),
    ("tpu v5p", {"bfloat16": 459e12, "float32": 459e12}),
    ("tpu v5", {"bfloat16": 459e12, "float32": 459e12}),
    ("tpu v6 lite", {"bfloat16": 918e12, "float32": 918e12}),
    ("tpu v6e", {"bfloat16": 918e12, "float32": 918e12}),
)


def table_peak_flops(device_kind: str, dtype: str) -> float | None:
    """Peak dense FLOP/s of one device of this kind from PEAK_FLOPS, or None if the kind is not in the table."""
    kind = device_kind.lower()
    for key, peaks in PEAK_FLOPS:
        if key in kind:
            return peaks[dtype]
    return None


def measure_matmul_peak(device: jax.Device, dtype: str = "float32", n: int = 512, repeats: int = 20) -> float:
    """Best observed FLOP/s of an n x n x n matmul on `device` (used as the peak on CPU, where no table applies)."""
    dt = jnp.dtype(dtype)
    a = jax.device_put(jnp.ones((n, n), dt), device)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def device_peak_flops(device: jax.Device, dtype: str) -> tuple[float | None, str]:
    """(peak FLOP/s, where it came from): per device from the table for accelerators; on CPU the measured matmul
    peak, which is the whole process's (its CPU devices share the host cores, and one matmul already uses them all).
    """
    if device.platform == "cpu":
        return measure_matmul_peak(device, dtype), "measured_cpu_matmul"
    peak = table_peak_flops(device.device_kind, dtype)
    return peak, ("table" if peak is not None else f"unknown device kind {device.device_kind!r}")


def flops_per_token(non_embedding: int, vocab_size: int, D: int, num_layers: int, seq_len: int) -> float:
    """Training FLOPs per token: 6 x (matmul params) + attention, 12 * layers * L * D (PaLM appendix B convention).

    Matmul params are the non-embedding parameters plus the output projection (V x D); the input embedding is a
    lookup and costs no FLOPs. Counted the same way for tied and untied embeddings.
    """
    return 6.0 * (non_embedding + vocab_size * D) + 12.0 * num_layers * seq_len * D


class Timers:
    """Wall-clock seconds accumulated per phase (train, compile, data_wait, eval, checkpoint), carried over restarts."""

    PHASES = ("train", "compile", "data_wait", "eval", "checkpoint")

    def __init__(self, initial: Mapping[str, float] | None = None):
        self.totals = {p: 0.0 for p in self.PHASES}
        self.totals.update(initial or {})

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def add(self, name: str, seconds: float) -> None:
        if name not in self.totals:
            raise KeyError(f"unknown timer phase {name!r}; phases: {self.PHASES}")
        self.totals[name] += seconds

    def as_dict(self) -> dict[str, float]:
        return {f"time_{k}_s": v for k, v in self.totals.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.generic, jax.Array)):
        return np.asarray(value).item()
    return value


class MetricsWriter:
    """Appends JSON lines to `<workdir>/<name>.jsonl` and, if enabled, scalars to TensorBoard (process 0 only)."""

    def __init__(self, workdir: str, name: str, tensorboard: bool, enabled: bool = True):
        self.enabled = enabled
        self.path = os.path.join(workdir, f"{name}.jsonl")
        self._tb = None
        if enabled and tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(workdir, "tb", name))

    def write(self, row: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        row = {k: _jsonable(v) for k, v in row.items()}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, allow_nan=True) + "\n")
        if self._tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step":
                    self._tb.add_scalar(k, v, row["step"])
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_jsonl(path: str) -> list[dict[str, Any]]:
    """All rows of a JSON-lines file ([] if it does not exist)."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]

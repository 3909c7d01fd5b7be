"""Train-step throughput on synthetic batches: tokens/s, MFU, per-step host overhead, compile time, memory.

Uses the trainer's own pieces (StepSpec, init_state, train_step, pack, device_batch, one-step-late fetch) with
random tokens, so the input pipeline is out of the measurement. Two timings per size:
  loop    the trainer's hot path: packed host batch -> global array, dispatch step t, read step t-1's metrics
          (in the trainer the transfer happens in the prefetch thread);
  device  the same compiled step on one resident batch, blocked once at the end (no per-step host work).
Host overhead per step = loop - device. Process CPU time is reported too: on a shared machine wall time depends on
the neighbours, CPU time much less (with one core and single-threaded XLA, tokens per CPU-second is the throughput
the core would give if it were ours alone).

    taskset -c 0 env XLA_FLAGS=--xla_cpu_multi_thread_eigen=false python -m experiments.benchmarks.train \\
        --sizes=t25k,t57k,t100k,t224k --vocab=1024 --seq_len=256 --batch=8 --steps=60

With --baseline=<checkout of another commit> (e.g. `git worktree add /tmp/base 28f675b`), each round runs, in child
processes on the same flags and in rotating order, the baseline's bench as it was (glibc malloc defaults), the
baseline under mixlab.host's malloc tuning, and this bench; the table gives each arm's median tokens/s over the
rounds and the ratios new / baseline (what a user gains) and new / tuned baseline (what the code alone buys). Pin the
parent with taskset: the children inherit the core. --ensemble=K times K members of each size in one vmapped step
(mixlab.train.train_ensemble's), tokens/s counting all members.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np

from mixlab import host, metrics, sharding, step
from mixlab.config import base_config
from mixlab.mixture import Batch
from mixlab.model import ModelConfig, param_counts


def _batches(n: int, B: int, L: int, V: int, seed: int) -> list[Batch]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x = rng.integers(0, V, (B, L + 1), dtype=np.int32)
        source = (rng.random((B, L)) < 0.3).astype(np.int8)
        out.append(Batch(x[:, :-1], x[:, 1:], np.ones((B, L), np.float32), source, i, 0, 0))
    return out


class _SyntheticStream:
    """The MixtureStream interface DeviceStream needs, cycling through fixed random batches."""

    def __init__(self, batches: list[Batch]):
        self.batches, self.global_batch = batches, len(batches[0].tokens)

    def batch(self, step: int, process_index: int = 0, process_count: int = 1) -> Batch:
        return self.batches[step % len(self.batches)]


def bench_size(size: str, args: argparse.Namespace) -> dict:
    """Compile and time one model size (an ensemble of args.ensemble members); returns a row of measurements."""
    cfg = base_config()
    cfg.model.update(size=size, dtype=args.dtype, attention=args.attention)
    optim = ml_collections.ConfigDict(cfg.optim.to_dict())
    optim.update(grad_accum=args.grad_accum, warmup_steps=2)
    model_cfg = ModelConfig.from_config(cfg.model.to_dict(), args.vocab, args.seq_len)
    mesh = sharding.make_mesh(cfg.sharding.mesh.to_dict())
    rules = sharding.resolve_rules()
    sharding.check_batch(args.batch // args.grad_accum, mesh, rules)
    spec = step.StepSpec.create(model_cfg, optim, 10_000, mesh, rules)
    K = args.ensemble
    batch_sharding = sharding.batch_sharding(mesh, rules)
    if K == 1:
        state, shardings = step.init_state(spec, mesh, rules, seed=0)
        step_fn = step.jit_train_step(shardings, batch_sharding, mesh)
    else:
        state, shardings = step.init_ensemble_state(spec, mesh, rules, list(range(K)))
        step_fn = step.jit_ensemble_step(shardings, batch_sharding, mesh)
        batch_sharding = step.stack_sharding(batch_sharding)
    streams = [_SyntheticStream(_batches(8, args.batch, args.seq_len, model_cfg.vocab_size, k)) for k in range(K)]
    stream = step.DeviceStream(streams, batch_sharding)
    first = stream.batch(0)
    t0 = time.perf_counter()
    compiled = step_fn.lower(spec, state, first).compile()
    compile_s = time.perf_counter() - t0

    for _ in range(3):  # warm up
        state, m = compiled(state, first)
    np.asarray(m)

    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        state, m = compiled(state, first)
    np.asarray(m)
    device_s, device_cpu = (time.perf_counter() - t0) / args.steps, (time.process_time() - c0) / args.steps

    pending, dispatch = None, 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(args.steps):
        d0 = time.perf_counter()
        batch = stream.batch(i)
        state, m = compiled(state, batch)
        dispatch += time.perf_counter() - d0
        if pending is not None:
            np.asarray(pending)
        pending = m
    np.asarray(pending)
    loop_s, loop_cpu = (time.perf_counter() - t0) / args.steps, (time.process_time() - c0) / args.steps

    total, non_embedding = param_counts(model_cfg)
    fpt = metrics.flops_per_token(non_embedding, model_cfg.vocab_size, model_cfg.D, model_cfg.num_layers, args.seq_len)
    device = mesh.devices.flat[0]
    peak, source = metrics.device_peak_flops(device, args.dtype)
    peak_total = None if peak is None else peak * (1 if device.platform == "cpu" else mesh.devices.size)
    tokens = K * args.batch * args.seq_len
    stats = device.memory_stats() or {}
    return {
        "size": size,
        "ensemble": K,
        "params_total": total,
        "params_non_embedding": non_embedding,
        "tokens_per_step": tokens,
        "tokens_per_s": tokens / loop_s,
        "tokens_per_s_device_only": tokens / device_s,
        "mfu": tokens / loop_s * fpt / peak_total if peak_total else None,
        "step_ms": 1e3 * loop_s,
        "host_overhead_ms": 1e3 * (loop_s - device_s),
        "dispatch_ms": 1e3 * dispatch / args.steps,  # host time to build the global batch and enqueue the step
        "step_cpu_ms": 1e3 * loop_cpu,  # process CPU time per step: stable on a shared machine
        "host_overhead_cpu_ms": 1e3 * (loop_cpu - device_cpu),
        "tokens_per_cpu_s": tokens / loop_cpu,
        "compile_s": compile_s,
        "peak_flops": peak_total,
        "peak_source": source,
        "peak_bytes_in_use": stats.get("peak_bytes_in_use"),
    }


BENCH_FLAGS = ("sizes", "vocab", "seq_len", "batch", "grad_accum", "dtype", "steps")


def _child_rows(tree: Path, args: argparse.Namespace, tuned: bool) -> list[dict]:
    """Run the bench of the checkout `tree` (this one's module, or the older mixlab.bench_train) in a child process,
    with or without mixlab.host's malloc tuning."""
    module = (
        "experiments.benchmarks.train" if (tree / "experiments/benchmarks/train.py").is_file() else "mixlab.bench_train"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.jsonl"
        flags = [f"--{k}={getattr(args, k)}" for k in BENCH_FLAGS] + [f"--out={out}"]
        if module == "experiments.benchmarks.train":
            flags.append(f"--attention={args.attention}")
        env = {**(host.tuned_env() if tuned else _untuned_env()), "PYTHONPATH": str(tree)}
        subprocess.run([sys.executable, "-m", module, *flags], cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
        return [json.loads(line) for line in out.read_text().splitlines()]


def _untuned_env() -> dict[str, str]:
    env = dict(os.environ)
    tunables = [t for t in env.pop("GLIBC_TUNABLES", "").split(":") if t and t != host.MALLOC_TUNABLE]
    return {**env, "GLIBC_TUNABLES": ":".join(tunables)} if tunables else env


def compare(args: argparse.Namespace) -> None:
    """Rotate child runs of the baseline (plain, tuned) and this checkout; print median tokens/s and ratios."""
    base, new = Path(args.baseline).resolve(), Path(__file__).resolve().parents[2]
    arms = {"baseline": (base, False), "baseline tuned": (base, True), "new": (new, True)}
    results: dict[str, dict[str, list[dict]]] = {name: {} for name in arms}
    for r in range(args.rounds):
        order = list(arms)[r % 3 :] + list(arms)[: r % 3]
        for name in order:
            for row in _child_rows(arms[name][0], args, arms[name][1]):
                results[name].setdefault(row["size"], []).append(row)
                print(f"# round {r + 1} {name:>14} {row['size']}: {row['tokens_per_s']:,.0f} tok/s", flush=True)
    median = {
        name: {s: statistics.median(x["tokens_per_s"] for x in rows) for s, rows in by.items()}
        for name, by in results.items()
    }
    print(
        f"| size | params | baseline tok/s | tuned baseline tok/s | new tok/s | new / baseline | new / tuned baseline "
        f"| new MFU |  ({args.rounds} rounds, medians)"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for size in args.sizes.split(","):
        b, t, n = (median[name][size] for name in arms)
        mfu = [x["mfu"] for x in results["new"][size] if x["mfu"] is not None]
        mfu_text = f"{statistics.median(mfu):.1%}" if mfu else "n/a"
        params = results["new"][size][0]["params_total"]
        print(
            f"| {size} | {params:,} | {b:,.0f} | {t:,.0f} | {n:,.0f} | {n / b:.2f}x | {n / t:.2f}x | {mfu_text} |",
            flush=True,
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="t25k,t57k,t100k,t224k")
    p.add_argument("--vocab", type=int, default=1024)
    p.add_argument("--seq_len", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--grad_accum", type=int, default=1)
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--ensemble", type=int, default=1, help="K members of each size trained in one program")
    p.add_argument("--attention", default="auto", help="model.attention (mixlab.attention.IMPLEMENTATIONS)")
    p.add_argument("--out", default="", help="append one JSON line per size to this file")
    p.add_argument("--baseline", default="", help="a checkout of another commit to compare with, side by side")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of the --baseline comparison")
    args = p.parse_args()
    host.reexec_tuned()
    if args.baseline:
        compare(args)
        return
    print(f"# {jax.devices()[0].device_kind} x {jax.device_count()}, {vars(args)}", flush=True)
    for size in args.sizes.split(","):
        row = bench_size(size, args)
        mfu = "n/a" if row["mfu"] is None else f"{row['mfu']:.1%}"
        mem = row["peak_bytes_in_use"]
        print(
            f"{size:>6}: {row['params_total']:>13,} params | {row['tokens_per_s']:>10,.0f} tok/s "
            f"(device only {row['tokens_per_s_device_only']:,.0f}) | MFU {mfu} | step {row['step_ms']:.2f} ms, "
            f"host overhead {row['host_overhead_ms']:.2f} ms (dispatch {row['dispatch_ms']:.2f} ms) | "
            f"CPU time/step {row['step_cpu_ms']:.2f} ms "
            f"({row['tokens_per_cpu_s']:,.0f} tok per CPU-s), host CPU overhead {row['host_overhead_cpu_ms']:.2f} ms"
            f" | compile {row['compile_s']:.1f} s" + (f" | peak memory {mem / 2**30:.2f} GiB" if mem else ""),
            flush=True,
        )
        if args.out:
            with open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps({**row, **vars(args)}) + "\n")


if __name__ == "__main__":
    main()

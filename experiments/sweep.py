"""Run a grid of training runs as isolated subprocesses, idempotently, and collect them into one table.

A sweep is config-as-code: a Python file whose `get_sweep(arg)` returns a `Sweep` (a base training config plus a
list of config overrides, usually built with `grid`). Each point trains in `runs/<sweep>/<run_id>/` through

    python -m mixlab.main --config=<base config> --workdir=<run dir> --config.<key>=<value> ...

(a point that sets one of train.num_steps/tokens/exposures also sets the other two to 0). Run ids are the overrides,
readable: "size=t57k,ratio=0.2,seed=1". Completed runs (status.json "complete") are skipped; every other run is
(re-)launched and the trainer resumes it from its checkpoint, except a run whose folder another live process holds
(mixlab.run_folder.lock, e.g. a second sweep on the same folder): it is skipped as "held" and left to that process.
Trainers die with the sweep, even when it is SIGKILLed (mixlab.host.die_with_parent). A run that crashes is recorded
as failed (status.json, with the trainer's output in train.log) and its siblings go on. Each distinct data set is
prepared once before the workers start. Each of the N local workers is pinned to its share of the cores (one core:
single-threaded XLA); `--shard_index/--num_shards` split the grid between hosts that share only a filesystem. At the
end, runs/<sweep>/results.csv and .parquet are rebuilt from all run folders (experiments/results.py).

    python -m experiments.sweep --sweep=experiments/configs/<file>.py[:arg] --runs_dir=runs --workers=2 \\
        [--shard_index=I --num_shards=K] [--table_only] [--plan]
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import pandas as pd
from absl import app, flags
from ml_collections import ConfigDict
from tqdm import tqdm

from experiments import results
from mixlab import host, run_folder
from mixlab.cli import flags_parser, no_arguments, one_line_errors
from mixlab.config import (
    ConfigError,
    ensemble_key,
    load_config,
    load_module,
    loading,
    override,
    static_num_steps,
    validate,
    with_run_length,
)
from mixlab.run_folder import LOG_FILE, read_status

PROGRAM = "experiments.sweep"
DEFAULT_TRAINER: tuple[str, ...] = (sys.executable, "-m", "mixlab.main")
SINGLE_THREAD_XLA_FLAG = "--xla_cpu_multi_thread_eigen=false"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._+-]+$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._+-]")
_MAX_RUN_ID = 200
Scalar = bool | int | float | str


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A named list of override points over one base training config ("path/to/config.py[:arg]").

    `fixed` holds overrides of every point that stay out of the run ids (e.g. a warm-start path, which would make
    ids long and tie them to one runs folder); a point may still set such a key to another value."""

    name: str
    config: str
    points: tuple[Mapping[str, Scalar], ...]
    fixed: Mapping[str, Scalar] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not _SAFE_NAME.match(self.name):
            raise ValueError(f"sweep name {self.name!r} must match {_SAFE_NAME.pattern}")
        config_path = self.config.split(":", 1)[0]
        if not config_path.endswith(".py"):
            raise ValueError(f"sweep config {self.config!r} must be a path to a .py config file (optionally :arg)")
        object.__setattr__(self, "fixed", dict(self.fixed))
        points = tuple({**p, **{k: v for k, v in self.fixed.items() if k not in p}} for p in self.points)
        object.__setattr__(self, "points", points)
        if not self.points:
            raise ValueError(f"sweep {self.name!r} has no points")
        for point in self.points:
            for key, value in point.items():
                format_value(key, value)
        ids = self.run_ids()
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"sweep {self.name!r} has points with the same run id: {duplicates}")

    def run_ids(self) -> list[str]:
        """One readable id per point, e.g. "size=t57k,ratio=0.2,seed=1" (see `run_id`)."""
        named = [{k: v for k, v in p.items() if k not in self.fixed or v != self.fixed[k]} for p in self.points]
        labels = _labels(key for point in named for key in point)
        return [run_id(point, labels) for point in named]


def grid(axes: Mapping[str, Sequence[Scalar]]) -> list[dict[str, Scalar]]:
    """Cartesian product of dotted config keys -> values; the last axis varies fastest."""
    for key, values in axes.items():
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"grid axis {key!r} must be a non-empty list of values, got {values!r}")
    keys = list(axes)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(axes[k] for k in keys))]


def format_value(key: str, value: Any) -> str:
    """The command-line form of an override value (what ml_collections' config_flags parses back)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str) and value:
        return value
    raise TypeError(f"override {key!r}: value {value!r} must be a bool, int, float or non-empty str")


def _labels(keys: Iterator[str]) -> dict[str, str]:
    """Run-id label of each dotted key: its last component, or the full key where last components collide."""
    keys = list(dict.fromkeys(keys))
    short = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: s if short.count(s) == 1 else k for k, s in zip(keys, short, strict=True)}


def run_id(point: Mapping[str, Scalar], labels: Mapping[str, str]) -> str:
    """The point's "label=value" pairs joined by ",", in key order; characters unsafe in paths become "_"."""
    rid = ",".join(f"{labels[k]}={_UNSAFE_CHARS.sub('_', format_value(k, v))}" for k, v in point.items()) or "base"
    if len(rid) > _MAX_RUN_ID:
        raise ValueError(f"run id {rid!r} is longer than {_MAX_RUN_ID} characters; sweep fewer keys per point")
    return rid


def load_sweep(spec: str) -> Sweep:
    """Load "path/to/sweep.py[:arg]" and call its get_sweep(arg) (get_sweep() when no arg is given)."""
    module, path, arg = load_module(spec, "sweep")
    if not hasattr(module, "get_sweep"):
        raise AttributeError(f"sweep file {path!r} has no get_sweep(arg) function")
    sweep = module.get_sweep(arg) if arg else module.get_sweep()
    if not isinstance(sweep, Sweep):
        raise TypeError(f"{path}: get_sweep must return an experiments.sweep.Sweep, got {type(sweep).__name__}")
    return sweep


def point_config(sweep: Sweep, point: Mapping[str, Scalar]) -> ConfigDict:
    """The base config with the point's overrides applied; ConfigError for a base config file that is missing or
    raises, an unknown key or a wrong type."""
    with loading(f"sweep {sweep.name!r}: config {sweep.config}"):
        config = load_config(sweep.config)
    override(config, point, f"sweep {sweep.name!r}, config {sweep.config!r}")
    return config


def point_configs(sweep: Sweep, check: Callable[[ConfigDict], Any] | None = validate) -> list[ConfigDict]:
    """The config of every point, each checked by `check` (mixlab.config.validate; None: a --trainer of another
    config schema); a ConfigError names the point's run id."""
    configs = []
    for rid, point in zip(sweep.run_ids(), sweep.points, strict=True):
        config = point_config(sweep, point)
        try:
            if check is not None:
                check(config)
        except ConfigError as e:
            raise ConfigError(f"sweep {sweep.name!r}, point {rid}: {e}") from None
        configs.append(config)
    return configs


def shard(items: Sequence[Any], index: int, count: int) -> list[Any]:
    """Deterministic round-robin share `index` of `count`: the shards partition `items` exactly."""
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard_index={index}, --num_shards={count}: need 0 <= shard_index < num_shards")
    return list(items[index::count])


def cpu_slots(workers: int, cpus: Sequence[int] | None = None) -> list[tuple[int, ...]]:
    """Split the usable cores into `workers` disjoint contiguous groups (one core each, shared, if too few);
    workers = 0: one worker per core, single-threaded (the most runs per hour measured on 2 cores, BUILD_NOTES.md)."""
    if workers < 0:
        raise ConfigError(f"--workers={workers}: must be >= 0 (0 = one per core)")
    if cpus is None:
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cpus = sorted(cpus)
    workers = workers or len(cpus)
    if workers >= len(cpus):
        return [(cpus[i % len(cpus)],) for i in range(workers)]
    return [tuple(cpus[i * len(cpus) // workers : (i + 1) * len(cpus) // workers]) for i in range(workers)]


def worker_env(threads: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of a training subprocess limited to `threads` threads (XLA CPU and numpy/BLAS pools), with
    mixlab.host's malloc tuning (so the trainer need not re-exec itself) and this process as the parent it must not
    outlive (mixlab.host.die_with_parent)."""
    env = host.tuned_env(os.environ if base is None else base)
    env[host.PARENT_PID_ENV] = str(os.getpid())
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    xla_flags = env.get("XLA_FLAGS", "").split()
    if threads == 1 and SINGLE_THREAD_XLA_FLAG not in xla_flags:
        env["XLA_FLAGS"] = " ".join([*xla_flags, SINGLE_THREAD_XLA_FLAG])
    return env


def train_command(trainer: Sequence[str], config: str, run_dir: Path, point: Mapping[str, Scalar]) -> list[str]:
    """`trainer --config=... --workdir=... --config.key=value ...` for one point."""
    flags_ = [f"--config.{k}={format_value(k, v)}" for k, v in with_run_length(point).items()]
    return [*trainer, f"--config={config}", f"--workdir={run_dir}", *flags_]


@contextlib.contextmanager
def _affinity(cpus: Sequence[int]) -> Iterator[None]:
    """Pin the calling thread while a child is spawned: the child (and all its threads) inherit the mask.
    A no-op where the OS has no CPU affinity API (macOS)."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


@dataclasses.dataclass
class _Job:
    members: list[tuple[str, Path]]  # (run id, run folder); more than one: an ensemble, logged in the first folder
    slot: int
    process: subprocess.Popen
    log: IO[str]
    start: float
    offset: int  # where this job's output begins in the log


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        return f"trainer killed by signal {signal.Signals(-returncode).name}"
    return f"trainer exited with code {returncode}"


def _last_log_line(log_path: Path) -> str:
    lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _held_message(holder: Mapping[str, Any]) -> str:
    return f"held by pid {holder['pid']} on {holder['host']}, skipped"


def _job_output(job: _Job) -> str:
    with open(job.members[0][1] / LOG_FILE, "rb") as f:
        f.seek(job.offset)
        return f.read().decode(errors="replace")


def _held_outcomes(job: _Job) -> list[tuple[str, str, str]]:
    """("held" outcomes of) a job whose trainer found a folder locked by another process after the sweep's check
    (exit status 2 and run_folder.locked_error in its output); [] for any other ending. It wrote nothing."""
    if job.process.returncode != 2:
        return []
    output = _job_output(job)
    holders = {rid: run_folder.holder_in_output(output, run_dir) for rid, run_dir in job.members}
    held = {rid: h for rid, h in holders.items() if h is not None}
    if not held:
        return []
    first, holder = next(iter(held.items()))
    partner = f"not trained: its ensemble's {first} is {_held_message(holder)}"
    return [(rid, "held", _held_message(held[rid]) if rid in held else partner) for rid, _ in job.members]


def _finish(job: _Job) -> list[tuple[str, str, str]]:
    """(run id, "complete"|"failed"|"held", message) of each run of a finished job; records failures the trainer
    could not (a run still "running" when its trainer is gone failed with the exit reason and the last log line)."""
    held = _held_outcomes(job)
    if held:
        return held
    elapsed = time.monotonic() - job.start
    returncode = job.process.returncode
    log_path = job.members[0][1] / LOG_FILE
    outcomes = []
    for rid, run_dir in job.members:
        status = read_status(run_dir)
        if status["status"] == "complete":
            outcomes.append((rid, "complete", f"complete in {elapsed:.1f}s{_final_metrics(run_dir)}"))
            continue
        if status["status"] != "failed":
            why = _exit_reason(returncode) if returncode else f"trainer exited 0 with status {status['status']!r}"
            error = f"{why}; last log line: {_last_log_line(log_path)}"
            run_folder.write_status(run_dir, "failed", error, status.get("wall_time_s", elapsed))
            status = read_status(run_dir)
        error_line = (status.get("error") or "").strip().splitlines()[-1:] or ["(no error message)"]
        outcomes.append((rid, "failed", f"FAILED after {elapsed:.1f}s: {error_line[0]} (log: {log_path})"))
    return outcomes


def _final_metrics(run_dir: Path) -> str:
    rows = run_folder.read_eval_rows(run_dir)
    if not rows or "acc" not in rows[-1]:
        return ""
    return f", acc {rows[-1]['acc']:.3f} at step {rows[-1].get('step')}"


def prepare_data(config: ConfigDict) -> None:
    """Build (or load) everything the trainer reads for config.data: tokenizer, web stores, SynBio."""
    from data_gen.prepare import prepare

    prepare(config.data)


def _data_key(config: ConfigDict) -> str:
    """Identity of a run's data set: config.data except the mixing ratio (which changes no prepared file)."""
    return json.dumps({k: v for k, v in config.data.to_dict().items() if k != "ratio"}, sort_keys=True, default=str)


def run_sweep(
    sweep: Sweep,
    runs_dir: str | os.PathLike,
    *,
    workers: int = 0,
    shard_index: int = 0,
    num_shards: int = 1,
    trainer: Sequence[str] = DEFAULT_TRAINER,
    prepare: Callable[[ConfigDict], Any] | None = prepare_data,
    check: Callable[[ConfigDict], Any] | None = validate,
    ensemble: int = 1,
    progress: bool = True,
    label: str = "",
    poll_s: float = 0.1,
) -> dict[str, str]:
    """Train this shard's runs that are not complete, N at a time; rebuild the table. Returns run_id -> outcome
    ("skipped" = was already complete, "complete", "failed", "held" = another live process holds its folder's lock,
    checked before each launch; not trained here, and not complete, so a later sweep trains it if still needed).

    `prepare(config)` runs here, once per distinct config.data of the runs to train, before any worker starts, so
    that workers only load the data instead of each building the same files (safe, but N times the work; None: the
    trainer builds what is missing). `check(config)` validates every point's config before anything starts.
    `ensemble` > 1 trains up to that many compatible runs (`ensemble_groups`) in one trainer process. The progress
    bar (`label`, default the sweep's name) advances by each finished run's model FLOPs, so its ETA counts compute,
    not runs."""
    if ensemble < 1:
        raise ConfigError(f"--ensemble={ensemble}: must be >= 1")
    configs = point_configs(sweep, check)  # every point valid, before the first run starts
    config_of = dict(zip(sweep.run_ids(), configs, strict=True))
    sweep_dir = Path(runs_dir) / sweep.name
    todo = shard(list(zip(sweep.run_ids(), sweep.points, strict=True)), shard_index, num_shards)
    slots = cpu_slots(workers)
    outcomes: dict[str, str] = {}
    pending: list[tuple[str, Mapping[str, Scalar]]] = []
    for rid, point in todo:
        if read_status(sweep_dir / rid)["status"] == "complete":
            outcomes[rid] = "skipped"
        else:
            pending.append((rid, point))
    if outcomes:
        print(f"{sweep.name}: {len(outcomes)} of {len(todo)} runs already complete, skipped", flush=True)
    if prepare is not None and pending:  # before the progress bar: an error here is the last thing on stderr
        data_sets: dict[str, ConfigDict] = {}
        for rid, _ in pending:
            data_sets.setdefault(_data_key(config_of[rid]), config_of[rid])
        for i, config in enumerate(data_sets.values()):
            print(f"{sweep.name}: preparing data set {i + 1} of {len(data_sets)}", flush=True)
            prepare(config)
    weight = _run_weights(config_of)
    # `initial` keeps skipped runs out of the rate, so the ETA reflects runs actually trained.
    bar = tqdm(
        total=sum(weight[rid] for rid, _ in todo),
        initial=sum(weight[rid] for rid in outcomes),
        desc=label or sweep.name,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]",
        postfix=f"{len(outcomes)}/{len(todo)} runs",
        disable=not progress,
    )
    groups = ensemble_groups(pending, config_of, ensemble)
    running: dict[int, _Job] = {}

    def record(ended: list[tuple[str, str, str]]) -> None:
        for rid, outcome, message in ended:
            outcomes[rid] = outcome
            bar.write(f"{rid}: {message}")
            failed = sum(o == "failed" for o in outcomes.values())
            bar.set_postfix_str(f"{len(outcomes)}/{len(todo)} runs" + (f", {failed} failed" if failed else ""), False)
            bar.update(weight[rid])

    try:
        while groups or running:
            for slot in range(len(slots)):
                while slot not in running and groups:
                    group, ended = _launchable(groups.pop(0), sweep_dir)
                    record(ended)
                    if not group:
                        continue
                    running[slot] = _start(sweep, sweep_dir, group, slot, slots[slot], trainer)
                    names = " + ".join(rid for rid, _ in group)
                    bar.write(f"{names}: started on cpus {','.join(map(str, slots[slot]))}")
            time.sleep(poll_s)
            for slot, job in list(running.items()):
                if job.process.poll() is None:
                    continue
                job.log.close()
                del running[slot]
                record(_finish(job))
    finally:
        for job in running.values():
            job.process.terminate()
        for job in running.values():
            job.process.wait()
            job.log.close()
        bar.close()
    results.write_table(sweep_dir)
    return outcomes


def _run_weights(config_of: Mapping[str, ConfigDict]) -> dict[str, float]:
    """run id -> its share of the sweep's compute (model FLOPs, normalised to a mean of 1); 1 for every run when
    some run's cost is not known from its config (a length in train.exposures, a trainer with a config of its own)."""
    from experiments.configs.common import cost_summary

    try:
        flops = {rid: cost_summary(config)["model_flops"] for rid, config in config_of.items()}
    except (ValueError, KeyError, AttributeError):
        return dict.fromkeys(config_of, 1.0)
    mean = sum(flops.values()) / len(flops)
    return {rid: f / mean for rid, f in flops.items()}


def ensemble_groups(
    pending: list[tuple[str, Mapping[str, Scalar]]], config_of: Mapping[str, ConfigDict], size: int
) -> list[list[tuple[str, Mapping[str, Scalar]]]]:
    """The pending runs in groups of up to `size` that can train as one ensemble: equal mixlab.config.ensemble_key
    and a run length known from the config alone (runs given in exposures train alone). Order is kept."""
    groups: list[list[tuple[str, Mapping[str, Scalar]]]] = []
    open_group: dict[str, list] = {}
    for rid, point in pending:
        config = config_of[rid]
        steps = static_num_steps(config)
        key = None if size == 1 or steps is None else f"{ensemble_key(config)}|{steps}"
        group = open_group.get(key) if key is not None else None
        if group is None or len(group) >= size:
            group = []
            groups.append(group)
            if key is not None:
                open_group[key] = group
        group.append((rid, point))
    return groups


def _launchable(
    group: list[tuple[str, Mapping[str, Scalar]]], sweep_dir: Path
) -> tuple[list[tuple[str, Mapping[str, Scalar]]], list[tuple[str, str, str]]]:
    """(the group's runs to launch now, outcomes of the others): a run completed since the sweep began is "skipped",
    a run whose folder another live process holds (run_folder.lock_holder) is "held"."""
    launch, ended = [], []
    for rid, point in group:
        holder = run_folder.lock_holder(sweep_dir / rid)
        if holder is not None:
            ended.append((rid, "held", _held_message(holder)))
        elif read_status(sweep_dir / rid)["status"] == "complete":
            ended.append((rid, "skipped", "completed by another process, skipped"))
        else:
            launch.append((rid, point))
    return launch, ended


def _start(
    sweep: Sweep,
    sweep_dir: Path,
    group: list[tuple[str, Mapping[str, Scalar]]],
    slot: int,
    cpus: Sequence[int],
    trainer: Sequence[str],
) -> _Job:
    members = [(rid, sweep_dir / rid) for rid, _ in group]
    for _, run_dir in members:
        run_dir.mkdir(parents=True, exist_ok=True)
    if len(group) == 1:
        command = train_command(trainer, sweep.config, members[0][1], group[0][1])
    else:
        spec = [
            {"workdir": str(d), "overrides": with_run_length(p)} for (_, d), (_, p) in zip(members, group, strict=True)
        ]
        command = [*trainer, f"--config={sweep.config}", f"--members={json.dumps(spec)}"]
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    log = open(members[0][1] / LOG_FILE, "a")  # noqa: SIM115 -- closed when the job ends
    log.write(f"=== {stamp} cpus={list(cpus)}: {shlex.join(command)}\n")
    log.flush()
    offset = log.tell()
    for _, run_dir in members[1:]:
        with open(run_dir / LOG_FILE, "a") as other:
            other.write(f"=== {stamp}: trained in an ensemble; its log is {members[0][1] / LOG_FILE}\n")
    with _affinity(cpus):
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=worker_env(len(cpus))
        )
    return _Job(members, slot, process, log, time.monotonic(), offset)


def plan(sweep: Sweep, shard_index: int = 0, num_shards: int = 1) -> str:
    """This shard's runs and their cost, plus totals: parameters, tokens, 6ND FLOPs (N = total parameters), model
    FLOPs (6 x matmul params + attention, what MFU counts), and hours of one H100/H200 at 40% MFU for each
    (experiments.configs.common.cost_summary; 989 TFLOP/s dense bf16)."""
    from experiments.configs.common import cost_summary

    rows, skipped = [], []
    for rid, point in shard(list(zip(sweep.run_ids(), sweep.points, strict=True)), shard_index, num_shards):
        try:
            cost = cost_summary(point_config(sweep, point))
            hours_per_flop = cost["h100_hours_at_40pct_mfu"] / cost["model_flops"]
            rows.append({"run_id": rid, **cost, "h100_hours_6nd": cost["six_nd"] * hours_per_flop})
        except ValueError as e:  # a budget in train.exposures: its tokens depend on the data
            skipped.append(f"{rid}: {e}")
    if not rows:
        return "\n".join([f"{sweep.name}: no run with a cost known before the data is built", *skipped])
    df = pd.DataFrame(rows)
    total = df.drop(columns="run_id").sum()
    lines = [
        df.to_string(index=False, float_format=lambda x: f"{x:.3g}"),
        f"total of {len(df)} runs: {total['tokens']:.4g} tokens; 6ND {total['six_nd']:.3g} FLOPs = "
        f"{total['h100_hours_6nd']:.4g} H100/H200-hours at 40% MFU; model FLOPs {total['model_flops']:.3g} = "
        f"{total['h100_hours_at_40pct_mfu']:.4g} H100/H200-hours at 40% MFU",
    ]
    return "\n".join(lines + [f"no cost (needs the data): {s}" for s in skipped])


def _define_flags() -> None:
    m = {"module_name": sys.argv[0]}  # absl's --help lists the flags of the module keyed by sys.argv[0]
    flags.DEFINE_string("sweep", None, "Sweep file, path/to/sweep.py[:arg], defining get_sweep(arg).", **m)
    flags.DEFINE_string("runs_dir", "runs", "Runs go to <runs_dir>/<sweep name>/<run_id>/.", **m)
    flags.DEFINE_integer(
        "workers", 0, "Local training processes at a time, each pinned to its share of cores (0 = one per core).", **m
    )
    flags.DEFINE_integer("shard_index", 0, "This process's share of the grid (0-based).", **m)
    flags.DEFINE_integer("num_shards", 1, "Number of shards the grid is split into (e.g. the SLURM array size).", **m)
    flags.DEFINE_bool("table_only", False, "Only rebuild results.csv/.parquet from the run folders.", **m)
    flags.DEFINE_bool(
        "plan",
        False,
        "Only check every point's config (not its data files or mesh, which may belong to "
        "another machine) and print this shard's runs and their cost (6ND FLOPs, GPU-hours).",
        **m,
    )
    flags.DEFINE_string("trainer", shlex.join(DEFAULT_TRAINER), "Command that trains one run (gets --config...).", **m)
    flags.DEFINE_integer(
        "ensemble", 1, "Train up to this many compatible runs in one program (mixlab.train.train_ensemble).", **m
    )
    flags.DEFINE_bool("prepare", True, "Build each distinct data set once before the workers start.", **m)
    flags.DEFINE_bool(
        "validate", True, "Validate every point's config first (off: a --trainer of another schema).", **m
    )
    flags.mark_flag_as_required("sweep")


def main(argv: Sequence[str]) -> int:
    with one_line_errors(PROGRAM):
        no_arguments(argv)
        return _main(flags.FLAGS)


def _main(FLAGS: flags.FlagValues) -> int:
    with loading(f"--sweep={FLAGS.sweep}"):
        sweep = load_sweep(FLAGS.sweep)
    sweep_dir = Path(FLAGS.runs_dir) / sweep.name
    if FLAGS.plan:
        point_configs(sweep, functools.partial(validate, here=False) if FLAGS.validate else None)
        print(plan(sweep, FLAGS.shard_index, FLAGS.num_shards))
        return 0
    if FLAGS.table_only:
        table = results.write_table(sweep_dir)
        print(f"results: {table} and {sweep_dir / results.PARQUET_FILE}")
        return 0
    outcomes = run_sweep(
        sweep,
        FLAGS.runs_dir,
        workers=FLAGS.workers,
        shard_index=FLAGS.shard_index,
        num_shards=FLAGS.num_shards,
        trainer=shlex.split(FLAGS.trainer),
        prepare=prepare_data if FLAGS.prepare else None,
        check=validate if FLAGS.validate else None,
        ensemble=FLAGS.ensemble,
    )
    print(f"results: {sweep_dir / results.CSV_FILE} and {sweep_dir / results.PARQUET_FILE}")
    held = sorted(rid for rid, outcome in outcomes.items() if outcome == "held")
    if held:
        print(f"{len(held)} runs held by other processes, skipped: {', '.join(held)}", file=sys.stderr)
    failed = sorted(rid for rid, outcome in outcomes.items() if outcome == "failed")
    if failed:
        print(f"{len(failed)} failed runs (see their {LOG_FILE}): {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def cli() -> None:
    """Entry point; flags are defined here, not at import, so that sweep files can import this module. SIGTERM
    exits through run_sweep's cleanup, which stops the trainers (no orphan keeps writing a run folder)."""
    _define_flags()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    app.run(main, flags_parser=flags_parser(PROGRAM))


if __name__ == "__main__":
    # Run the importable module's cli, so that sweep files (which import experiments.sweep) and this CLI share one
    # Sweep class.
    from experiments import sweep as _sweep_module

    _sweep_module.cli()

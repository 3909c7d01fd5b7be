"""Fault injection: a tiny real sweep SIGKILLed at random moments, rerun after each kill, ends with the clean table.

Two runs of the real trainer (mixlab.main on tiny.py:runlocal shrunk to t20k and 36 steps, a metrics row every
step, a checkpoint every 3, an eval every 6) go through the sweep CLI as one ensemble (--ensemble=2, as `make demo`
trains: one trainer process writes both run folders, each with its own lock and checkpoints; the clean sweep too, so
the tables compare cell for cell). Each sweep invocation gets one SIGKILL, its moment and target drawn by a
fixed-seed rng:
- in a step: a random delay (under one step) after this launch's metrics row of a random step 1-6 steps past the
  run's latest checkpoint;
- in a checkpoint write: a random delay after the tmp folder of this launch's 1st or 2nd checkpoint appears
  (orbax writes `<step>.orbax-checkpoint-tmp` in the background and renames it when done); the kill counts as one
  in a write only if that folder is still there after the kill;
- in the results aggregation: a random delay after the sweep's temporary results file appears (counted as mid-write
  if a temporary file is left behind), in the same invocation when a step or checkpoint kill hit only the trainer
  (the sweep records the run failed and writes its table), and alone once TRAINER_KILLS kills went to trainers.
Step and checkpoint kills hit the trainer (the sweep records the run failed and goes on) or the sweep (its
trainers die with it, mixlab.host.die_with_parent); the results aggregation runs in the sweep. After every killed
sweep it is rerun, as a user would; at the end it finishes the runs and its table must equal a clean sweep's, cell for
cell, except the timing columns TIMING_COLUMNS. Data (data/) and compiled programs (.cache/jax) are the
repository's caches, as for a user's runlocal run.

    python -m pytest -p no:xdist -s tests/test_fault_injection.py    # prints the kills survived and the wall time
"""

import collections
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from experiments import results
from mixlab import run_folder
from tests.processes import alive

REPO = Path(__file__).resolve().parents[1]
SEED = 2025
MIN_KILLS = 20
TRAINER_KILLS = 12  # kills in a step or a checkpoint write; the others go to the results aggregation
TIMING_COLUMNS = ["eval_time_s", "wall_time_s"]  # the only columns that may differ from the clean run's
STEP_DELAY_S = (0.0, 0.05)  # after the chosen step's metrics row (a step takes ~0.05 s)
CHECKPOINT_DELAY_S = (0.0, 0.1)  # after the checkpoint's tmp folder appears (a write takes ~0.1-0.25 s)
TABLE_DELAY_S = (0.0, 0.005)  # after the temporary results file appears
CHECKPOINT_TMP = ".orbax-checkpoint-tmp"
RUN_IDS = ("ratio=0.3", "ratio=0.7")

CONFIG = """
from experiments.configs.tiny import get_config as tiny_config


def get_config(arg=""):
    c = tiny_config("runlocal")
    c.model.size = "t20k"
    c.train.update(num_steps=36, checkpoint_every=3, eval_every=6, log_every=1, tensorboard=False)
    return c
"""

SWEEP = """
from experiments.sweep import Sweep, grid


def get_sweep(arg=""):
    return Sweep(name="faults", config={config!r}, points=grid({{"data.ratio": [0.3, 0.7]}}))  # RUN_IDS
"""


class Sweeps:
    """The sweep CLI over one runs folder (its output appended to <runs>.log)."""

    def __init__(self, tmp: Path, runs: Path):
        self.dir, self.log = runs / "faults", tmp / f"{runs.name}.log"
        self.command = [sys.executable, "-m", "experiments.sweep", f"--sweep={tmp / 'sweep.py'}"]
        self.command += [f"--runs_dir={runs}", "--workers=2", "--ensemble=2"]
        self.env = {**os.environ, "XLA_FLAGS": ""}  # one CPU device per trainer

    def start(self) -> subprocess.Popen:
        with open(self.log, "a") as log:
            return subprocess.Popen(
                self.command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def run(self) -> int:
        proc = self.start()
        try:
            return proc.wait(timeout=600)
        finally:
            _kill_group(proc)

    def pending(self) -> list[Path]:
        """Folders of the runs that are not complete."""
        return [self.dir / rid for rid in RUN_IDS if not run_folder.is_complete(self.dir / rid)]

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _sigkill(pid: int, also: int | None = None) -> None:
    """SIGKILL pid; wait until it and `also` (a trainer of a killed sweep, which dies with it) are gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(p is not None and alive(p) for p in (pid, also)):
        assert time.monotonic() < deadline, f"pid {pid} or {also} outlived SIGKILL"
        time.sleep(0.01)


def _wait(predicate, proc: subprocess.Popen, poll_s: float = 0.005, timeout_s: float = 300.0):
    """predicate()'s first truthy value, or None once the sweep has exited without one."""
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if proc.poll() is not None:
            return None
        assert time.monotonic() < deadline, "timed out waiting for a kill moment"
        time.sleep(poll_s)
    return value


def _trainer(run_dir: Path) -> int | None:
    """pid of the live trainer holding the run folder's lock."""
    holder = run_folder.lock_holder(run_dir)
    return int(holder["pid"]) if holder and str(holder["pid"]).isdigit() else None


def _latest_checkpoint(run_dir: Path) -> int:
    """The step the run resumes from."""
    folder = run_dir / run_folder.CHECKPOINT_DIR
    return max((int(p.name) for p in folder.iterdir() if p.name.isdigit()), default=0) if folder.is_dir() else 0


def _logged_steps(run_dir: Path) -> list[int]:
    """The step of every metrics row (one per step), in order; a line being written is left out."""
    path, steps = run_dir / f"{run_folder.METRICS}.jsonl", []
    for line in path.read_text().splitlines() if path.exists() else []:
        with contextlib.suppress(json.JSONDecodeError):
            steps.append(json.loads(line)["step"])
    return steps


def _checkpoint_tmps(run_dir: Path) -> set[tuple[str, int]]:
    """(name, inode) of the orbax tmp folders in the run's checkpoint folder."""
    with contextlib.suppress(FileNotFoundError), os.scandir(run_dir / run_folder.CHECKPOINT_DIR) as entries:
        return {(e.name, e.inode()) for e in entries if e.name.endswith(CHECKPOINT_TMP)}
    return set()


def _table_tmps(sweep_dir: Path, pid: int) -> list[Path]:
    """The temporary results files of sweep process `pid` (results.write_table names them after it)."""
    return list(sweep_dir.glob(f".results.*.tmp.{pid}")) if sweep_dir.is_dir() else []


def _kill_trainer_moment(proc: subprocess.Popen, rng: random.Random, moment: str, victim: Path) -> str | None:
    """SIGKILL the victim's trainer, or the sweep, at a moment in a step or a checkpoint write: what was hit, or None
    when the launch ended before the moment."""
    kill_sweep = rng.random() < 0.5
    if moment == "step":
        old, target = len(_logged_steps(victim)), _latest_checkpoint(victim) + rng.randint(1, 6)
        arrived = _wait(lambda: target in _logged_steps(victim)[old:] and _trainer(victim), proc)
        delay = rng.uniform(*STEP_DELAY_S)
    else:
        before, nth, seen = _checkpoint_tmps(victim), rng.randint(1, 2), set()

        def nth_write() -> int | None:
            seen.update(_checkpoint_tmps(victim) - before)
            return len(seen) >= nth and _trainer(victim)

        arrived = _wait(nth_write, proc)
        delay = rng.uniform(*CHECKPOINT_DELAY_S)
    if not arrived:
        return None
    time.sleep(delay)
    pid = _trainer(victim)
    if pid is None:
        return None
    writing = _checkpoint_tmps(victim)
    _sigkill(proc.pid, also=pid) if kill_sweep else _sigkill(pid)
    cut = _checkpoint_tmps(victim) & writing  # a write in progress at the kill leaves its tmp folder
    where = "in a step" if moment == "step" else "in a checkpoint write" if cut else "just after a checkpoint write"
    return f"{where}, {'sweep' if kill_sweep else 'trainer'} killed"


def _kill_table_moment(sweeps: Sweeps, proc: subprocess.Popen, rng: random.Random) -> str | None:
    """SIGKILL the sweep while it writes the results table: what was hit, or None (it finished first)."""
    if not _wait(lambda: _table_tmps(sweeps.dir, proc.pid), proc, poll_s=0.0005):
        return None
    time.sleep(rng.uniform(*TABLE_DELAY_S))
    if proc.poll() is not None:
        return None
    _sigkill(proc.pid)
    for read, name in ((pd.read_csv, results.CSV_FILE), (pd.read_parquet, results.PARQUET_FILE)):
        if (sweeps.dir / name).exists():
            read(sweeps.dir / name)  # written by rename: never half a file
    return "in the results write" if _table_tmps(sweeps.dir, proc.pid) else "just after the results write"


def _table(sweep_dir: Path) -> pd.DataFrame:
    return pd.read_csv(sweep_dir / results.CSV_FILE).drop(columns=TIMING_COLUMNS)


@pytest.mark.slow
def test_sigkills_at_random_moments_then_reruns_give_the_clean_table(tmp_path):
    t0 = time.monotonic()
    config = tmp_path / "config.py"
    config.write_text(CONFIG)
    (tmp_path / "sweep.py").write_text(SWEEP.format(config=str(config)))
    clean = Sweeps(tmp_path, tmp_path / "clean")
    assert clean.run() == 0, clean.tail()
    t_clean = time.monotonic() - t0

    sweeps, rng = Sweeps(tmp_path, tmp_path / "faulted"), random.Random(SEED)
    kills: collections.Counter = collections.Counter()
    invocations = 0
    while kills.total() < MIN_KILLS:
        pending = sweeps.pending()
        trainer_kills = kills.total() - sum(n for hit, n in kills.items() if "results" in hit)
        proc = sweeps.start()
        invocations += 1
        try:
            hit = None
            if pending and trainer_kills < TRAINER_KILLS:
                moment, victim = rng.choice(["step", "checkpoint"]), rng.choice(pending)
                hit = _kill_trainer_moment(proc, rng, moment, victim)
                kills.update([hit] if hit else [])
            if proc.poll() is None and (hit is None or "trainer killed" in hit):  # the sweep goes on: its table
                kills.update([hit] if (hit := _kill_table_moment(sweeps, proc, rng)) else [])
            proc.wait(timeout=600)
        finally:
            _kill_group(proc)
    for _ in range(3):  # the reruns that finish what the last kills interrupted
        invocations += 1
        if sweeps.run() == 0:
            break
    wall = time.monotonic() - t0
    print(f"\nsurvived {kills.total()} SIGKILLs in {invocations} sweep invocations:")
    print("\n".join(f"  {n:2d} x {hit}" for hit, n in sorted(kills.items())))
    print(f"clean sweep {t_clean:.1f} s; whole test {wall:.1f} s; load average {os.getloadavg()[0]:.1f}")

    assert not sweeps.pending(), sweeps.tail()
    assert kills.total() >= MIN_KILLS
    for where in ("in a step", "in a checkpoint write", "in the results write"):
        assert any(hit.startswith(where) for hit in kills), f"no kill landed {where}: {dict(kills)}"
    assert not list(sweeps.dir.glob("*/corrupt-checkpoint-*")), "a kill left an unreadable checkpoint"
    pd.testing.assert_frame_equal(_table(sweeps.dir), _table(clean.dir), check_exact=True)

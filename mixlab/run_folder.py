"""The run folder: its file names, atomic JSON writes, and the reads that the trainer, the sweep and the results
table share.

    <run>/config.json      the resolved config, plus the facts the trainer computed under "derived"
          status.json      {"status": "running" | "complete" | "failed", "error": str | None, "wall_time_s": float,
                            "stopped": why a run ended before its budget (only then)}
          metrics.jsonl    one JSON object per log point (mixlab.metrics.MetricsWriter)
          eval.jsonl       one JSON object per evaluation
          checkpoints/     orbax checkpoints (mixlab.checkpoint)
          train.log        the trainer's output, when a sweep launched it
          tb/              TensorBoard events (optional)
          .lock            flock'ed by the one process writing the run (`lock`); its pid, host and start time
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import time
import warnings
from pathlib import Path
from typing import IO, Any

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
METRICS = "metrics"  # metrics.jsonl (MetricsWriter appends ".jsonl")
EVAL = "eval"  # eval.jsonl
CHECKPOINT_DIR = "checkpoints"
LOG_FILE = "train.log"
LOCK_FILE = ".lock"
_LOCK_TRIES, _LOCK_RETRY_S = 10, 0.05  # a lock_holder() probe holds the lock for microseconds
_LOCKED = re.compile(r"run folder (?P<dir>.+) is locked by pid (?P<pid>\S+) on (?P<host>\S+) since (?P<since>\S+)")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically: readers see the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's status.json, or {"status": "new"} when it has none (never started, or died before writing)."""
    path = Path(run_dir) / STATUS_FILE
    return read_json(path) if path.exists() else {"status": "new", "error": None}


def write_status(
    run_dir: str | os.PathLike, status: str, error: str | None, wall_time_s: float, stopped: str | None = None
) -> None:
    """status.json; `stopped` says why a complete run ended before its budget (train.stop_at_acc, the guardrail)."""
    record = {"status": status, "error": error, "wall_time_s": wall_time_s}
    write_json(Path(run_dir) / STATUS_FILE, record if stopped is None else {**record, "stopped": stopped})


def is_complete(run_dir: str | os.PathLike) -> bool:
    return read_status(run_dir)["status"] == "complete"


def read_config(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run's config.json, or None when it has none."""
    path = Path(run_dir) / CONFIG_FILE
    return read_json(path) if path.exists() else None


def read_eval_rows(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """eval.jsonl rows sorted by step, newest row per step (a resumed run re-evaluates after its last checkpoint).

    A line that is not JSON (a write cut short by a kill) is skipped with a warning naming it.
    """
    path = Path(run_dir) / f"{EVAL}.jsonl"
    if not path.exists():
        return []
    by_step: dict[int, dict[str, Any]] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            warnings.warn(f"{path}:{number}: skipping a line that is not JSON: {line[:80]!r}", stacklevel=2)
            continue
        if not isinstance(row, dict) or "step" not in row:
            raise ValueError(f"{path}:{number}: an eval row must be a JSON object with a 'step', got {line[:80]!r}")
        by_step[row["step"]] = row
    return [by_step[step] for step in sorted(by_step)]


class RunFolderLocked(RuntimeError):
    """Another live process holds the run folder's lock; the message (`locked_error`) names it."""


def lock(run_dir: str | os.PathLike) -> IO[str]:
    """Take the existing run folder's exclusive lock and write this process's pid, host and start time into it.

    Held until the returned file is closed or this process dies (the kernel drops a dead holder's flock).
    RunFolderLocked when another process holds it (retried for a moment, so that a probe does not count).
    """
    path = Path(run_dir) / LOCK_FILE
    f = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o644), "r+", encoding="utf-8")
    for attempt in range(_LOCK_TRIES):
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt == _LOCK_TRIES - 1:
                f.close()
                raise RunFolderLocked(locked_error(run_dir, _read_holder(path))) from None
            time.sleep(_LOCK_RETRY_S)
    f.truncate(0)
    since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}) + "\n")
    f.flush()
    return f


def lock_holder(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """{"pid", "host", "since"} of the live process holding the run folder's lock, or None when none does."""
    path = Path(run_dir) / LOCK_FILE
    try:
        f = open(path, "rb")  # noqa: SIM115 -- closed below
    except (FileNotFoundError, NotADirectoryError):
        return None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(path)
    return None


def _read_holder(path: Path) -> dict[str, Any]:
    """The lock file's holder record (waiting a moment for a holder that has the lock but has not yet written it)."""
    for _ in range(_LOCK_TRIES):
        try:
            holder = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(holder, dict) and {"pid", "host", "since"} <= holder.keys():
                return holder
        except (OSError, json.JSONDecodeError):
            pass
        time.sleep(_LOCK_RETRY_S)
    return {"pid": "?", "host": "?", "since": "?"}


def locked_error(run_dir: str | os.PathLike, holder: dict[str, Any]) -> str:
    """The one-line refusal of a run folder that `holder` (lock_holder's record) has locked."""
    return (
        f"run folder {run_dir} is locked by pid {holder['pid']} on {holder['host']} since {holder['since']} "
        "(another process is training it)"
    )


def holder_in_output(text: str, run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The holder named by a `locked_error` line about `run_dir` in a trainer's output, or None."""
    for m in _LOCKED.finditer(text):
        if m["dir"] == str(run_dir):
            return {"pid": m["pid"], "host": m["host"], "since": m["since"]}
    return None

"""The run folder: its file names, atomic JSON writes, and the reads that the trainer, the sweep and the results
table share.

    <run>/config.json      the resolved config, plus the facts the trainer computed under "derived"
          status.json      {"status": "running" | "complete" | "failed", "error": str | None, "wall_time_s": float}
          metrics.jsonl    one JSON object per log point (mixlab.metrics.MetricsWriter)
          eval.jsonl       one JSON object per evaluation
          checkpoints/     orbax checkpoints (mixlab.checkpoint)
          train.log        the trainer's output, when a sweep launched it
          tb/              TensorBoard events (optional)
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
METRICS = "metrics"  # metrics.jsonl (MetricsWriter appends ".jsonl")
EVAL = "eval"  # eval.jsonl
CHECKPOINT_DIR = "checkpoints"
LOG_FILE = "train.log"


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


def write_status(run_dir: str | os.PathLike, status: str, error: str | None, wall_time_s: float) -> None:
    write_json(Path(run_dir) / STATUS_FILE, {"status": status, "error": error, "wall_time_s": wall_time_s})


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

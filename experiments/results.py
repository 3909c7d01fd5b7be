"""The results table of a sweep: one row per run x eval step, rebuilt from the run folders.

Each run folder <sweep_dir>/<run_id>/ holds config.json (the resolved config), eval.jsonl (one JSON object per eval)
and status.json. Columns, in this order:
  sweep, run_id, size, params_total, params_non_embedding, ratio, num_people, seed   (size/ratio/num_people/seed
      are model.size, data.ratio, data.num_people, seed of config.json; the parameter counts are read from the eval
      row, which the trainer fills, else from config.json at any nesting level, e.g. derived.params_total),
  every other config key whose value differs between runs of the folder, under its dotted name (sorted; facts that
      the trainer computed, under "derived." in config.json, are not config keys and are left out),
  step, final (True on the last eval of a run whose status is "complete"),
  then every eval.jsonl field, in order of first appearance,
  then every column of analysis.io.RESULTS_COLUMNS that no row has (empty), so that a table of task runs
      (data.knowledge "slope" or "max_of_n": no per-attribute accuracy, no stored bits) loads in the analysis.
A task run's num_people is empty (data.num_people counts SynBio's people; a task has none), which keeps it out of
the theory's knowledge-set size.
Rows are sorted by (run_id, step); a step evaluated twice (a resumed run re-evaluates after its last checkpoint)
keeps its newest row. Files are written to a temporary name and renamed, so readers never see half a table, and
rebuilding from the same folders gives byte-identical CSV.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.io import RESULTS_COLUMNS
from mixlab import run_folder
from mixlab.config import flatten

CSV_FILE = "results.csv"
PARQUET_FILE = "results.parquet"
KEY_COLUMNS = {"size": "model.size", "ratio": "data.ratio", "num_people": "data.num_people", "seed": "seed"}
PARAM_COLUMNS = ("params_total", "params_non_embedding")
DERIVED_PREFIX = "derived."


def _cell(value: Any) -> Any:
    """Config values as table cells: lists and dicts become canonical JSON strings."""
    return json.dumps(value, sort_keys=True) if isinstance(value, list | dict) else value


def _find(name: str, *sources: Mapping[str, Any]) -> Any:
    """The value of `name` in the first source that has it, as a key or as the last part of a dotted key."""
    for source in sources:
        if name in source:
            return source[name]
        for key in sorted(source):
            if key.endswith(f".{name}"):
                return source[key]
    return None


def collect(sweep_dir: str | os.PathLike) -> pd.DataFrame:
    """The table of every run folder in `sweep_dir` that has a config.json (see the module docstring)."""
    sweep_dir = Path(sweep_dir)
    runs = []
    for run_dir in sorted(p for p in sweep_dir.iterdir() if (p / run_folder.CONFIG_FILE).is_file()):
        config = flatten(run_folder.read_config(run_dir))
        runs.append((run_dir.name, config, run_folder.is_complete(run_dir), run_folder.read_eval_rows(run_dir)))

    keys = sorted({k for _, config, _, _ in runs for k in config if not k.startswith(DERIVED_PREFIX)})
    keys = [k for k in keys if k not in KEY_COLUMNS.values() and k not in PARAM_COLUMNS]
    varying = [k for k in keys if len({json.dumps(_cell(config.get(k))) for _, config, _, _ in runs}) > 1]
    eval_keys = list(dict.fromkeys(k for _, _, _, rows in runs for row in rows for k in row))
    eval_keys = [k for k in eval_keys if k not in ("step", *PARAM_COLUMNS)]
    columns = ["sweep", "run_id", "size", *PARAM_COLUMNS, "ratio", "num_people", "seed", *varying, "step", "final"]
    columns += eval_keys
    columns += [c for c in RESULTS_COLUMNS if c not in columns]

    records = []
    for rid, config, complete, rows in runs:
        for i, row in enumerate(rows):
            record = {"sweep": sweep_dir.name, "run_id": rid}
            record.update({col: config.get(key) for col, key in KEY_COLUMNS.items()})
            if config.get("data.knowledge", "synbio") != "synbio":
                record["num_people"] = None
            record.update({p: _find(p, row, config) for p in PARAM_COLUMNS})
            record.update({k: _cell(config.get(k)) for k in varying})
            record["step"] = row["step"]
            record["final"] = complete and i == len(rows) - 1
            record.update({k: row.get(k) for k in eval_keys})
            records.append(record)
    return pd.DataFrame.from_records(records, columns=columns)


def _arrow_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns that mix Python types (e.g. a key that is an int in one run and a str in another) become str,
    which Parquet requires."""
    df = df.copy()
    for col in [c for c in df.columns if df[c].dtype == "object"]:
        types = {type(v) for v in df[col] if v is not None and v == v}
        if len(types) > 1:
            df[col] = df[col].map(lambda v: None if v is None or v != v else str(v))
    return df


def write_table(sweep_dir: str | os.PathLike) -> Path:
    """Rebuild <sweep_dir>/results.csv and results.parquet atomically from the run folders; returns the CSV path."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    df = collect(sweep_dir)
    csv_path, parquet_path = sweep_dir / CSV_FILE, sweep_dir / PARQUET_FILE
    tmp_csv = csv_path.with_name(f".{CSV_FILE}.tmp.{os.getpid()}")
    tmp_parquet = parquet_path.with_name(f".{PARQUET_FILE}.tmp.{os.getpid()}")
    df.to_csv(tmp_csv, index=False, lineterminator="\n")
    _arrow_safe(df).to_parquet(tmp_parquet, index=False)
    os.replace(tmp_csv, csv_path)
    os.replace(tmp_parquet, parquet_path)
    return csv_path

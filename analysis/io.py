"""Read, validate and ingest results tables (format: analysis/FORMAT.md).

`load_results` reads a table written by the sweep (every column of RESULTS_COLUMNS present). `ingest_external`
turns a table from elsewhere (another lab's runs, a paper's numbers) with only the minimal columns into the same
format, filling what can be derived and leaving the rest NaN. Both raise ResultsFormatError naming the problem.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from data_gen.synbio_fields import ATTRIBUTES

RESULTS_COLUMNS = (
    "sweep",
    "run_id",
    "size",
    "params_total",
    "params_non_embedding",
    "ratio",
    "num_people",
    "seed",
    "step",
    "final",
    "tokens",
    "knowledge_tokens",
    "web_tokens",
    "exposures",
    "acc",
    "acc_se",
    "n_eval",
    "n_correct",
    "n_people",
    *(f"acc_{a}" for a in ATTRIBUTES),
    "value_loss",
    "bits_stored",
    "bits_per_param",
    "web_loss",
    "wall_time_s",
)
TEXT_COLUMNS = ("sweep", "run_id", "size")
NON_NULL_COLUMNS = ("sweep", "run_id", "size", "ratio", "seed", "step", "final", "acc", "n_eval", "n_correct")
PARAM_COLUMNS = ("params_non_embedding", "params_total")
EXTERNAL_REQUIRED = ("ratio", "acc")  # plus at least one of PARAM_COLUMNS
_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


class ResultsFormatError(ValueError):
    """The table does not follow the results-table format; the message names the columns or rows at fault."""


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (.csv, .csv.gz) or Parquet (.parquet, .pq) file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results table not found: {path}")
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    if name.endswith((".csv", ".csv.gz")):
        return pd.read_csv(path)
    raise ResultsFormatError(f"{path}: unknown table type (expected .csv, .csv.gz, .parquet or .pq)")


def parse_count(value) -> float:
    """A parameter count from a number or a label such as '70M', '1.4B', '160m', '14 M'."""
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([kKmMbBgGtT]?)\s*", str(value))
    if not m:
        raise ResultsFormatError(f"cannot read a parameter count from {value!r} (use a number or e.g. '70M')")
    return float(m.group(1)) * _SUFFIX.get(m.group(2).lower(), 1.0)


def size_label(params: float) -> str:
    """'70M'-style label for a parameter count."""
    for suffix, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if params >= scale:
            return f"{params / scale:.3g}{suffix}"
    return f"{params:.3g}"


def _to_bool(series: pd.Series) -> pd.Series:
    if series.dtype == bool:
        return series
    mapping = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    out = series.map(lambda v: mapping.get(str(v).strip().lower()) if not isinstance(v, bool) else v)
    if out.isna().any():
        bad = series[out.isna()].unique()[:5]
        raise ResultsFormatError(f"column 'final' must be boolean (True/False/1/0); got {list(bad)}")
    return out.astype(bool)


def validate_results(df: pd.DataFrame) -> pd.DataFrame:
    """Check a full results table and return a typed copy. Extra columns (config keys, budget, ...) are kept."""
    missing = [c for c in RESULTS_COLUMNS if c not in df.columns]
    if missing:
        raise ResultsFormatError(
            f"results table lacks columns {missing}; see analysis/FORMAT.md "
            "(a table from elsewhere with fewer columns: use analysis.io.ingest_external or report --external)"
        )
    out = df.copy()
    for c in TEXT_COLUMNS:
        out[c] = out[c].astype(str)
    out["final"] = _to_bool(out["final"])
    bad_numeric = []
    for c in RESULTS_COLUMNS:
        if c in TEXT_COLUMNS or c == "final":
            continue
        converted = pd.to_numeric(out[c], errors="coerce")
        if (converted.isna() & out[c].notna()).any():
            bad_numeric.append(c)
        out[c] = converted.astype(float)
    if bad_numeric:
        raise ResultsFormatError(f"columns {bad_numeric} must be numeric")
    nulls = [c for c in NON_NULL_COLUMNS if out[c].isna().any()]
    if out[list(PARAM_COLUMNS)].isna().all(axis=1).any():
        nulls.append("params_non_embedding/params_total (one of them per row)")
    if nulls:
        raise ResultsFormatError(f"columns {nulls} must not be empty")
    _check_ranges(out)
    dup = out.duplicated(["run_id", "step"])
    if dup.any():
        raise ResultsFormatError(f"(run_id, step) must be unique; duplicated: {out.loc[dup, 'run_id'].unique()[:5]}")
    return out


def _check_ranges(out: pd.DataFrame) -> None:
    problems = []

    def bad(mask, what):
        if mask.any():
            problems.append(f"{what} (rows {list(np.flatnonzero(mask.to_numpy())[:5])})")

    bad(~out["ratio"].between(0, 1), "ratio must lie in [0, 1]")
    if (out["acc"] > 1).any() and (out["acc"] <= 100).all():
        problems.append(f"acc must be a fraction in [0, 1]; max is {out['acc'].max():g} (percent? divide by 100)")
    else:
        bad(~out["acc"].between(0, 1), "acc must lie in [0, 1]")
    bad(out["n_eval"] <= 0, "n_eval must be > 0")
    bad(~out["n_correct"].between(0, out["n_eval"]), "n_correct must lie in [0, n_eval]")
    bad((out["acc"] - out["n_correct"] / out["n_eval"]).abs() > 0.5 / out["n_eval"] + 1e-9, "acc != n_correct/n_eval")
    for c in PARAM_COLUMNS:
        bad(out[c] <= 0, f"{c} must be > 0")
    if problems:
        raise ResultsFormatError("; ".join(problems))


def load_results(path: str | Path) -> pd.DataFrame:
    """Read and validate a results table written by the sweep."""
    return validate_results(read_table(path))


def ingest_external(source: str | Path | pd.DataFrame, *, n_eval: int | None = None, sweep: str = "external"):
    """Turn a minimal table from outside mixlab into a full results table (rules in analysis/FORMAT.md).

    Required: ratio, acc, and params_non_embedding or params_total (numbers or labels like '70M'). Counts for the
    binomial likelihood come from, in order: n_correct + n_eval columns; an n_eval column; acc_se (effective
    n = acc (1 - acc) / acc_se^2); the `n_eval` argument. Rows that are means over several seeds carry `n_seeds`
    and their sd `acc_sd` (n_eval is then per seed). Notes on what was derived are in df.attrs["ingest_notes"].
    """
    df = read_table(source) if not isinstance(source, pd.DataFrame) else source.copy()
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in EXTERNAL_REQUIRED if c not in df.columns]
    if not any(c in df.columns for c in PARAM_COLUMNS):
        missing.append("params_non_embedding or params_total")
    if missing:
        raise ResultsFormatError(f"external table lacks required columns {missing}; see analysis/FORMAT.md")
    notes: list[str] = []
    for c in PARAM_COLUMNS:
        df[c] = df[c].map(parse_count) if c in df.columns else np.nan
    df["acc"] = pd.to_numeric(df["acc"], errors="coerce")
    if df["acc"].isna().any():
        raise ResultsFormatError("column 'acc' must be numeric in every row")
    if (df["acc"] > 1).any():
        raise ResultsFormatError(f"acc must be a fraction in [0, 1]; max is {df['acc'].max():g} (percent? /100)")
    _derive_counts(df, n_eval, notes)
    _pool_seeds(df, notes)
    if "size" not in df.columns:
        df["size"] = df[list(PARAM_COLUMNS)].bfill(axis=1).iloc[:, 0].map(size_label)
        notes.append("size labels derived from the parameter counts")
    defaults = {"sweep": sweep, "seed": 0, "step": 0}
    for c, v in defaults.items():
        if c not in df.columns:
            df[c] = v
    if "run_id" not in df.columns:
        df["run_id"] = [f"{sweep}-{i:04d}" for i in range(len(df))]
    if "final" not in df.columns:
        last = df.groupby("run_id")["step"].transform("max")
        df["final"] = df["step"] == last
    for c in RESULTS_COLUMNS:
        if c not in df.columns:
            df[c] = np.nan
    out = validate_results(df)
    out.attrs["ingest_notes"] = notes
    return out


def _derive_counts(df: pd.DataFrame, n_eval: int | None, notes: list[str]) -> None:
    has = set(df.columns)
    if {"n_correct", "n_eval"} <= has:
        return
    if "n_eval" in has:
        notes.append("n_correct = round(acc * n_eval)")
    elif "acc_se" in has:
        se = pd.to_numeric(df["acc_se"], errors="coerce")
        n_eff = (df["acc"] * (1 - df["acc"]) / se**2).where(se > 0)
        usable = n_eff[np.isfinite(n_eff) & (n_eff > 0)]
        if usable.empty:
            raise ResultsFormatError("cannot derive counts from acc_se (no row with 0 < acc < 1 and acc_se > 0)")
        fill = float(usable.median())
        df["n_eval"] = n_eff.where(np.isfinite(n_eff) & (n_eff > 0), fill).round().clip(lower=1)
        notes.append(
            f"n_eval = acc (1 - acc) / acc_se^2 (effective items); rows with acc in {{0, 1}} use the median {fill:.0f}"
        )
    elif n_eval is not None:
        if n_eval <= 0:
            raise ResultsFormatError(f"n_eval must be > 0, got {n_eval}")
        df["n_eval"] = float(n_eval)
        notes.append(f"n_eval = {n_eval} for every row (given by the caller)")
    else:
        raise ResultsFormatError(
            "external table has no counts for the binomial likelihood: give columns n_correct and n_eval, "
            "a column n_eval, a column acc_se, or pass n_eval=... (report: --n_eval)"
        )
    df["n_correct"] = (df["acc"] * df["n_eval"]).round()


def _pool_seeds(df: pd.DataFrame, notes: list[str]) -> None:
    """Rows that are means over `n_seeds` seeds (with their sd `acc_sd`): counts over all seeds' items, so the
    pooled row holds n_seeds x n_eval items; the dispersion between seeds comes from acc_sd (analysis/dispersion.py)."""
    if "n_seeds" not in df.columns:
        if "acc_sd" in df.columns:
            raise ResultsFormatError("column acc_sd (sd over seeds) needs a column n_seeds (how many seeds)")
        return
    m = pd.to_numeric(df["n_seeds"], errors="coerce")
    if m.isna().any() or (m < 1).any():
        raise ResultsFormatError("column n_seeds must be a number >= 1 in every row")
    df["n_eval"] = df["n_eval"] * m
    df["n_correct"] = (df["acc"] * df["n_eval"]).round()
    notes.append("rows are means over n_seeds seeds: counts pooled over their items; seed scatter from acc_sd")


def final_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The last evaluation of every completed run (final == True)."""
    return df[df["final"]].copy()


def param_column(df: pd.DataFrame) -> str:
    """params_non_embedding when every row has it, else params_total (the model-size M used by the analysis)."""
    for c in PARAM_COLUMNS:
        if c in df.columns and df[c].notna().all() and len(df):
            return c
    raise ResultsFormatError("no parameter-count column is filled in every row")

"""The theory's prediction made before the mixtures run: r*(M) per size and M*(r) per ratio from the calibration
(r = 0 and r = 1) runs alone, written with a timestamp, then held against what the mixtures show.

    forecast = make_forecast(calibration_rows, ratios)            # experiments/demo.py, phase 2: r* at every size
    forecast.write(sweep_dir / FORECAST_FILE)                      # never overwritten: the first one stands
    misses(forecast, analysis)                                     # after the mixtures, per size

The numbers are analysis.verdicts.theory_predictions of an analysis of the calibration rows, so the report's
comparison after the mixtures (same rows, same bootstrap seed) reproduces them exactly; `misses` checks that.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.io import final_rows, param_column
from analysis.thresholds import format_ci
from analysis.verdicts import Analysis, analyze, theory_predictions

FORECAST_FILE = "prediction.json"


@dataclasses.dataclass(frozen=True)
class Forecast:
    """What the theory predicted, when, and from which runs. r_star / m_star rows: the value and its CI."""

    made_at: str
    calibration_runs: list[str]
    inputs: dict
    r_star: list[dict]  # size, M, r_star, lo, hi, onset, all_learned
    m_star: list[dict]  # ratio, M_star, lo, hi
    exponent: dict  # asymptotic -(alpha+1) and the local slope over the sizes, each with a CI

    def write(self, path: Path) -> None:
        if path.exists():
            raise FileExistsError(f"{path} exists: a prediction is made once, before the mixtures")
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=1, default=_plain))
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> Forecast:
        return cls(**json.loads(path.read_text()))


def _plain(v):
    return float(v) if isinstance(v, np.floating | np.integer) else str(v)


def _num(v) -> float | None:
    """JSON-safe float: None for NaN and infinities."""
    v = float(v)
    return v if math.isfinite(v) else None


def make_forecast(calibration: pd.DataFrame, ratios, *, n_boot: int = 1000, seed: int = 0) -> Forecast:
    """Predict r* at every size of the calibration runs and M* at `ratios`; ValueError when the calibration runs
    cannot support the theory (the reason named)."""
    a = analyze(calibration, n_boot=n_boot, seed=seed)
    final = final_rows(calibration)
    pcol = param_column(calibration)
    by_size = final.groupby("size")[pcol].first().sort_values()
    r, m = theory_predictions(a, by_size.to_numpy(float), list(ratios), n_boot=n_boot, seed=seed)
    w, cap = a.web, a.capacity
    inputs = {
        "param_col": pcol,
        "web_loss": {"E": w.E, "A": w.A, "alpha": w.alpha, "scale": w.scale, "ci": w.ci, "method": w.method},
        "capacity": {
            "c": cap.c,
            "ci": [_num(v) for v in cap.ci],
            "source": cap.source,
            "lower_bound": bool(cap.lower_bound),
        },  # fmt: skip
        "p": a.p,
        "tokens_per_bio": a.tokens_per_bio,
        "total_bits": a.total_bits,
        "level": a.level,
        "n_boot": n_boot,
        "seed": seed,
    }
    rows = [
        {"size": size, "M": float(mm), "r_star": _num(r.predicted[i]), "lo": _num(r.lo[i]), "hi": _num(r.hi[i]),
         "onset": _num(r.onset[i]), "all_learned": _num(r.all_learned[i])}
        for i, (size, mm) in enumerate(by_size.items())
    ]  # fmt: skip
    m_rows = [] if m is None else [
        {"ratio": float(x), "M_star": _num(m.predicted[i]), "lo": _num(m.lo[i]), "hi": _num(m.hi[i])}
        for i, x in enumerate(m.x)
    ]  # fmt: skip
    exponent = {"asymptotic": r.exponent, "asymptotic_ci": list(r.exponent_ci), "local": _num(r.local_exponent),
                "local_ci": [_num(v) for v in r.local_exponent_ci]}  # fmt: skip
    return Forecast(
        time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        sorted(final["run_id"].unique()),
        inputs,
        rows,
        m_rows,
        exponent,
    )


def format_forecast(f: Forecast) -> list[str]:
    """The prediction as printed before the mixtures: the inputs, r* per size, M* per ratio, the exponent."""
    w, cap = f.inputs["web_loss"], f.inputs["capacity"]
    bound = " (a lower bound: every r = 1 run stored almost everything, so r* is an upper bound)"
    lines = [
        f"made at {f.made_at} from {len(f.calibration_runs)} calibration runs",
        f"web loss E + A (M/{w['scale']:g})^-alpha: alpha = {w['alpha']:.3g} {format_ci(*w['ci']['alpha'])}, "
        f"A = {w['A']:.3g}, E = {w['E']:.4g}",
        f"capacity c = {cap['c']:.3g} bits/param {format_ci(*_nan(cap['ci']))} ({cap['source']})"
        + (bound if cap["lower_bound"] else ""),
        f"p = {f.inputs['p']:.3g} nats per knowledge token per stored bit; H_tot = {f.inputs['total_bits']:.4g} bits",
    ]
    for row in f.r_star:
        if row["r_star"] is None:
            lines.append(f"  r*({row['size']}) = none: c M cannot hold half of the facts")
        else:
            lines.append(f"  r*({row['size']}) = {row['r_star']:.3g} {format_ci(*_nan([row['lo'], row['hi']]))}")
    lines += [
        f"  M*(r = {row['ratio']:g}) = {_g(row['M_star'])} {format_ci(*_nan([row['lo'], row['hi']]), '.3g')}"
        for row in f.m_star
    ]
    e = f.exponent
    lines.append(
        f"exponent of r* in M: -(alpha+1) = {e['asymptotic']:.3g} {format_ci(*e['asymptotic_ci'])} asymptotically; "
        f"{_g(e['local'])} {format_ci(*_nan(e['local_ci']))} over these sizes"
    )
    return lines


def _nan(values) -> list[float]:
    return [math.nan if v is None else v for v in values]


def _g(v) -> str:
    return "none" if v is None else f"{v:.3g}"


def misses(f: Forecast, a: Analysis) -> pd.DataFrame:
    """Per size with an observed r*: the forecast r*, the observed r* (analysis), observed / predicted with its CI,
    and whether the analysis's own prediction equals the forecast (it must: same calibration rows, same seed)."""
    cols = ["size", "predicted", "observed", "obs_pred", "obs_pred_lo", "obs_pred_hi", "same_as_report"]
    if a.theory_cmp is None:
        return pd.DataFrame(columns=cols)
    forecast = pd.DataFrame(f.r_star).set_index("size")["r_star"].astype(float)
    cmp = a.theory_cmp[a.theory_cmp["size"].isin(forecast.index)].copy()
    ours = forecast.loc[cmp["size"]].to_numpy()
    cmp["same_as_report"] = np.isclose(cmp["predicted"], ours, rtol=1e-9) | (np.isnan(ours) & cmp["predicted"].isna())
    cmp["predicted"] = ours
    return cmp[cols].reset_index(drop=True)

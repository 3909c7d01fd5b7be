"""Threshold frequency f* of SynBio's power-law variant, its power law in M, and the theory's exponent -(alpha+1).

A run trained with data.power_law_groups = G > 0 draws group k (0-based, k = 0..G-1) with weight (k+1)^-beta, and
each of its evaluation rows carries, per group: acc_group_<k>, n_correct_group_<k>, n_eval_group_<k>,
n_people_group_<k> and exposures_group_<k> (mean exposures per person of group k so far: the group's frequency),
optionally acc_se_group_<k> (the group's clustered SE, people as clusters). Those rows are "power-law rows"
(`power_law_rows`); every other analysis leaves them out, since their overall accuracy mixes frequencies.

- `group_points`: the rows as long-form points, one per (row, group).
- `fit_frequency`: per size, accuracy against log frequency over the groups of its final rows (all seeds) by the
  sigmoid fit of analysis.thresholds, and f* = the frequency where it reaches the level: half the size's
  knowledge-only accuracy when every size has knowledge-only runs, else FIXED_LEVEL (one meaning for every size).
  f*'s CI resamples people within each group (items of a person perfectly correlated, unless acc_se_group_<k>
  gives the measured clustering) and, with >= 2 seeds, takes x* from the seeds' own fits (t interval); see
  analysis.curves and analysis.thresholds.fit_sigmoid. Then log f* against log M by analysis.scaling's power law
  (each f*'s bootstrap draws propagated), and its slope against -(alpha+1) (`slope_vs_theory`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.fitting import percentile_ci
from analysis.io import ResultsFormatError, param_column
from analysis.scaling import PowerLawFit, WebLossFit, threshold_power_law
from analysis.thresholds import KNOWLEDGE_LEVEL, ThresholdSet, fit_thresholds

GROUP_KEY = "data.power_law_groups"
GROUP_FIELDS = ("n_correct", "n_eval", "n_people", "exposures")  # required per group; acc and acc_se optional
UNITS = {"exposures": "exposures per person", "per_token": "exposures per person per training token"}
FIXED_LEVEL = 0.4  # accuracy level of f* where not every size has knowledge-only runs
SHARED_SPREAD = 0.05  # runs whose group frequencies agree within this (median ratio) share them


def _group_ids(df: pd.DataFrame) -> list[int]:
    """The k of every n_eval_group_<k> column, ascending."""
    return sorted(int(m.group(1)) for c in df.columns if (m := re.fullmatch(r"n_eval_group_(\d+)", str(c))))


def power_law_rows(df: pd.DataFrame) -> pd.Series:
    """True for rows of power-law runs: a positive data.power_law_groups or any n_eval_group_<k> filled."""
    mask = pd.Series(False, index=df.index)
    for k in _group_ids(df):
        mask |= df[f"n_eval_group_{k}"].notna()
    if GROUP_KEY in df.columns:
        mask |= pd.to_numeric(df[GROUP_KEY], errors="coerce").fillna(0) > 0
    return mask


def _check_groups(rows: pd.DataFrame, ids: list[int]) -> np.ndarray:
    """Groups filled per row, after checking every required column is there and agrees with data.power_law_groups."""
    missing = [f"{f}_group_{k}" for k in ids for f in GROUP_FIELDS if f"{f}_group_{k}" not in rows.columns]
    if missing:
        raise ResultsFormatError(f"power-law rows lack per-group columns {missing[:5]} (see analysis/FORMAT.md)")
    filled = np.column_stack([rows[f"n_eval_group_{k}"].notna().to_numpy() for k in ids])
    count = filled.sum(axis=1)
    prefix = np.cumsum(filled, axis=1) == np.arange(1, len(ids) + 1)
    gaps = count != prefix.sum(axis=1)
    if GROUP_KEY in rows.columns:
        declared = pd.to_numeric(rows[GROUP_KEY], errors="coerce").to_numpy(float)
        gaps |= np.isfinite(declared) & (count != declared)
    if gaps.any():
        i = int(np.flatnonzero(gaps)[0])
        raise ResultsFormatError(
            f"run {rows['run_id'].iloc[i]!r} step {rows['step'].iloc[i]}: per-group columns must be filled for "
            f"groups 0..G-1 with G = {GROUP_KEY} (filled: {int(count[i])})"
        )
    return count


def group_points(df: pd.DataFrame, *, unit: str = "exposures") -> pd.DataFrame:
    """Long-form points of the power-law rows: one per (row, group k) with columns run_id, size, the table's
    parameter column (analysis.io.param_column), ratio, seed, step, final, tokens, group, exposures, frequency (in
    `unit`: "exposures" = exposures_group_<k>, "per_token" = exposures_group_<k> / tokens), n_correct, n_eval,
    n_people, acc and acc_se (acc_se_group_<k> where given, else sqrt(acc (1 - acc) / n_people): the SE with the
    items of a person perfectly correlated, an upper bound) and se_kind ("clustered" or "person bound")."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {list(UNITS)}, got {unit!r}")
    rows = df[power_law_rows(df)]
    ids = _group_ids(df)
    if rows.empty or not ids:
        return pd.DataFrame()
    count = _check_groups(rows, ids)
    pcol = param_column(df)
    meta = ["run_id", "size", pcol, "ratio", "seed", "step", "final", "tokens"]
    parts = []
    for k in ids:
        sub = rows.loc[count > k, meta].copy()
        sel = rows.loc[count > k]
        sub["group"] = k
        for f in GROUP_FIELDS:
            sub[f] = pd.to_numeric(sel[f"{f}_group_{k}"], errors="coerce").to_numpy(float)
        sub["acc"] = sub["n_correct"] / sub["n_eval"]
        given = pd.to_numeric(sel[f"acc_se_group_{k}"], errors="coerce") if f"acc_se_group_{k}" in sel else None
        bound = np.sqrt(sub["acc"] * (1 - sub["acc"]) / sub["n_people"])
        sub["acc_se"] = bound if given is None else given.to_numpy(float)
        sub["se_kind"] = "person bound" if given is None else "clustered"
        if given is not None:
            absent = sub["acc_se"].isna()
            sub.loc[absent, "acc_se"], sub.loc[absent, "se_kind"] = bound[absent], "person bound"
        parts.append(sub)
    out = pd.concat(parts, ignore_index=True)
    out["frequency"] = out["exposures"] / (out["tokens"] if unit == "per_token" else 1.0)
    return out.sort_values(["run_id", "step", "group"], ignore_index=True)


def _shared_frequency(points: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Give the runs of a size one frequency per group (the runs' mean) when they share a design: each run's median
    ratio of its group frequencies to those means lies within SHARED_SPREAD of 1 (seeds differ in a rare group's
    exposures by sampling noise alone); the seeds then share x and their scatter enters the dispersion. Runs of
    different designs (e.g. lengths, in unit "exposures") keep their own, and a note says so."""
    out, notes = points.copy(), []
    mean = out.groupby(["size", "group"])["frequency"].transform("mean")
    scale = (out["frequency"] / mean).groupby(out["run_id"]).median()
    for size, rows in out.groupby("size").groups.items():
        off = float(np.abs(scale[out.loc[rows, "run_id"].unique()] - 1).max())
        if off <= SHARED_SPREAD:
            out.loc[rows, "frequency"] = mean[rows]
        else:
            notes.append(
                f"the runs of size {size} differ in their groups' frequencies by {off:.0%}: each keeps its own"
            )
    return out, notes


@dataclass
class SlopeComparison:
    """The f* exponent k against the theory's -(alpha+1): diff = k + alpha + 1 with a CI from independent draws."""

    ok: bool
    reason: str
    slope: float = np.nan
    slope_ci: tuple[float, float] = (np.nan, np.nan)
    predicted: float = np.nan
    predicted_ci: tuple[float, float] = (np.nan, np.nan)
    diff: float = np.nan
    diff_ci: tuple[float, float] = (np.nan, np.nan)
    alpha_source: str = ""
    n_sizes: int = 0
    level: float = 0.95


def slope_vs_theory(
    power: PowerLawFit, *, web: WebLossFit | None = None, alpha: float | None = None, seed: int = 0
) -> SlopeComparison:
    """Compare the exponent of f* ∝ M^k with -(alpha+1), alpha from a web-loss fit (its bootstrap draws) or given
    (taken as exact). The difference's CI pairs each draw of k with an independent draw of alpha."""
    base = dict(n_sizes=power.n_points, level=power.level)
    if not power.ok:
        return SlopeComparison(False, f"no power law of f*: {power.reason}", **base)
    if alpha is not None:
        alpha_draws, source = np.array([float(alpha)]), f"alpha = {alpha:g} given (no uncertainty)"
    elif web is not None and web.ok:
        alpha_draws = web.boot[:, 2]
        source = f"alpha = {web.alpha:.3g} from the web-loss fit of the web-only runs (bootstrap over {web.method})"
    else:
        why = web.reason if web is not None else "no web-loss fit and no alpha given"
        return SlopeComparison(False, f"no alpha: {why}", **base)
    rng = np.random.default_rng(seed)
    k_draws = power.boot[:, 1]
    pred_draws = -(rng.choice(alpha_draws, len(k_draws)) + 1.0)
    point_alpha = float(alpha) if alpha is not None else web.alpha
    ci = {name: tuple(float(v) for v in percentile_ci(d, power.level)) for name, d in
          (("pred", pred_draws), ("diff", k_draws - pred_draws))}  # fmt: skip
    return SlopeComparison(True, "", power.k, power.ci["k"], -(point_alpha + 1), ci["pred"],
                           power.k + point_alpha + 1, ci["diff"], source, **base)  # fmt: skip


@dataclass
class FrequencyScaling:
    """f* per size, its power law in M and the comparison with -(alpha+1). ok is False (with the reason) when there
    is no power law of f*; `thresholds` is kept whenever sizes were fitted. `points`: the final group points the
    sigmoids were fitted on (one ratio; seeds' frequencies shared where they agree), or all group points where the
    fit stopped before choosing them."""

    ok: bool
    reason: str
    unit: str
    ratio: float = np.nan
    level_kind: str = ""
    points: pd.DataFrame = field(default_factory=pd.DataFrame)
    thresholds: ThresholdSet | None = None
    power: PowerLawFit | None = None
    theory: SlopeComparison | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def table(self) -> pd.DataFrame:
        """Per size: f* (x_level) with its CI, the level, the sigmoid's goodness of fit, groups and seeds."""
        if self.thresholds is None:
            return pd.DataFrame()
        t = self.thresholds.table
        seeds = {key: len(np.unique(c.seed)) for key, c in self.thresholds.curves.items()}
        out = t[["size", "M", "ok", "x_level", "x_level_lo", "x_level_hi", "level", "gof_p", "unit", "reason"]]
        out = out.rename(columns={"x_level": "f_star", "x_level_lo": "f_star_lo", "x_level_hi": "f_star_hi"})
        return out.assign(groups=t["n_points"].to_numpy(), seeds=t["size"].map(seeds).to_numpy())


def _pick_ratio(final: pd.DataFrame, ratio: float | None) -> tuple[pd.DataFrame, float, str]:
    """The power-law points at one ratio, that ratio, and "" or why there is none."""
    ratios = sorted(final["ratio"].unique())
    if ratio is None and len(ratios) > 1:
        return final, np.nan, f"power-law runs at ratios {ratios}: pass ratio= to pick one"
    r = float(ratios[0]) if ratio is None else float(ratio)
    chosen = final[np.isclose(final["ratio"], r)]
    return chosen, r, "" if len(chosen) else f"no power-law run at ratio {r:g} (ratios: {ratios})"


def fit_frequency(
    df: pd.DataFrame,
    *,
    levels: dict | None = None,
    web: WebLossFit | None = None,
    alpha: float | None = None,
    unit: str = "exposures",
    ratio: float | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> FrequencyScaling:
    """f* per size from the final power-law rows of `df`, its power law in M and its slope against -(alpha+1).

    `levels` maps size -> half its knowledge-only accuracy (analysis.verdicts.knowledge_only_levels); used when it
    covers every size, else every f* is at accuracy FIXED_LEVEL. alpha comes from `web` or is given (`alpha`);
    with neither, `theory` says why it is missing. `ratio` picks the power-law runs' ratio where they have several.
    """
    points = group_points(df, unit=unit)
    base = dict(unit=unit)
    if points.empty:
        why = "without per-group columns n_eval_group_<k>" if power_law_rows(df).any() else "in the table"
        return FrequencyScaling(False, f"no power-law runs with group counts ({GROUP_KEY} > 0) {why}", **base)
    final, r, problem = _pick_ratio(points[points["final"].astype(bool)], ratio)
    if problem or final.empty:
        return FrequencyScaling(False, problem or "no final evaluation of a power-law run", points=points, **base)
    final, notes = _shared_frequency(final)
    sizes = list(final["size"].unique())
    if levels and all(np.isfinite(levels.get(s, np.nan)) for s in sizes):
        lv, kind = {s: levels[s] for s in sizes}, KNOWLEDGE_LEVEL
    else:
        lv, kind = (
            {s: FIXED_LEVEL for s in sizes},
            f"the fixed accuracy {FIXED_LEVEL:g} (not every size has r = 1 runs)",
        )
    pcol = param_column(final)
    tset = fit_thresholds(final, "frequency", "size", group_x=pcol, targets=(), levels=lv, level_kind=kind,
                          n_boot=n_boot, level=level, seed=seed, jump_draws=0)  # fmt: skip
    power = threshold_power_law(tset, n_boot=n_boot, seed=seed)
    theory = slope_vs_theory(power, web=web, alpha=alpha, seed=seed)
    length = final.groupby("size")["tokens"].median()
    if unit == "exposures" and length.max() > 1.1 * length.min():
        notes.append(
            f"the sizes' runs differ in length ({length.min():.3g} to {length.max():.3g} tokens): f* in exposures "
            "carries the run length; unit='per_token' divides it out"
        )
    if (final["se_kind"] == "person bound").any():
        notes.append("no acc_se_group_<k>: the groups' items are resampled as whole people (a conservative bound)")
    return FrequencyScaling(power.ok, power.reason, unit, r, kind, final, tset, power, theory, notes)

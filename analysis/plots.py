"""Figures. Every function takes results-table rows (plus fit results) and returns a matplotlib Figure.

Figures are built on matplotlib.figure.Figure directly (no pyplot state), so they render headless and can be saved
with fig.savefig or shown in a notebook with IPython.display.display(fig). The grid figures (phase diagram,
per-attribute accuracy) show the main-budget runs only (analysis.verdicts.main_budget), the rows the thresholds are
fitted on, so a longer equal-exposure run is never averaged into a grid cell. Log axes carry ticks at the data's
values (the sampled ratios, the model sizes under their labels) or at round 1-2-5 steps for continuous values.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from analysis.curves import Curve
from analysis.frequency import UNITS, FrequencyScaling
from analysis.growth import FEATURE, FORMS, GrowthFit
from analysis.io import ATTRIBUTES, PARAM_COLUMNS, param_column
from analysis.jump import JumpTest
from analysis.scaling import PowerLawFit, WebLossFit
from analysis.theory import TheoryPrediction
from analysis.thresholds import SigmoidFit, ThresholdSet
from analysis.verdicts import main_budget

sns.set_theme(style="whitegrid", context="notebook")
MAX_GRID_TICKS = 12  # more distinct values than this are continuous: round ticks instead
AXIS_NAMES = {"ratio": "mixing ratio r", "exposures": "exposures per person", "frequency": "frequency"}


def _final(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["final"]] if "final" in df.columns else df


def _grid(df: pd.DataFrame) -> pd.DataFrame:
    """Final mixture rows (0 < r < 1) at the main run length: the accuracy grid the thresholds are fitted on."""
    d = _final(df)
    return main_budget(d[(d["ratio"] > 0) & (d["ratio"] < 1)])


def size_order(df: pd.DataFrame) -> list:
    """Size labels ordered by parameter count."""
    pcol = param_column(df)
    return list(df.groupby("size")[pcol].median().sort_values().index)


def _seed_note(d: pd.DataFrame, cell, how: str = "mean of") -> str:
    """'1 seed', or '<how> n seeds' with n counted per cell of `cell` (a range where cells differ)."""
    counts = d.groupby(cell)["seed"].nunique() if "seed" in d.columns and len(d) else pd.Series([1])
    lo, hi = int(counts.min()), int(counts.max())
    if hi <= 1:
        return "1 seed"
    return f"{how} {lo if lo == hi else f'{lo}–{hi}'} seeds"


def _plain(v: float) -> str:
    """A tick label without exponent notation: 0.05, 2, 57k, 1.5M, 2B."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{suffix}"
    return f"{v:.3g}"


def _round_ticks(values) -> np.ndarray:
    """At least 3 round log-axis ticks inside the range of `values`: powers of ten, else 1-2-5 steps, else finer."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    lo, hi = v.min(), v.max()
    if hi <= lo:
        return np.array([lo])
    decades = 10.0 ** np.arange(np.floor(np.log10(lo)), np.ceil(np.log10(hi)) + 1)
    for subs in ((1.0,), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)):
        ticks = np.array([d * s for d in decades for s in subs])
        ticks = ticks[(ticks >= lo * 0.999) & (ticks <= hi * 1.001)]
        if len(ticks) >= 3:
            return ticks
    return np.array([float(f"{t:.2g}") for t in np.geomspace(lo, hi, 4)])


def _grid_ticks(values) -> np.ndarray:
    """The distinct positive values (a sampled grid) when there are few, else _round_ticks over their range."""
    v = np.unique(np.asarray(values, float))
    v = v[np.isfinite(v) & (v > 0)]
    return v if len(v) <= MAX_GRID_TICKS else _round_ticks(v)


def _size_ticks(d: pd.DataFrame, pcol: str) -> tuple[np.ndarray, list[str]]:
    """Each size's parameter count (median) and its label, by parameter count."""
    m = d.groupby("size")[pcol].median().sort_values()
    return m.to_numpy(float), [str(s) for s in m.index]


def _log_axis(ax, which: str, ticks, labels: list[str] | None = None) -> None:
    """Log scale with major ticks at `ticks`, labelled by `labels` or as plain numbers; no minor ticks."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    ticks = np.asarray(ticks, float)
    axis.set_ticks(ticks, labels=labels if labels is not None else [_plain(t) for t in ticks])
    axis.set_minor_locator(NullLocator())


def _x_ticks(d: pd.DataFrame, x: str) -> tuple[np.ndarray, list[str] | None]:
    """Ticks for x: the sizes under their labels when x is a parameter count, else _grid_ticks."""
    if x in PARAM_COLUMNS and "size" in d.columns:
        return _size_ticks(d, x)
    return _grid_ticks(d[x]), None


def _symbol(x: str) -> str:
    return "M" if x in PARAM_COLUMNS else {"ratio": "r"}.get(x, x)


def _axis_name(x: str) -> str:
    return f"model size M ({x})" if x in PARAM_COLUMNS else AXIS_NAMES.get(x, x)


def _fit_with_band(ax, fit, grid: np.ndarray, color, **line_kw) -> None:
    """A fit's curve over `grid` and its bootstrap band (fit.predict and fit.band) in one colour."""
    lo, hi = fit.band(grid)
    ax.plot(grid, fit.predict(grid), color=color, **line_kw)
    ax.fill_between(grid, lo, hi, color=color, alpha=0.2, lw=0)


def _power_label(power: PowerLawFit) -> str:
    lo, hi = power.ci["k"]
    return f"power law, k = {power.k:.2f} [{lo:.2f}, {hi:.2f}] ({power.level:.0%} CI)"


def _empty(fig: Figure, ax, message: str) -> Figure:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_axis_off()
    return fig


def phase_diagram(df: pd.DataFrame, tset: ThresholdSet | None = None, *, value: str = "acc") -> Figure:
    """Heatmap of final accuracy (mean over seeds) over size x ratio of the main-budget runs, with the fitted r*."""
    d = _grid(df)
    fig = Figure(figsize=(8, 0.6 * max(d["size"].nunique(), 3) + 2), layout="constrained")
    ax = fig.subplots()
    if d.empty:
        return _empty(fig, ax, "no mixture runs (0 < ratio < 1)")
    sizes = size_order(d)[::-1]
    grid = d.pivot_table(index="size", columns="ratio", values=value, aggfunc="mean").reindex(sizes)
    seeds = _seed_note(d, ["size", "ratio"])
    sns.heatmap(
        grid,
        ax=ax,
        vmin=0,
        vmax=1,
        cmap="viridis",
        annot=grid.shape[1] <= 12,
        fmt=".2f",
        cbar_kws={"label": f"{value} ({seeds})"},
    )
    ax.set_xticklabels([_plain(r) for r in grid.columns])
    if tset is not None:
        lr = np.log(grid.columns.to_numpy(float))
        pts = [
            (np.interp(np.log(f.x_star), lr, np.arange(len(lr))) + 0.5, sizes.index(key) + 0.5)
            for key, f in tset.fits.items()
            if f.ok and key in sizes
        ]
        if pts:
            xs, ys = zip(*sorted(pts, key=lambda p: p[1]), strict=True)
            ax.plot(xs, ys, "o-", color="white", lw=2, label="fitted r*")
            ax.legend(loc="lower right")
    ax.set_xlabel("mixing ratio r")
    ax.set_ylabel("model size")
    ax.set_title(f"Phase diagram: final memorization accuracy\nmain-budget runs ({seeds} per cell)")
    return fig


def accuracy_curves(df: pd.DataFrame, x: str = "ratio", by: str | None = "size", tset=None) -> Figure:
    """Accuracy vs x (log axis), one colour per `by` group: pooled counts +- SE, fitted sigmoid and its band. The SE is
    binomial times sqrt(phi), the dispersion of the group's fit (analysis/dispersion.py), where there is a fit.

    `tset` is a ThresholdSet for the same x/by, or a single SigmoidFit when by is None. The rows are drawn as given:
    pass the rows the fits were made on.
    """
    d = _final(df)
    fig = Figure(figsize=(7.5, 5), layout="constrained")
    ax = fig.subplots()
    if d.empty:
        return _empty(fig, ax, "no rows")
    groups = [(None, d)] if by is None else [(k, d[d[by] == k]) for k in _order(d, by)]
    palette = sns.color_palette("viridis", len(groups))
    levels, phis = set(), []
    for (key, g), colour in zip(groups, palette, strict=True):
        pooled = g.groupby(x)[["n_correct", "n_eval"]].sum()
        acc = pooled["n_correct"] / pooled["n_eval"]
        fit = tset if isinstance(tset, SigmoidFit) else (tset.fits.get(key) if tset is not None else None)
        phi = fit.dispersion.phi if fit is not None and fit.ok else 1.0
        phis.append(phi)
        se = np.sqrt(phi * acc * (1 - acc) / pooled["n_eval"])
        label = f"{by} {_plain(key) if isinstance(key, float) else key}" if by else "data"
        ax.errorbar(pooled.index, acc, yerr=se, fmt="o", color=colour, label=label, ms=5, capsize=2)
        if fit is not None and fit.ok:
            levels.add(fit.level)
            _fit_with_band(ax, fit, np.geomspace(pooled.index.min(), pooled.index.max(), 200), colour, lw=1.5)
            ax.axvline(fit.x_star, color=colour, ls=":", lw=1)
    _log_axis(ax, "x", *_x_ticks(d, x))
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(_axis_name(x))
    ax.set_ylabel("accuracy")
    seeds = _seed_note(d, [c for c in (by, x) if c], "pooled counts of")
    bands = "/".join(f"{v:.0%}" for v in sorted(levels))
    fits = f"\nlines: sigmoid fit with its {bands} bootstrap band; dotted: {_symbol(x)}*" if levels else ""
    err = "binomial SE" if max(phis, default=1.0) <= 1.0 else "binomial SE × √φ (dispersion of each fit)"
    ax.set_title(f"Accuracy vs {_axis_name(x)}\npoints: {seeds} ± {err}{fits}", fontsize="medium")
    ax.legend(fontsize="small", ncol=2)
    return fig


def _order(d: pd.DataFrame, by: str) -> list:
    return size_order(d) if by == "size" else sorted(d[by].unique())


def threshold_scaling(
    tset: ThresholdSet, power: PowerLawFit | None = None, theory: TheoryPrediction | None = None
) -> Figure:
    """Log-log thresholds vs group variable with CI error bars, the fitted power law and the theory's prediction."""
    t = tset.table[tset.table["ok"]] if len(tset.table) else tset.table
    fig = Figure(figsize=(7, 5), layout="constrained")
    ax = fig.subplots()
    if t.empty:
        return _empty(fig, ax, f"no {tset.x}* could be fitted")
    level = next(iter(f.level for f in tset.fits.values() if f.ok))
    yerr = np.vstack([t["x_star"] - t["x_star_lo"], t["x_star_hi"] - t["x_star"]])
    label = f"fitted {tset.x}* ({level:.0%} CI)"
    ax.errorbar(t["M"], t["x_star"], yerr=yerr, fmt="o", color="k", capsize=3, label=label)
    grid = np.geomspace(t["M"].min() / 1.2, t["M"].max() * 1.2, 100)
    if power is not None and power.ok:
        _fit_with_band(ax, power, grid, "C0", label=_power_label(power))
    ys = [t["x_star_lo"], t["x_star_hi"]]
    if theory is not None:
        order = np.argsort(theory.x)
        ax.plot(
            theory.x[order],
            theory.predicted[order],
            "s--",
            color="C3",
            label=f"theory, {theory.level:.0%} band (slope {theory.local_exponent:.2f})",
        )
        ax.fill_between(theory.x[order], theory.lo[order], theory.hi[order], color="C3", alpha=0.15, lw=0)
        ys += [theory.lo, theory.hi]
    groups = tset.table
    labels = [str(v) for v in groups[tset.by]] if tset.by == "size" else None
    _log_axis(ax, "x", groups["M"].to_numpy(float), labels)
    _log_axis(ax, "y", _round_ticks(np.concatenate([np.asarray(y, float) for y in ys])))
    ax.set_xlabel("model size M (parameters)" if tset.by == "size" else _axis_name(tset.by))
    ax.set_ylabel(f"{tset.x}*")
    ax.set_title(f"Threshold {tset.x}* vs {'M' if tset.by == 'size' else tset.by}")
    ax.legend(fontsize="small")
    return fig


def _panels(n: int) -> tuple[Figure, np.ndarray]:
    cols = min(n, 3) or 1
    rows = int(np.ceil(n / cols)) or 1
    fig = Figure(figsize=(4.5 * cols, 3.6 * rows), layout="constrained")
    return fig, np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()


def _label_size_panels(axes: np.ndarray, sizes: list, xlabel: str, ticks) -> None:
    """Log x axis with `ticks`, title and x label on each size's panel, unused panels hidden, accuracy on the first
    y axis."""
    for ax, size in zip(axes, sizes, strict=False):
        _log_axis(ax, "x", ticks)
        ax.set_title(f"size {size}")
        ax.set_xlabel(xlabel)
    for ax in axes[len(sizes) :]:
        ax.set_axis_off()
    axes[0].set_ylabel("accuracy")


def accuracy_vs_exposures(df: pd.DataFrame) -> Figure:
    """Accuracy along training vs exposures per person, one panel per size, one line per run coloured by r (log).

    Runs at the main run length are solid; runs of another length (equal-exposure runs) are dashed.
    """
    d = df[(df["ratio"] > 0) & (df["ratio"] < 1) & (df["exposures"] > 0)]
    sizes = size_order(d) if len(d) else []
    fig, axes = _panels(len(sizes))
    if d.empty:
        return _empty(fig, axes[0], "no mixture rows with exposures > 0")
    ratios = _grid_ticks(d["ratio"])
    norm = LogNorm(d["ratio"].min(), d["ratio"].max())
    cmap = sns.color_palette("viridis", as_cmap=True)
    other = set(_final(d)["run_id"]) - set(_grid(d)["run_id"])  # finished at another run length
    for ax, size in zip(axes, sizes, strict=False):
        for run_id, run in d[d["size"] == size].groupby("run_id"):
            run = run.sort_values("exposures")
            style = "o--" if run_id in other else "o-"
            ax.plot(run["exposures"], run["acc"], style, ms=3, lw=1, color=cmap(norm(run["ratio"].iloc[0])))
    _label_size_panels(axes, sizes, "exposures per person", _round_ticks(d["exposures"]))
    cbar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(axes[: len(sizes)]), label="ratio r")
    cbar.set_ticks(ratios, labels=[_plain(r) for r in ratios])
    cbar.ax.yaxis.set_minor_locator(NullLocator())
    dashed = "\ndashed: runs of another length than the grid (equal-exposure runs)" if other else ""
    fig.suptitle(f"Accuracy along training vs exposures per person ({d['run_id'].nunique()} runs, colour: r){dashed}")
    return fig


def per_attribute(df: pd.DataFrame) -> Figure:
    """Final per-attribute accuracy (mean over seeds) vs ratio of the main-budget runs, one panel per size."""
    d = _grid(df)
    present = [a for a in ATTRIBUTES if f"acc_{a}" in d.columns and d[f"acc_{a}"].notna().any()]
    sizes = size_order(d) if len(d) and present else []
    fig, axes = _panels(len(sizes))
    if not sizes:
        return _empty(fig, axes[0], "no per-attribute accuracy in the table")
    colours = sns.color_palette("deep", len(present))
    for ax, size in zip(axes, sizes, strict=False):
        means = d[d["size"] == size].groupby("ratio")[[f"acc_{a}" for a in present]].mean()
        for attr, colour in zip(present, colours, strict=True):
            ax.plot(means.index, means[f"acc_{attr}"], "o-", ms=3, color=colour, label=attr)
    _label_size_panels(axes, sizes, "mixing ratio r", _grid_ticks(d["ratio"]))
    axes[0].legend(fontsize="small")
    fig.suptitle(f"Per-attribute accuracy, final, main-budget runs ({_seed_note(d, ['size', 'ratio'])} per point)")
    return fig


def web_loss(df: pd.DataFrame, fit: WebLossFit | None = None) -> Figure:
    """Web validation loss vs parameters (log x) with the fitted L(M) = E + A M^-alpha and its CI band."""
    d = _final(df).dropna(subset=["web_loss"])
    fig = Figure(figsize=(7, 5), layout="constrained")
    ax = fig.subplots()
    if d.empty:
        return _empty(fig, ax, "no web loss in these rows")
    pcol = param_column(d)
    sns.scatterplot(data=d, x=pcol, y="web_loss", hue="ratio" if d["ratio"].nunique() > 1 else None, ax=ax)
    title = f"Web-loss scaling: one point per run ({d['run_id'].nunique()} runs)"
    if fit is not None and fit.ok:
        grid = np.geomspace(d[pcol].min() / 1.2, d[pcol].max() * 1.2, 200)
        label = f"L = {fit.E:.3g} + {fit.A:.3g} (M/{fit.scale:.0e})^-{fit.alpha:.3g}, {fit.level:.0%} band"
        _fit_with_band(ax, fit, grid, "C3", label=label)
        ax.legend(fontsize="small")
    _log_axis(ax, "x", *_size_ticks(d, pcol))
    ax.set_xlabel(_axis_name(pcol))
    ax.set_ylabel("web validation loss (nats/token)")
    ax.set_title(title)
    return fig


def plot_jump_test(points: Curve, test: JumpTest, *, label: str = "") -> Figure:
    """One curve's jump test (analysis/jump.py): the pooled data with error bars, the best bounded smooth curve and
    the best change-point model; the title gives LR and p, the footnote test.describe().

    Error bars: binomial SE, times sqrt(dispersion) when the test's dispersion exceeds 1. `points` is the curve the
    test was run on; `label` names it (e.g. "size t57k").
    """
    xs, k, n = points.pooled()
    fig = Figure(figsize=(7.5, 5.5), layout="constrained")
    ax = fig.subplots()
    if len(xs) == 0:
        return _empty(fig, ax, "no rows")
    phi = test.dispersion if np.isfinite(test.dispersion) else 1.0
    acc = k / n
    se = np.sqrt(acc * (1 - acc) / n * max(phi, 1.0))
    err = "binomial SE" if phi <= 1.0 else f"binomial SE × √φ, φ = {phi:.2f}"
    seeds = _seed_note(pd.DataFrame({"x": points.x, "seed": points.seed}), "x", "pooled counts of")
    ax.errorbar(xs, acc, yerr=se, fmt="o", color="k", ms=5, capsize=2, label=f"data ({seeds}) ± {err}")
    head = f"Jump test{f', {label}' if label else ''}"
    if test.tested:
        grid = np.geomspace(xs.min(), xs.max(), 400)
        smooth = f"best smooth curve: {test.smooth_family}, rise factor ≥ {test.bound:.3g}"
        ax.plot(grid, test.smooth_curve(grid), color="C0", lw=1.8, label=smooth)
        ax.plot(grid, test.jump_curve(grid), color="C3", ls="--", lw=1.8, label=f"best change point: {test.jump_model}")
        c1, c2 = np.exp(test.jump_theta[:2])
        if test.jump_model == "step":
            ax.axvspan(xs[xs < c1].max(), xs[xs > c1].min(), color="C3", alpha=0.08, lw=0, label="gap holding the step")
        elif test.jump_model == "ramp":
            ax.axvspan(c1, c2, color="C3", alpha=0.08, lw=0, label="the ramp's rise")
        head += f": LR = {test.lr:.2f}, p = {test.p_value:.3f} ± {test.p_mc_se:.3f}"
    else:
        head += ": not run"
    _log_axis(ax, "x", _grid_ticks(xs))
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(_axis_name(points.x_name))
    ax.set_ylabel("accuracy")
    ax.set_title(head)
    ax.legend(fontsize="small", loc="best")
    fig.supxlabel(textwrap.fill(test.describe(), 90), fontsize="small")
    return fig


def plot_width_vs_size(
    widths: pd.DataFrame, fit: PowerLawFit | None = None, *, ylabel: str = "transition width"
) -> Figure:
    """Transition width of each size with its CI vs model size (log-log), and an optional power law with its band.

    `widths` has columns size (label), params, width, width_lo, width_hi: e.g. the sigmoid's w or the 10%->90% rise
    factor x90 / x10 of each size.
    """
    w = widths.dropna(subset=["width"]).sort_values("params")
    fig = Figure(figsize=(7, 5), layout="constrained")
    ax = fig.subplots()
    if w.empty:
        return _empty(fig, ax, "no fitted widths")
    lo, hi = w["width_lo"].fillna(w["width"]), w["width_hi"].fillna(w["width"])
    yerr = np.vstack([w["width"] - lo, hi - w["width"]])
    ax.errorbar(w["params"], w["width"], yerr=yerr, fmt="o", color="k", capsize=3, label="fitted width with its CI")
    if fit is not None and fit.ok:
        grid = np.geomspace(w["params"].min() / 1.2, w["params"].max() * 1.2, 100)
        _fit_with_band(ax, fit, grid, "C0", label=_power_label(fit))
    _log_axis(ax, "x", w["params"].to_numpy(float), [str(s) for s in w["size"]])
    _log_axis(ax, "y", _round_ticks(np.concatenate([lo, hi, w["width"]])))
    ax.set_xlabel("model size M (parameters)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{ylabel[:1].upper()}{ylabel[1:]} vs model size ({len(w)} sizes)")
    ax.legend(fontsize="small")
    return fig


def threshold_frequency_vs_size(fs: FrequencyScaling) -> Figure:
    """Log-log threshold frequency f* of each size with its CI, the fitted power law with its band, and the theory's
    slope -(alpha+1) drawn through the fitted law at the sizes' geometric mean, with the band of alpha's CI."""
    t = fs.table
    t = t[t["ok"] & np.isfinite(t["f_star"])] if len(t) else t
    fig = Figure(figsize=(7, 5), layout="constrained")
    ax = fig.subplots()
    if t.empty:
        return _empty(fig, ax, f"no threshold frequency could be fitted: {fs.reason}")
    level = fs.power.level if fs.power is not None else 0.95
    yerr = np.vstack([t["f_star"] - t["f_star_lo"], t["f_star_hi"] - t["f_star"]])
    ax.errorbar(t["M"], t["f_star"], yerr=yerr, fmt="o", color="k", capsize=3, label=f"f* ({level:.0%} CI)")
    grid = np.geomspace(t["M"].min() / 1.2, t["M"].max() * 1.2, 100)
    ys = [t["f_star_lo"], t["f_star_hi"]]
    if fs.power is not None and fs.power.ok:
        _fit_with_band(ax, fs.power, grid, "C0", label=_power_label(fs.power))
        th = fs.theory
        if th is not None and th.ok:
            m0 = float(np.exp(np.log(t["M"]).mean()))
            pivot = fs.power.predict(m0)
            lines = [pivot * (grid / m0) ** e for e in (th.predicted, *th.predicted_ci)]
            label = f"theory slope -(alpha+1) = {th.predicted:.2f} [{th.predicted_ci[0]:.2f}, {th.predicted_ci[1]:.2f}]"
            ax.plot(grid, lines[0], "--", color="C3", label=label)
            ax.fill_between(grid, np.minimum(lines[1], lines[2]), np.maximum(lines[1], lines[2]), color="C3",
                            alpha=0.12, lw=0)  # fmt: skip
    _log_axis(ax, "x", t["M"].to_numpy(float), [str(s) for s in t["size"]])
    span = np.concatenate([np.asarray(y, float) for y in ys])
    span = span[np.isfinite(span) & (span > 0)]
    ax.set_ylim(span.min() / 3, span.max() * 3)  # the points' CIs, not a wide theory band, set the scale
    _log_axis(ax, "y", _round_ticks(ax.get_ylim()))
    ax.set_xlabel("model size M (parameters)")
    ax.set_ylabel(f"threshold frequency f* ({UNITS[fs.unit]})")
    title = f"Threshold frequency vs model size (r = {fs.ratio:g}); f*: where a group reaches {fs.level_kind}"
    ax.set_title(textwrap.fill(title, 70), fontsize="medium")
    ax.legend(fontsize="small")
    return fig


CENSOR_MARKERS = {"right": ("^", "never reached (at the last evaluation)"), "left": ("v", "reached at the first")}


def tokens_to_target_vs_ratio(tokens: pd.DataFrame, growth: dict[str, GrowthFit]) -> Figure:
    """Tokens to reach the target (log y; rows of analysis.growth.tokens_to_target) against 1/r (linear x: an
    exponential in 1/r is a straight line), one panel per size: interpolated T with its bracket between
    evaluations, censored runs as arrows at their bound, and both censored-likelihood growth laws with dAIC."""
    d = tokens[tokens["ok"]] if len(tokens) else tokens
    sizes = list(dict.fromkeys(d["size"])) if len(d) else []
    fig, axes = _panels(len(sizes))
    if not sizes:
        return _empty(fig, axes[0], "no run with tokens to target")
    for ax, size in zip(axes, sizes, strict=False):
        g = d[d["size"] == size]
        x = 1.0 / g["ratio"]
        hit = g["censoring"] == "interval"
        yerr = np.vstack([g["tokens_to_target"] - g["tokens_lo"], g["tokens_hi"] - g["tokens_to_target"]])[:, hit]
        ax.errorbar(x[hit], g.loc[hit, "tokens_to_target"], yerr=yerr, fmt="o", color="k", ms=4, capsize=2,
                    label="T, bar: the evaluations around it")  # fmt: skip
        for kind, (marker, label) in CENSOR_MARKERS.items():
            c = g["censoring"] == kind
            if c.any():
                bound = g.loc[c, "tokens_lo" if kind == "right" else "tokens_hi"]
                ax.plot(x[c], bound, marker, color="C7", ms=7, ls="none", label=label)
        fit = growth.get(size)
        if fit is not None and fit.ok:
            grid = np.linspace(x.min(), x.max(), 100)
            for (form, law), colour in zip(fit.laws.items(), ("C3", "C0"), strict=True):
                label = f"{form}: b = {law.b:.2f} [{law.b_ci[0]:.2f}, {law.b_ci[1]:.2f}] on {FEATURE[form]}"
                ax.plot(grid, np.exp(law.a + law.b * FORMS[form](1.0 / grid)), color=colour, lw=1.5, label=label)
            ax.set_title(f"size {size}: {fit.preferred} (dAIC {fit.delta_aic:+.1f})", fontsize="medium")
        else:
            ax.set_title(f"size {size}: no fit", fontsize="medium")
        ax.set_yscale("log")
        seen = np.concatenate([g["tokens_lo"], g["tokens_hi"]])
        seen = seen[np.isfinite(seen) & (seen > 0)]
        ax.set_ylim(seen.min() / 3, seen.max() * 30)  # the laws' extrapolation beyond the runs is clipped
        ax.set_xlabel("1 / r")
        ax.legend(fontsize="x-small")
    for ax in axes[len(sizes) :]:
        ax.set_axis_off()
    axes[0].set_ylabel(f"tokens to reach accuracy {float(tokens['target'].iloc[0]):g}")
    fig.suptitle("Tokens to target vs 1/r (censored fits; dAIC = AIC_exp - AIC_power, |dAIC| < 2 inconclusive)")
    return fig

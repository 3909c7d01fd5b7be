"""Figures. Every function takes results-table rows (plus fit results) and returns a matplotlib Figure.

Figures are built on matplotlib.figure.Figure directly (no pyplot state), so they render headless and can be saved
with fig.savefig or shown in a notebook with IPython.display.display(fig).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from analysis.io import ATTRIBUTES, param_column
from analysis.scaling import PowerLawFit, WebLossFit
from analysis.theory import TheoryPrediction
from analysis.thresholds import SigmoidFit, ThresholdSet

sns.set_theme(style="whitegrid", context="notebook")


def _final(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["final"]] if "final" in df.columns else df


def size_order(df: pd.DataFrame) -> list:
    """Size labels ordered by parameter count."""
    pcol = param_column(df)
    return list(df.groupby("size")[pcol].median().sort_values().index)


def _log_axis(ax, which: str = "x") -> None:
    """Log scale with plain '%g' labels at 1, 2, 5 x 10^k and no minor ticks (no mathtext: cheaper to draw)."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(NullLocator())


def _fit_with_band(ax, fit, grid: np.ndarray, color, **line_kw) -> None:
    """A fit's curve over `grid` and its bootstrap band (fit.predict and fit.band) in one colour."""
    lo, hi = fit.band(grid)
    ax.plot(grid, fit.predict(grid), color=color, **line_kw)
    ax.fill_between(grid, lo, hi, color=color, alpha=0.2, lw=0)


def _empty(fig: Figure, ax, message: str) -> Figure:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_axis_off()
    return fig


def phase_diagram(df: pd.DataFrame, tset: ThresholdSet | None = None, *, value: str = "acc") -> Figure:
    """Heatmap of final accuracy (mean over seeds) over size x ratio, with the fitted r*(M) line."""
    d = _final(df)
    d = d[(d["ratio"] > 0) & (d["ratio"] < 1)]
    fig = Figure(figsize=(8, 0.6 * max(d["size"].nunique(), 3) + 2), layout="constrained")
    ax = fig.subplots()
    if d.empty:
        return _empty(fig, ax, "no mixture runs (0 < ratio < 1)")
    sizes = size_order(d)[::-1]
    grid = d.pivot_table(index="size", columns="ratio", values=value, aggfunc="mean").reindex(sizes)
    sns.heatmap(
        grid,
        ax=ax,
        vmin=0,
        vmax=1,
        cmap="viridis",
        annot=grid.shape[1] <= 12,
        fmt=".2f",
        cbar_kws={"label": f"{value} (mean over seeds)"},
    )
    ax.set_xticklabels([f"{r:g}" for r in grid.columns])
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
    ax.set_title("Phase diagram: memorization accuracy")
    return fig


def accuracy_curves(df: pd.DataFrame, x: str = "ratio", by: str | None = "size", tset=None) -> Figure:
    """Accuracy vs x (log axis), one colour per `by` group: data (mean +- binomial SE), fitted sigmoid and its CI.

    `tset` is a ThresholdSet for the same x/by, or a single SigmoidFit when by is None.
    """
    d = _final(df)
    fig = Figure(figsize=(7.5, 5), layout="constrained")
    ax = fig.subplots()
    if d.empty:
        return _empty(fig, ax, "no rows")
    groups = [(None, d)] if by is None else [(k, d[d[by] == k]) for k in _order(d, by)]
    palette = sns.color_palette("viridis", len(groups))
    for (key, g), colour in zip(groups, palette, strict=True):
        pooled = g.groupby(x)[["n_correct", "n_eval"]].sum()
        acc = pooled["n_correct"] / pooled["n_eval"]
        se = np.sqrt(acc * (1 - acc) / pooled["n_eval"])
        label = f"{by}={key}" if by else "data"
        ax.errorbar(pooled.index, acc, yerr=se, fmt="o", color=colour, label=label, ms=5, capsize=2)
        fit = tset if isinstance(tset, SigmoidFit) else (tset.fits.get(key) if tset is not None else None)
        if fit is not None and fit.ok:
            _fit_with_band(ax, fit, np.geomspace(pooled.index.min(), pooled.index.max(), 200), colour, lw=1.5)
            ax.axvline(fit.x_star, color=colour, ls=":", lw=1)
    _log_axis(ax)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(x)
    ax.set_ylabel("accuracy")
    ax.set_title(f"Accuracy vs {x}: data, sigmoid fit and 95% bootstrap band")
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
    yerr = np.vstack([t["x_star"] - t["x_star_lo"], t["x_star_hi"] - t["x_star"]])
    ax.errorbar(t["M"], t["x_star"], yerr=yerr, fmt="o", color="k", capsize=3, label=f"fitted {tset.x}* (95% CI)")
    grid = np.geomspace(t["M"].min() / 1.2, t["M"].max() * 1.2, 100)
    if power is not None and power.ok:
        label = f"power law, k = {power.k:.2f} [{power.ci['k'][0]:.2f}, {power.ci['k'][1]:.2f}]"
        _fit_with_band(ax, power, grid, "C0", label=label)
    if theory is not None:
        order = np.argsort(theory.x)
        ax.plot(
            theory.x[order],
            theory.predicted[order],
            "s--",
            color="C3",
            label=f"theory (slope {theory.local_exponent:.2f})",
        )
        ax.fill_between(theory.x[order], theory.lo[order], theory.hi[order], color="C3", alpha=0.15, lw=0)
    _log_axis(ax)
    _log_axis(ax, "y")
    ax.set_xlabel(tset.by if tset.by != "size" else "parameters M")
    ax.set_ylabel(f"{tset.x}*")
    ax.set_title(f"Threshold {tset.x}* vs {tset.by}")
    ax.legend(fontsize="small")
    return fig


def _panels(n: int) -> tuple[Figure, np.ndarray]:
    cols = min(n, 3) or 1
    rows = int(np.ceil(n / cols)) or 1
    fig = Figure(figsize=(4.5 * cols, 3.6 * rows), layout="constrained")
    return fig, np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()


def _label_size_panels(axes: np.ndarray, sizes: list, xlabel: str) -> None:
    """Log x axis, title and x label on each size's panel, unused panels hidden, accuracy on the first y axis."""
    for ax, size in zip(axes, sizes, strict=False):
        _log_axis(ax)
        ax.set_title(f"size {size}")
        ax.set_xlabel(xlabel)
    for ax in axes[len(sizes) :]:
        ax.set_axis_off()
    axes[0].set_ylabel("accuracy")


def accuracy_vs_exposures(df: pd.DataFrame) -> Figure:
    """Accuracy along training vs exposures per person, one panel per size, one line per run coloured by r (log)."""
    d = df[(df["ratio"] > 0) & (df["ratio"] < 1) & (df["exposures"] > 0)]
    sizes = size_order(d) if len(d) else []
    fig, axes = _panels(len(sizes))
    if d.empty:
        return _empty(fig, axes[0], "no mixture rows with exposures > 0")
    norm = LogNorm(d["ratio"].min(), d["ratio"].max())
    cmap = sns.color_palette("viridis", as_cmap=True)
    for ax, size in zip(axes, sizes, strict=False):
        for _, run in d[d["size"] == size].groupby("run_id"):
            run = run.sort_values("exposures")
            ax.plot(run["exposures"], run["acc"], "o-", ms=3, lw=1, color=cmap(norm(run["ratio"].iloc[0])))
    _label_size_panels(axes, sizes, "exposures per person")
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(axes[: len(sizes)]), label="ratio r")
    fig.suptitle("Same exposures, different outcome: accuracy vs exposures, coloured by r")
    return fig


def per_attribute(df: pd.DataFrame) -> Figure:
    """Final per-attribute accuracy (mean over seeds) vs ratio, one panel per size."""
    d = _final(df)
    d = d[(d["ratio"] > 0) & (d["ratio"] < 1)]
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
    _label_size_panels(axes, sizes, "ratio r")
    axes[0].legend(fontsize="small")
    fig.suptitle("Per-attribute accuracy (final, mean over seeds)")
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
    if fit is not None and fit.ok:
        grid = np.geomspace(d[pcol].min() / 1.2, d[pcol].max() * 1.2, 200)
        label = f"L = {fit.E:.3g} + {fit.A:.3g} (M/{fit.scale:.0e})^-{fit.alpha:.3g}"
        _fit_with_band(ax, fit, grid, "C3", label=label)
        ax.legend(fontsize="small")
    _log_axis(ax)
    ax.set_xlabel(f"parameters M ({pcol})")
    ax.set_ylabel("web validation loss (nats/token)")
    ax.set_title("Web-loss scaling")
    return fig

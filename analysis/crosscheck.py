"""psignifit 4 as an independent cross-check of `analysis.thresholds.fit_sigmoid` on the same curves.

psignifit (Schütt, Harmeling, Macke & Wichmann 2016; `pip install -e '.[crosscheck]'`) fits
psi(x) = gamma + (1 - gamma - lambda) F(x; threshold, width) by integrating the posterior on a parameter grid,
with a beta-binomial likelihood and default priors (threshold flat over the sampled range with cosine tails half a
range out; width flat from twice the smallest x spacing to the range; gamma, lambda ~ Beta(1, 10) on [0, 0.5], so
a ceiling below 0.5 is outside its lapse range; eta ~ Beta(1, 10)); point estimates are the posterior mode (MAP).
It is run here on log x with the logistic F, thresh_PC = 0.5 and width_alpha = 0.05. Then exactly, with mixlab's
acc = lo + (hi - lo) sigmoid((log x - log x*) / w):

- threshold = log x* (F = 0.5 is the midpoint of floor and ceiling), gamma = lo (floor), 1 - lambda = hi (ceiling);
- width = the log-x distance from F = 0.05 to F = 0.95 = 2 ln(19) w, so w = width / (2 ln 19), and mixlab's
  10%->90% rise factor 81^w = 9^(width / ln 19).

Overdispersion: psignifit's eta is the sd of each block's (one run at one x) success probability about psi, in
units of sqrt(psi (1 - psi)); a block of n items has variance n psi (1 - psi) (1 + (n - 1) eta^2), i.e. the
design effect 1 + (n - 1) eta^2, with one eta shared by all blocks and integrated out. mixlab divides every count by
one estimated phi instead (analysis.dispersion). Runs are passed as separate blocks, so seed scatter enters eta.
The credible intervals are psignifit's marginal posterior percentiles; mixlab's are percentile bootstrap intervals
(x*: the t interval of the seeds' own fits when >= 2 seeds locate it, see analysis.thresholds).

    python -m analysis.crosscheck [--results=<table>]   # every size of the table, then simulated curves
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.calibration import Design, sigmoid_truth, simulate_curve
from analysis.curves import Curve
from analysis.io import final_rows, load_results
from analysis.thresholds import fit_sigmoid
from analysis.verdicts import main_budget

LN19 = float(np.log(19.0))
DEFAULT_TABLE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "results_small.csv"
EDGE_MASS = 1e-3  # posterior mass in a marginal's first or last grid cell that psignifit warns about
TRUTH = dict(x_star=0.3, w=0.15)  # of the simulated curves (analysis.calibration.sigmoid_truth)
SIM_TAU = 0.1  # sd of log x* between the seeds of the simulated three-seed curves


def _psignifit():
    try:
        import psignifit
    except ImportError as e:
        raise ImportError("analysis.crosscheck needs psignifit 4: pip install -e '.[crosscheck]'") from e
    return psignifit


def psignifit_fit(curve: Curve, *, beta_binomial: bool = True, level: float = 0.95) -> dict:
    """psignifit's MAP x*, w, floor and ceiling with `level` credible intervals, as mixlab's parameters.

    One block per row of the curve (counts rounded to integers); beta_binomial=False fixes eta = 0 (binomial).
    deff is the design effect 1 + (n - 1) eta^2 of a block of the median size n, at eta's MAP and interval ends
    (the MAP is often eta = 0, the mode of its prior: the interval is what carries the overdispersion).
    `grid` says where psignifit's final grid fails the fit ("" when it does not): a threshold or width marginal
    with more than EDGE_MASS in an end cell (psignifit's own bound warning), or a MAP outside the grid. The latter
    happens with thousands of items per block: the coarse first grid cannot place a steep sigmoid, only a large
    eta excuses its misfit, and the fine grid is cut to that eta range, so the intervals are those of a posterior
    truncated to large overdispersion (too wide).
    """
    ps = _psignifit()
    data = np.column_stack([np.log(curve.x), np.rint(curve.k), np.rint(curve.n)])
    conf = dict(sigmoid="logistic", experiment_type="yes/no", thresh_PC=0.5, width_alpha=0.05)
    conf.update(confP=(level,), verbose=False)
    if not beta_binomial:
        conf["fixed_parameters"] = {"eta": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # log(0) on grid cells the data exclude
        res = ps.psignifit(data, **conf)
    est, ci = res.parameter_estimate, {p: np.asarray(v[str(level)]) for p, v in res.confidence_intervals.items()}
    etas = {"eta": float(est["eta"])}
    etas["eta_lo"], etas["eta_hi"] = (float(e) for e in ci["eta"]) if beta_binomial else (0.0, 0.0)
    n_block = float(np.median(data[:, 2]))
    margins, grid = res.marginal_posterior_values, res.parameter_values
    problems = [
        f"{p} at edge" for p in ("threshold", "width") if max(margins[p][[0, -1]] / margins[p].sum()) > EDGE_MASS
    ]
    problems += [
        f"MAP {p} {est[p]:.3g} off grid [{g[0]:.3g}, {g[-1]:.3g}]"
        for p, g in sorted(grid.items())
        if len(g) > 1 and not g[0] <= est[p] <= g[-1]
    ]
    return {
        "x_star": float(np.exp(est["threshold"])),
        "x_star_lo": float(np.exp(ci["threshold"][0])),
        "x_star_hi": float(np.exp(ci["threshold"][1])),
        "w": float(est["width"]) / (2 * LN19),
        "w_lo": float(ci["width"][0]) / (2 * LN19),
        "w_hi": float(ci["width"][1]) / (2 * LN19),
        "lo": float(est["gamma"]),
        "hi": 1.0 - float(est["lambda"]),
        **etas,
        **{k.replace("eta", "deff"): 1.0 + (n_block - 1.0) * e**2 for k, e in etas.items()},
        "grid": "; ".join(problems),
    }


def compare(curve: Curve, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """One row: mixlab's fit_sigmoid (mix_*), psignifit beta-binomial (ps_*) and psignifit binomial x* CI (bin_*)."""
    fit = fit_sigmoid(curve, n_boot=n_boot, seed=seed, level=level)
    row = {"rows": len(curve), "seeds": len(np.unique(curve.seed)), "mix_ok": fit.ok, "mix_reason": fit.reason}
    row.update(mix_x_star=fit.x_star, mix_w=fit.w, mix_lo=fit.lo, mix_hi=fit.hi, mix_phi=fit.dispersion.phi)
    for p in ("x_star", "w"):
        row[f"mix_{p}_lo"], row[f"mix_{p}_hi"] = fit.ci.get(p, (np.nan, np.nan))
    row["mix_x_star_interval"] = "seeds' t" if fit.ok and fit.unit.startswith("x*: t interval") else "bootstrap"
    row.update({f"ps_{k}": v for k, v in psignifit_fit(curve, level=level).items()})
    binomial = psignifit_fit(curve, beta_binomial=False, level=level)
    row.update(bin_x_star_lo=binomial["x_star_lo"], bin_x_star_hi=binomial["x_star_hi"])
    return row


def crosscheck(curves: dict[str, Curve], truth: dict[str, dict] | None = None, **kw) -> pd.DataFrame:
    """`compare` for every named curve, one row each (with the true x* and w where `truth` gives them)."""
    rows = []
    for name, curve in curves.items():
        t = (truth or {}).get(name, {})
        rows.append({"curve": name, "true_x_star": t.get("x_star", np.nan), "true_w": t.get("w", np.nan)})
        rows[-1].update(compare(curve, **kw))
    return pd.DataFrame(rows)


def table_curves(df: pd.DataFrame) -> dict[str, Curve]:
    """r-curves of a results table: final mixture rows (0 < r < 1) at the main run length, per size with >= 3 ratios."""
    final = final_rows(df)
    mix = main_budget(final[(final["ratio"] > 0) & (final["ratio"] < 1)])
    return {
        f"size {size}": Curve.from_frame(g, "ratio")
        for size, g in mix.groupby("size", sort=False)
        if g["ratio"].nunique() >= 3
    }


def simulated_curves(seed: int = 0) -> dict[str, Curve]:
    """Clustered simulations of analysis.calibration (truth x* = 0.3, w = 0.15): design effect 1 and 2, one seed
    and three seeds (these shifted by exp(SIM_TAU z) in x)."""
    rng = np.random.default_rng(seed)
    curves = {}
    for deff in (1.0, 2.0):
        for seeds in (1, 3):
            tau = SIM_TAU if seeds > 1 else 0.0
            name = f"sim deff {deff:g}, {seeds} seed{'s' * (seeds > 1)}" + (f" (tau {tau:g})" if tau else "")
            curves[name] = simulate_curve(sigmoid_truth(**TRUTH), Design(deff=deff, seeds=seeds, tau=tau), rng)
    return curves


COLUMNS = {  # printed column: header
    "curve": "curve",
    "mix_x_star": "mix x*",
    "mix_x_star_ci": "mix CI",
    "mix_x_star_interval": "mix CI is",
    "ps_x_star": "ps x*",
    "ps_x_star_ci": "ps CI",
    "bin_x_star_ci": "ps binom CI",
    "mix_w": "mix w",
    "mix_w_ci": "mix w CI",
    "ps_w": "ps w",
    "ps_w_ci": "ps w CI",
    "mix_phi": "phi",
    "ps_deff_ci": "ps deff CI",
    "ps_grid": "ps grid",
}


def format_table(table: pd.DataFrame) -> str:
    """The comparison as text: point estimates and [lo, hi] intervals to 3 significant figures."""
    out = table.copy()
    for p in ("mix_x_star", "ps_x_star", "bin_x_star", "mix_w", "ps_w", "ps_deff"):
        out[f"{p}_ci"] = [f"[{a:.3g}, {b:.3g}]" for a, b in zip(out[f"{p}_lo"], out[f"{p}_hi"], strict=True)]
    out = out[list(COLUMNS)].rename(columns=COLUMNS)
    return out.to_string(index=False, float_format=lambda v: f"{v:.3g}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(DEFAULT_TABLE), help="results table (default: the small fixture)")
    parser.add_argument("--n_boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    kw = dict(n_boot=args.n_boot, seed=args.seed)
    tables = crosscheck(table_curves(load_results(args.results)), **kw)
    sims = simulated_curves(args.seed)
    sim = crosscheck(sims, {name: TRUTH for name in sims}, **kw)
    print(f"{args.results}: one curve per size (final mixture rows)")
    print(format_table(tables))
    for _, r in tables[~tables["mix_ok"]].iterrows():
        print(f"  {r['curve']}: mixlab gives no fit: {r['mix_reason']}")
    print(f"\nsimulated (analysis.calibration), truth x* = {TRUTH['x_star']:g}, w = {TRUTH['w']:g}")
    print(format_table(sim))


if __name__ == "__main__":
    main()

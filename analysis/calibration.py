"""Calibration of the analysis on simulated data whose truth is known: interval coverage, the jump test's
false-positive rate per smooth null family, and its power against steps; the threshold frequency's exponent of the
power-law groups; the tokens-to-target criterion between growth laws.

Simulated evaluations are clustered as mixlab's are: each run evaluates `people` people on `items` items each, a
person's items share a person-level accuracy drawn from a beta distribution whose intra-class correlation gives
the design effect deff = 1 + (items - 1) rho, and each seed shifts the transition by exp(tau z) in x.

    python -m analysis.calibration [--replicates=200] [--draws=99] [--parts=thresholds,frequency,growth]
    # prints the tables recorded in BUILD_NOTES.md
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.curves import Curve
from analysis.dispersion import estimate
from analysis.fitting import FitWarning
from analysis.frequency import FIXED_LEVEL, GROUP_KEY, fit_frequency
from analysis.growth import FORMS, fit_growth, tokens_to_target
from analysis.jump import DEFAULT_BOUND, jump_batch
from analysis.scaling import fit_web_loss, threshold_power_law
from analysis.thresholds import fit_sigmoid, fit_thresholds, sigmoid_curve
from analysis.verdicts import width_power_law

DEMO_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


@dataclass(frozen=True)
class Design:
    """How a simulated size is evaluated: sampled x, people x items per run, design effect, seeds and their scatter."""

    x: tuple[float, ...] = DEMO_RATIOS
    people: int = 30
    items: int = 25
    deff: float = 2.0
    seeds: int = 1
    tau: float = 0.0  # sd of log x* between seeds
    run_tau: float = 0.0  # sd of log x* between runs, each x of each seed its own: scatter one run per x cannot show


def clustered_counts(p_RxX: np.ndarray, design: Design, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(n_correct, acc_se) of runs with true accuracies p, items clustered by person with the design's deff."""
    rho = (design.deff - 1.0) / (design.items - 1.0)
    p = np.clip(p_RxX, 1e-6, 1 - 1e-6)[..., None]
    if rho > 0:
        conc = 1.0 / rho - 1.0
        person_p = rng.beta(p * conc, (1 - p) * conc, size=(*p_RxX.shape, design.people))
    else:
        person_p = np.broadcast_to(p, (*p_RxX.shape, design.people))
    k_person = rng.binomial(design.items, person_p)
    acc_person = k_person / design.items
    se = acc_person.std(axis=-1, ddof=1) / np.sqrt(design.people)
    return k_person.sum(axis=-1).astype(float), se


def simulate_curve(truth: Callable[[np.ndarray], np.ndarray], design: Design, rng: np.random.Generator) -> Curve:
    """One size's final rows: every x for every seed, the seed's curve shifted by exp(tau z) in x (and each run's
    by exp(run_tau z') on top)."""
    x = np.asarray(design.x, float)
    shifts = np.exp(design.tau * rng.standard_normal(design.seeds)) if design.tau > 0 else np.ones(design.seeds)
    if design.run_tau > 0:
        shifts = shifts[:, None] * np.exp(design.run_tau * rng.standard_normal((design.seeds, len(x))))
    p = np.stack([truth(x / s) for s in shifts])
    k, se = clustered_counts(p, design, rng)
    n = np.full(k.shape, float(design.people * design.items))
    seed = np.repeat(np.arange(design.seeds), len(x))
    return Curve.from_arrays(np.tile(x, design.seeds), k.ravel(), n.ravel(), seed, x_name="ratio", se=se.ravel())


def power_law(k: float, top: float = 0.9, x_top: float = 0.6) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: top * np.minimum(1.0, (x / x_top) ** k)


def logistic_linear(scale: float, mid: float = 0.35, lo: float = 0.01, hi: float = 0.9):
    return lambda x: lo + (hi - lo) / (1.0 + np.exp(-(x - mid) / scale))


def hill(h: float, mid: float = 0.35, lo: float = 0.01, hi: float = 0.9):
    return lambda x: lo + (hi - lo) * x**h / (x**h + mid**h)


def step(at: float = 0.35, lo: float = 0.01, hi: float = 0.9):
    return lambda x: np.where(x >= at, hi, lo)


NULLS = {  # smooth curves at or within the pre-registered bound (rise factor >= 9^(1/4) = 1.73)
    "power x^1": power_law(1),
    "power x^2": power_law(2),
    "power x^3": power_law(3),
    "power x^4 (at the bound)": power_law(4),
    "logistic in x, scale 0.05": logistic_linear(0.05),
    "logistic in x, scale 0.1": logistic_linear(0.1),
    "Hill 4": hill(4),
    "Hill 8 (at the bound)": hill(8),
}
ALTERNATIVES = {
    "step at 0.35": step(),
    "step at 0.25": step(0.25),
    "step of half height": step(hi=0.45),
}


def steep_sigmoid(rise: float, mid: float = 0.35, lo: float = 0.01, hi: float = 0.9):
    """A sigmoid in log x whose 10%->90% rise spans a factor `rise` in x (smooth, but steeper than the bound)."""
    w = float(np.log(rise) / (2 * np.log(9.0)))
    return lambda x: sigmoid_curve(x, mid, w, lo, hi)


STEEP = {f"sigmoid in log x, rise x{f:g}": steep_sigmoid(f) for f in (1.1, 1.3, 1.5)}  # power short of a step


def rejection_rate(
    truth, design: Design, replicates: int, draws: int, seed: int = 0, bound: float = DEFAULT_BOUND
) -> tuple[float, float]:
    """Share of replicates in which the jump test rejects at 5%, and its Monte-Carlo standard error."""
    rng = np.random.default_rng(seed)
    curves = [simulate_curve(truth, design, rng) for _ in range(replicates)]
    pooled = [c.pooled() for c in curves]
    xs = pooled[0][0]
    k = np.stack([p[1] for p in pooled])
    n = np.stack([p[2] for p in pooled])
    phi = np.array([estimate(c).phi for c in curves])
    p = jump_batch(xs, k, n, phi, bound, draws, rng).p_R
    rate = float(np.mean(p <= 0.05))
    return rate, float(np.sqrt(max(rate * (1 - rate), 0.05 * 0.95) / replicates))


def jump_table(replicates: int, draws: int, designs: dict[str, Design]) -> pd.DataFrame:
    """Rejection rate of every null and alternative under every design."""
    rows = []
    for dname, design in designs.items():
        for kind, curves in (("null", NULLS), ("step", ALTERNATIVES), ("steep", STEEP)):
            for cname, truth in curves.items():
                rate, se = rejection_rate(truth, design, replicates, draws)
                rows.append({"design": dname, "kind": kind, "curve": cname, "rejects": rate, "mc_se": se})
    return pd.DataFrame(rows)


def sigmoid_truth(x_star: float = 0.3, w: float = 0.15, lo: float = 0.01, hi: float = 0.9):
    return lambda x: sigmoid_curve(x, x_star, w, lo, hi)


def simulate_sizes(
    sizes: tuple[float, ...], x_star, width, design: Design, rng: np.random.Generator, lo: float = 0.01, hi: float = 0.9
) -> pd.DataFrame:
    """Final rows of several sizes M (sigmoids with x*(M) = x_star(M), w(M) = width(M)), in results-table columns."""
    rows = []
    for m in sizes:
        c = simulate_curve(sigmoid_truth(x_star(m), width(m), lo, hi), design, rng)
        for i in range(len(c)):
            rows.append({"size": f"{m:g}", "params_non_embedding": m, "ratio": c.x[i], "seed": int(c.seed[i]),
                         "n_correct": c.k[i], "n_eval": c.n[i], "acc": c.k[i] / c.n[i], "acc_se": c.se[i]})  # fmt: skip
    return pd.DataFrame(rows)


def interval_coverage(design: Design, replicates: int, n_boot: int = 400, seed: int = 1) -> dict[str, float]:
    """Share of replicates whose 95% CIs of x* and w cover the truth (x* = 0.3, w = 0.15), and of fits that
    succeed."""
    rng = np.random.default_rng(seed)
    hits, fits = np.zeros(2), 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        for r in range(replicates):
            fit = fit_sigmoid(simulate_curve(sigmoid_truth(0.3, 0.15), design, rng), n_boot=n_boot, seed=r)
            if fit.ok:
                fits += 1
                hits += [fit.ci["x_star"][0] <= 0.3 <= fit.ci["x_star"][1], fit.ci["w"][0] <= 0.15 <= fit.ci["w"][1]]
    return {"x_star": hits[0] / max(fits, 1), "w": hits[1] / max(fits, 1), "fitted": fits / replicates}


SIZES = (1e6, 2e6, 4e6, 8e6, 16e6)
WIDE_RATIOS = tuple(np.round(np.geomspace(0.05, 0.8, 10), 4))


def scaling_coverage(width, replicates: int, design: Design = Design(x=WIDE_RATIOS), seed: int = 2) -> dict:
    """Over replicates of 5 sizes with r* = 0.3 (M / 1e6)^-0.5 and width w(M): the share whose exponent CI covers
    -0.5, whose width-slope CI covers the truth (0 for a constant width, else the given slope; a width law that
    cannot be fitted covers nothing), and that call the transition sharpening (width-slope CI below 0)."""
    rng = np.random.default_rng(seed)
    true_slope = float(np.log(width(2e6) / width(1e6)) / np.log(2.0))
    k_hits = w_hits = sharpens = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        for r in range(replicates):
            df = simulate_sizes(SIZES, lambda m: 0.3 * (m / 1e6) ** -0.5, width, design, rng)
            ts = fit_thresholds(df, "ratio", "size", group_x="params_non_embedding", n_boot=400, targets=(),
                                seed=r, jump_draws=0)  # fmt: skip
            width_law = width_power_law(ts, 1000, r)  # fails where < 2 widths are resolved: no cover, no call
            k, w = threshold_power_law(ts, seed=r).ci["k"], width_law.ci["k"] if width_law.ok else (np.nan, np.nan)
            k_hits += k[0] <= -0.5 <= k[1]
            w_hits += w[0] <= true_slope <= w[1]
            sharpens += w[1] < 0
    return {"exponent": k_hits / replicates, "width_slope": w_hits / replicates, "sharpens": sharpens / replicates}


def power_law_groups_table(
    sizes: tuple[float, ...],
    f_star,
    rng: np.random.Generator,
    *,
    design: Design = Design(people=100, items=25, deff=10.0),
    groups: int = 100,
    beta: float = 1.5,
    top: float = 3000.0,
    w: float = 0.15,
    lo: float = 0.0,
    hi: float = 0.95,
    seeds: int = 2,
    tau: float = 0.05,
    with_se: bool = False,
) -> pd.DataFrame:
    """Final rows of power-law runs (one per size x seed) in the per-group columns of analysis/FORMAT.md.

    Group k's frequency is top (k+1)^-beta exposures per person (times 1% noise per run); its accuracy is a sigmoid in
    log frequency that reaches FIXED_LEVEL at f_star(M) (shifted by exp(tau z) per seed); its `people` people
    answer `items` items each with the design effect `deff` (clustered_counts). with_se adds acc_se_group_<k>.
    """
    q = (FIXED_LEVEL - lo) / (hi - lo)
    freq = top * np.arange(1, groups + 1, dtype=float) ** -beta
    n = float(design.people * design.items)
    rows = []
    for m in sizes:
        for s in range(seeds):
            f_run = freq * np.exp(0.01 * rng.standard_normal(groups))
            x_star = f_star(m) * np.exp(tau * rng.standard_normal()) * np.exp(-w * np.log(q / (1 - q)))
            k, se = clustered_counts(sigmoid_curve(f_run, x_star, w, lo, hi)[None], design, rng)
            row = {"run_id": f"pl-{m:g}-s{s}", "size": f"{m:g}", "params_non_embedding": m, "ratio": 0.1, "seed": s,
                   "step": 1, "final": True, "tokens": 1e9, GROUP_KEY: groups}  # fmt: skip
            for g in range(groups):
                row.update({f"n_correct_group_{g}": k[0, g], f"n_eval_group_{g}": n, f"acc_group_{g}": k[0, g] / n,
                            f"n_people_group_{g}": design.people, f"exposures_group_{g}": f_run[g]})  # fmt: skip
                if with_se:
                    row[f"acc_se_group_{g}"] = se[0, g]
            rows.append(row)
    return pd.DataFrame(rows)


def web_only_table(sizes: tuple[float, ...], alpha: float, rng: np.random.Generator, seeds: int = 2) -> pd.DataFrame:
    """Final web-only rows: web_loss = 2 + 1.5 (M / 1e6)^-alpha with 0.3% noise (analysis.simulate's Truth)."""
    m = np.repeat(np.asarray(sizes, float), seeds)
    loss = (2.0 + 1.5 * (m / 1e6) ** -alpha) * (1 + 0.003 * rng.standard_normal(len(m)))
    return pd.DataFrame({"params_non_embedding": m, "web_loss": loss})


FREQ_SIZES = (1e6, 2e6, 4e6, 8e6)


def frequency_calibration(slope: float, replicates: int, *, with_se: bool = False, alpha: float = 0.3,
                          seed: int = 4) -> dict:  # fmt: skip
    """Over replicates of 4 sizes with f* = 300 (M / 1e6)^slope (power_law_groups_table) and web-only runs with
    exponent alpha: the share whose f* exponent CI covers `slope`, that call f* falling (CI below 0), whose
    difference from -(alpha+1) covers its truth (slope + alpha + 1) and excludes 0, and that fit all 4 sizes."""
    rng = np.random.default_rng(seed)
    hits = {"exponent": 0, "falls": 0, "diff": 0, "diff_excludes_0": 0, "all_sizes": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        for r in range(replicates):
            table = power_law_groups_table(FREQ_SIZES, lambda m: 300.0 * (m / 1e6) ** slope, rng, with_se=with_se)
            web_rows = web_only_table(FREQ_SIZES, alpha, rng)
            web = fit_web_loss(web_rows["params_non_embedding"], web_rows["web_loss"], n_boot=400, seed=r)
            fs = fit_frequency(table, web=web, n_boot=400, seed=r)
            k_lo, k_hi = fs.power.ci["k"] if fs.ok else (np.nan, np.nan)
            d_lo, d_hi = fs.theory.diff_ci if fs.theory.ok else (np.nan, np.nan)
            hits["exponent"] += k_lo <= slope <= k_hi
            hits["falls"] += k_hi < 0
            hits["diff"] += d_lo <= slope + alpha + 1 <= d_hi
            hits["diff_excludes_0"] += not d_lo <= 0 <= d_hi
            hits["all_sizes"] += fs.ok and fs.power.n_points == len(FREQ_SIZES)
    return {name: v / replicates for name, v in hits.items()}


GROWTH_GRID = tuple(np.geomspace(1e7, 1e10, 11))  # evaluations a factor 2 apart
GROWTH_RATIOS = (0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
GROWTH_TRUTH = {"exponential": 0.84, "power law": 3.25}  # both: T(0.5) = 1e8 tokens, T(0.15) = 5e9


def growth_runs(
    form: str,
    b: float,
    rng: np.random.Generator,
    *,
    ratios: tuple[float, ...] = GROWTH_RATIOS,
    seeds: int = 2,
    sigma: float = 0.2,
    grid: tuple[float, ...] = GROWTH_GRID,
    target: float = 0.4,
    w: float = 0.3,
    design: Design = Design(people=100, items=25, deff=2.0),
) -> pd.DataFrame:
    """Evaluation rows of one size's runs along training: log T = log 1e8 + b (g(r) - g(0.5)) + sigma z (g of
    analysis.growth.FORMS), accuracy a sigmoid in log tokens (width w, floor 0.01, ceiling 0.9) crossing `target`
    at T, counts clustered by person. Runs whose T lies beyond the grid are right-censored by construction."""
    grid_t = np.asarray(grid, float)
    lo, hi = 0.01, 0.9
    q = (target - lo) / (hi - lo)
    n = float(design.people * design.items)
    rows = []
    for ratio in ratios:
        for s in range(seeds):
            log_t = np.log(1e8) + b * (FORMS[form](ratio) - FORMS[form](0.5)) + sigma * rng.standard_normal()
            p = sigmoid_curve(grid_t, np.exp(log_t - w * np.log(q / (1 - q))), w, lo, hi)
            k, _ = clustered_counts(p[None], design, rng)
            for j, t in enumerate(grid_t):
                rows.append({"run_id": f"r{ratio:g}-s{s}", "size": "1M", "params_non_embedding": 1e6, "ratio": ratio,
                             "seed": s, "step": j, "final": j == len(grid_t) - 1, "tokens": t,
                             "n_correct": k[0, j], "n_eval": n, "acc": k[0, j] / n})  # fmt: skip
    return pd.DataFrame(rows)


def growth_calibration(form: str, replicates: int, seed: int = 5, **design) -> dict:
    """Over replicates of `growth_runs` from `form`: the share in which dAIC picks each answer, in which the true
    form's slope CI covers its truth, and of fits that succeed."""
    rng = np.random.default_rng(seed)
    picks = {"exponential": 0, "power law": 0, "inconclusive": 0}
    covered = fitted = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        for _ in range(replicates):
            fit = fit_growth(tokens_to_target(growth_runs(form, GROWTH_TRUTH[form], rng, **design), 0.4))
            if fit.ok:
                fitted += 1
                picks[fit.preferred] += 1
                lo, hi = fit.laws[form].b_ci
                covered += lo <= GROWTH_TRUTH[form] <= hi
    return {**{f"picks {k}": v / max(fitted, 1) for k, v in picks.items()}, "b covered": covered / max(fitted, 1),
            "fitted": fitted / replicates}  # fmt: skip


def _print(title: str, rows: list[dict]) -> None:
    print(title)
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}") + "\n")


def _threshold_parts(replicates: int, draws: int) -> None:
    """The jump test, the x* and w intervals and the r* / width power laws."""
    designs = {
        "6 ratios, deff 2": Design(),
        "10 ratios, deff 2": Design(x=tuple(np.round(np.geomspace(0.1, 0.6, 10), 4))),
        "6 ratios, deff 1": Design(deff=1.0),
    }
    table = jump_table(replicates, draws, designs)
    _print(
        "jump test: share of replicates rejected at 5% (null: false positives; step: power)",
        table.to_dict("records"),
    )
    eight = tuple(np.round(np.geomspace(0.1, 0.6, 8), 4))
    rows = []
    for name, design in {
        "6 ratios, deff 2, 1 seed": Design(),
        "8 ratios, deff 2, 1 seed": Design(x=eight),
        "8 ratios, deff 2, 2 seeds, tau 0.05": Design(x=eight, seeds=2, tau=0.05),
        "8 ratios, deff 2, 3 seeds, tau 0.05": Design(x=eight, seeds=3, tau=0.05),
    }.items():
        rows.append({"design": name, **interval_coverage(design, replicates)})
    _print("coverage of the 95% intervals of x* and w (sigmoid x* = 0.3, w = 0.15; n_boot 400)", rows)
    rows = [
        {"width": "constant 0.15", **scaling_coverage(lambda m: 0.15, replicates)},
        {"width": "0.2 (M/1e6)^-0.3", **scaling_coverage(lambda m: 0.2 * (m / 1e6) ** -0.3, replicates)},
    ]
    _print("5 sizes, r* = 0.3 (M/1e6)^-0.5, 10 ratios 0.05-0.8, deff 2: coverage of the exponent and width slope", rows)


def _frequency_part(replicates: int) -> None:
    rows = [
        {"truth": "f* = 300 (M/1e6)^-1.3", **frequency_calibration(-1.3, replicates)},
        {"truth": "f* = 300 (M/1e6)^-1.3, acc_se_group given", **frequency_calibration(-1.3, replicates, with_se=True)},
        {"truth": "f* = 300 (null: no M dependence)", **frequency_calibration(0.0, replicates)},
    ]
    _print("threshold frequency: 4 sizes x 2 seeds x 100 groups (beta 1.5, 100 people x 25 items, deff 10), "
           "web alpha 0.3: share of replicates", rows)  # fmt: skip


def _growth_part(replicates: int) -> None:
    designs = {"6 ratios x 2 seeds": {}, "4 ratios (0.15-0.5) x 1 seed": dict(ratios=(0.15, 0.2, 0.3, 0.5), seeds=1)}
    rows = [
        {"design": name, "truth": f"{form}, b = {b:g}", **growth_calibration(form, replicates, **kw)}
        for name, kw in designs.items()
        for form, b in GROWTH_TRUTH.items()
    ]
    _print("tokens to target: 11 evaluations a factor 2 apart, sigma 0.2: share of replicates", rows)


PARTS = {  # name -> run(args)
    "thresholds": lambda args: _threshold_parts(args.replicates, args.draws),
    "frequency": lambda args: _frequency_part(args.replicates),
    "growth": lambda args: _growth_part(args.replicates),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--draws", type=int, default=99)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"--parts: unknown {unknown}; allowed: {list(PARTS)}")
    t0 = time.perf_counter()
    for part in parts:
        t1 = time.perf_counter()
        PARTS[part](args)
        print(f"({part}: {args.replicates} replicates, {time.perf_counter() - t1:.0f} s)\n")
    print(f"(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()

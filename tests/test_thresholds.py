"""Sigmoid thresholds, crossings, levels, steepness and honest failure (analysis.thresholds)."""

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.stats import t as t_dist

from analysis.curves import Curve, isotonic, resample
from analysis.fitting import FitWarning
from analysis.simulate import simulate_results
from analysis.thresholds import (
    _objective,
    crossing,
    fit_sigmoid,
    fit_thresholds,
    goodness_of_fit,
    sigmoid_curve,
    steepness,
)

TRUTH = dict(x_star=0.2, w=0.15, lo=0.01, hi=0.9)
GRID = np.geomspace(0.05, 0.6, 8)


def _curve(rng, truth=TRUTH, x=GRID, n=400, reps=1):
    x = np.repeat(x, reps)
    n = np.full(len(x), n)
    return Curve.from_arrays(
        x, rng.binomial(n, sigmoid_curve(x, **truth)), n, seed=np.tile(np.arange(reps), len(x) // reps), x_name="ratio"
    )


def test_recovers_known_parameters_from_binomial_noise():
    fit = fit_sigmoid(_curve(np.random.default_rng(0), n=3000))
    assert fit.ok, fit.reason
    assert fit.x_star == pytest.approx(0.2, rel=0.03)
    assert fit.w == pytest.approx(0.15, rel=0.15)
    assert fit.lo == pytest.approx(0.01, abs=0.01)
    assert fit.hi == pytest.approx(0.9, abs=0.02)
    for p, v in TRUTH.items():
        assert fit.ci[p][0] <= v <= fit.ci[p][1], (p, fit.ci[p])
    assert len(fit.boot) >= 980 and fit.resolved


def test_levenberg_marquardt_mle_matches_scipy_lbfgsb():
    curve = _curve(np.random.default_rng(3))
    fit = fit_sigmoid(curve, n_boot=1000)
    xs, k, n = curve.pooled()
    obj = _objective(np.log(xs), k[None], n[None])

    def f(theta):
        v, g, _ = obj(theta[None], np.zeros(1, int))
        return float(v[0]), g[0]

    s0 = np.array([np.log(0.3), np.log(0.3), 0.05, 0.8])
    res = minimize(f, s0, jac=True, method="L-BFGS-B", bounds=[(-6, 2), (-7, 2.5), (0, 1), (0, 1)])
    assert res.success
    assert fit.x_star == pytest.approx(np.exp(res.x[0]), rel=1e-3)
    assert fit.loglik == pytest.approx(-res.fun * n.sum(), abs=1e-3)


def test_ci_coverage_of_threshold_over_repeated_simulations():
    """95% bootstrap CIs (1000 resamples) of r* cover the truth at a rate in [0.90, 0.99]."""
    rng = np.random.default_rng(2024)
    reps, hits = 200, 0
    for i in range(reps):
        fit = fit_sigmoid(_curve(rng), n_boot=1000, over="items", seed=i)
        assert fit.ok, fit.reason
        hits += fit.ci["x_star"][0] <= TRUTH["x_star"] <= fit.ci["x_star"][1]
    assert 0.90 <= hits / reps <= 0.99, hits / reps


def test_seed_scatter_widens_the_ci_through_the_dispersion():
    rng = np.random.default_rng(5)
    x = np.repeat(GRID, 3)
    shift = np.tile([0.85, 1.0, 1.15], len(GRID))
    p = sigmoid_curve(x, TRUTH["x_star"] * shift, 0.15, 0.01, 0.9)
    n = np.full(len(x), 2000)
    curve = Curve.from_arrays(x, rng.binomial(n, p), n, seed=np.tile([0, 1, 2], len(GRID)))
    fit = fit_sigmoid(curve, n_boot=4000)  # enough draws for the t(2) quantiles
    assert fit.dispersion.from_seeds and fit.dispersion.phi > 5 and "t interval of 3 seeds" in fit.unit
    per_seed = [
        np.log(fit_sigmoid(Curve.from_arrays(x[s::3], curve.k[s::3], n[s::3]), n_boot=10).x_star) for s in range(3)
    ]
    half = t_dist.ppf(0.975, 2) * np.std(per_seed, ddof=1) / np.sqrt(3)
    lo, hi = fit.ci["x_star"]
    assert np.log(hi / lo) / 2 == pytest.approx(half, rel=0.15)  # the seeds' t interval
    one_seed = fit_sigmoid(Curve.from_arrays(x[::3], curve.k[::3], n[::3]))
    assert np.log(hi / lo) > 3 * np.log(one_seed.ci["x_star"][1] / one_seed.ci["x_star"][0])


def test_person_unit_is_more_conservative_than_item_unit():
    rng = np.random.default_rng(6)
    n = np.full(len(GRID), 2500)
    curve = Curve.from_arrays(GRID, rng.binomial(n, sigmoid_curve(GRID, **TRUTH)), n, n_people=n / 25)
    kb_item, _ = resample(curve, 2000, np.random.default_rng(0), over="items", unit="item")
    kb_person, nb = resample(curve, 2000, np.random.default_rng(0), over="items", unit="person")
    assert np.all(kb_person.std(axis=0) >= 3 * kb_item.std(axis=0) - 1e-9)
    assert np.allclose(kb_person.mean(axis=0), curve.k, rtol=0.05, atol=2)


def test_isotonic_matches_pool_adjacent_violators():
    p = np.array([[0.1, 0.3, 0.2, 0.5, 0.4, 0.9]])
    w = np.array([[1.0, 1, 1, 2, 1, 1]])
    expected = [0.1, 0.25, 0.25, 0.4666667, 0.4666667, 0.9]
    assert np.allclose(isotonic(p, w)[0], expected, atol=1e-6)


def test_crossing_threshold_and_ci():
    curve = _curve(np.random.default_rng(7), n=5000)
    true = TRUTH["x_star"]  # acc = (lo+hi)/2 = 0.455 at x*
    res = crossing(curve, 0.455)
    assert res.ok, res.reason
    assert res.x_cross == pytest.approx(true, rel=0.08)
    assert res.ci[0] < res.x_cross < res.ci[1]
    never = crossing(curve, 0.95)
    assert not never.ok and "never reaches" in never.reason and np.isnan(never.x_cross)


def test_steepness_is_a_measurement_beside_references():
    rng = np.random.default_rng(10)
    x = np.geomspace(0.01, 1.0, 10)
    n = np.full(len(x), 3000)
    fit = fit_sigmoid(Curve.from_arrays(x, rng.binomial(n, sigmoid_curve(x, 0.1, 0.3, 0.0, 1.0)), n))
    text = steepness(fit)
    assert text.startswith(f"10%->90% rise within x{fit.span_factor:.2f} [") and "x^3 within x2.08" in text
    assert "bound x1.73" in text
    lo, hi = fit.ci["span_factor"]
    assert lo < 81**0.3 < hi


def test_x_at_a_level_and_goodness_of_fit():
    rng = np.random.default_rng(12)
    n = np.full(len(GRID), 3000)
    curve = Curve.from_arrays(GRID, rng.binomial(n, sigmoid_curve(GRID, **TRUTH)), n)
    fit = fit_sigmoid(curve, n_boot=400)
    x40, (lo, hi) = fit.x_at(0.4)
    truth = TRUTH["x_star"] * np.exp(TRUTH["w"] * np.log((0.4 - 0.01) / (0.9 - 0.4)))
    assert lo <= truth <= hi and x40 == pytest.approx(truth, rel=0.05)
    assert fit.x_at((fit.lo + fit.hi) / 2)[0] == pytest.approx(fit.x_star)
    assert fit.x_at(0.95)[0] == np.inf  # above the ceiling
    assert goodness_of_fit(fit, curve) > 0.01
    bumpy = Curve.from_arrays(GRID, curve.k * np.array([1, 1.6, 0.7, 1, 1.2, 0.9, 1, 1]).clip(0, 1), n)
    assert goodness_of_fit(fit_sigmoid(bumpy, n_boot=50), bumpy) < 1e-3


def test_a_sigmoid_that_fails_its_fit_carries_its_lack_of_fit_as_dispersion():
    """Runs scattered about the curve by more than their items' noise, one run per x (no seed scatter to see):
    fit_thresholds refits with the Pearson X^2 / df as phi, so the threshold keeps its estimate, its interval
    widens, and it enters the power law (threshold_power_law) instead of being dropped."""
    from analysis.scaling import threshold_power_law

    rng = np.random.default_rng(3)
    sizes, rows = [1e6, 2e6, 4e6, 8e6], []
    for m in sizes:
        x_star = 0.3 * (m / 1e6) ** -0.5 * np.exp(0.15 * rng.standard_normal(len(GRID)))  # per-run shifts
        k = rng.binomial(750, sigmoid_curve(GRID, x_star, 0.15, 0.01, 0.9))
        rows += [{"size": f"{m:g}", "M": m, "ratio": x, "seed": 0, "n_correct": kk, "n_eval": 750, "acc": kk / 750}
                 for x, kk in zip(GRID, k, strict=True)]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        ts = fit_thresholds(pd.DataFrame(rows), "ratio", "size", group_x="M", targets=(), n_boot=200, jump_draws=0)
        law = threshold_power_law(ts, n_boot=200)
    t = ts.table
    bad = t["gof_p"] < 0.01
    assert bad.any() and t["ok"].all(), t[["size", "gof_p", "dispersion"]]
    for key in t.loc[bad, "size"]:
        fit = ts.fits[key]
        assert fit.dispersion.from_misfit and fit.dispersion.phi > 2 and "lack of fit" in fit.unit
        narrow = fit_sigmoid(ts.curves[key], n_boot=200, dispersion=replace(fit.dispersion, misfit=np.nan))
        assert narrow.x_star == pytest.approx(fit.x_star, rel=1e-3)  # estimates unchanged, intervals wider
        assert np.diff(fit.ci["x_star"])[0] > 1.3 * np.diff(narrow.ci["x_star"])[0]
    assert law.ok and law.n_points == len(sizes), law.reason


def test_goodness_of_fit_merges_tail_cells_and_monotonicity_carries_the_dispersion():
    """Clustered items (one person answering all 25 of their items where the curve expects 0.1 correct answers)
    are no misfit once the tail cells are merged; a fall within the clustering is no fall."""
    x = np.geomspace(1, 1000, 40)
    p = sigmoid_curve(x, 30.0, 0.4, 0.0, 0.95)
    n = np.full(len(x), 2500.0)
    k = np.round(n * p)
    k[2] = 25.0  # expected 0.0002
    se = np.sqrt(np.clip(k / n * (1 - k / n), 1e-4, None) * 10 / n)  # a design effect of 10
    curve = Curve.from_arrays(x, k, n, se=se)
    fit = fit_sigmoid(curve, n_boot=50)
    assert fit.ok and fit.dispersion.phi == pytest.approx(10, rel=0.05)
    assert goodness_of_fit(fit, curve) > 0.5
    dip = k.copy()
    dip[30] -= 150  # 6 points below its neighbours: 4.4 binomial SE, 1.4 at phi = 10
    assert fit_sigmoid(Curve.from_arrays(x, dip, n, se=se), n_boot=50).ok
    assert "non-monotone" in fit_sigmoid(Curve.from_arrays(x, dip, n), n_boot=50).reason


@pytest.mark.parametrize(
    ("x", "k", "n", "needle"),
    [
        (GRID, np.zeros(8), np.full(8, 100), "accuracy is 0 at every"),
        ([0.2], [50], [100], "at least 3 distinct"),
        (GRID, [90, 88, 80, 60, 40, 20, 10, 5], np.full(8, 100), "non-monotone"),
        (GRID, np.full(8, 30), np.full(8, 100), "no significant rise"),
        (GRID, [0, 0, 0, 0, 1, 1, 2, 9], np.full(8, 1000), "not located inside the sampled range"),
        (GRID, [5, 10, 20, 60, 80, 90, 95, 96], [100, 100, -1, 100, 100, 100, 100, 100], "n_eval must be > 0"),
        (np.r_[0, GRID[1:]], np.arange(8), np.full(8, 100), "must be > 0 for a fit in log"),
    ],
)
def test_degenerate_inputs_fail_with_reason(x, k, n, needle):
    fit = fit_sigmoid(Curve.from_arrays(x, k, n, x_name="ratio"), n_boot=100)
    assert not fit.ok and needle in fit.reason, fit.reason
    assert np.isnan(fit.x_star) and np.isnan(fit.w) and fit.ci == {}


def test_transition_beyond_range_found_by_unconstrained_fit_is_rejected():
    x = GRID
    p = sigmoid_curve(x, 1.5, 0.3, 0.0, 1.0)
    n = np.full(len(x), 4000)
    fit = fit_sigmoid(Curve.from_arrays(x, np.random.default_rng(1).binomial(n, p), n, x_name="ratio"))
    assert not fit.ok and "not located inside" in fit.reason


def test_unresolved_step_warns_and_brackets_threshold():
    x = GRID
    k = np.where(x < 0.2, 1, 900)
    with pytest.warns(FitWarning, match="no sampled ratio on the rise"):
        fit = fit_sigmoid(Curve.from_arrays(x, k, np.full(len(x), 1000), x_name="ratio"), n_boot=200)
    assert fit.ok and not fit.resolved
    below, above = x[x < 0.2].max(), x[x >= 0.2].min()
    assert fit.ci["x_star"][0] <= below and fit.ci["x_star"][1] >= above
    assert fit.ci["w"][0] == 0.0


def test_fit_thresholds_on_simulated_table_and_against_tokens():
    df = simulate_results()
    fin = df[df["final"] & (df["ratio"] > 0) & (df["ratio"] < 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        ts = fit_thresholds(fin, "ratio", "size", group_x="params_non_embedding", n_boot=300)
    t = ts.table.set_index("size")
    assert list(t.index) == ["1M", "2M", "3M", "5M", "8M"]
    assert not t.loc["1M", "ok"]  # its true r* = 0.85 lies beyond the largest ratio, 0.7
    assert t.loc[["2M", "3M", "5M", "8M"], "ok"].all()
    assert (np.diff(t.loc[["2M", "3M", "5M", "8M"], "x_star"]) < 0).all()
    # 8 ratios: every size gets a jump test. The rises (x1.42) are steeper than the bound (x1.73); where sampled
    # ratios fall on the rise (3M) the test sees it, elsewhere a smooth curve at the bound fits the few points as well.
    assert t["jump_tested"].all() and t.loc["3M", "jump_p"] <= 0.01 and (t["jump_p"] <= 0.05).sum() < 5
    run = df[df["run_id"] == "mix-5M-r0.3-s0"]
    along = fit_sigmoid(Curve.from_frame(run, "tokens"), n_boot=200)
    assert not along.ok or along.x_star <= run["tokens"].max()

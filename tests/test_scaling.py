"""Power laws and web-loss scaling (analysis.scaling); tokens to target: tests/test_growth.py."""

import warnings

import numpy as np
import pytest

from analysis.fitting import FitWarning
from analysis.scaling import (
    _huber_line_irls,
    fit_power_law,
    fit_web_loss,
    threshold_power_law,
)
from analysis.simulate import simulate_results
from analysis.thresholds import fit_thresholds

M = np.array([2e6, 3e6, 5e6, 8e6, 14e6, 25e6])
C_TRUE, K_TRUE = 3e6, -1.3


def _thresholds(rng, sigma=0.08, draws=1000):
    """Observed thresholds with log-normal error sigma, plus each one's bootstrap-like draws around it."""
    y_obs = C_TRUE * M**K_TRUE * np.exp(sigma * rng.standard_normal(len(M)))
    y_boot = y_obs * np.exp(sigma * rng.standard_normal((draws, len(M))))
    return y_obs, y_boot


def test_power_law_exponent_recovered_within_ci():
    y, y_boot = _thresholds(np.random.default_rng(0))
    fit = fit_power_law(M, y, y_boot=y_boot, x_name="M", y_name="r*")
    assert fit.ok and fit.method.startswith("propagated;")
    assert fit.ci["k"][0] <= K_TRUE <= fit.ci["k"][1]
    assert fit.k == pytest.approx(K_TRUE, abs=0.15)
    assert fit.ci["C"][0] <= C_TRUE <= fit.ci["C"][1]


def test_power_law_band_pivots_at_the_data():
    """Each bootstrap line keeps its own level at the points' centre: the band over the sampled x is as narrow as the
    points are certain (pairing a slope draw with a C made for another slope swung the lines about x = 1, a band
    of many decades)."""
    y, y_boot = _thresholds(np.random.default_rng(0))
    fit = fit_power_law(M, y, y_boot=y_boot)
    lo, hi = fit.band(M)
    truth = C_TRUE * M**K_TRUE
    assert np.all((lo < truth) & (truth < hi)) and np.max(np.log(hi / lo)) < 0.6


def test_power_law_ci_coverage_over_repeated_simulations():
    rng = np.random.default_rng(11)
    reps = 200
    hits = 0
    for i in range(reps):
        y, y_boot = _thresholds(rng)
        lo, hi = fit_power_law(M, y, y_boot=y_boot, seed=i).ci["k"]
        hits += lo <= K_TRUE <= hi
    assert 0.90 <= hits / reps <= 0.99, hits / reps


def test_huber_resists_an_outlier_and_irls_matches_lbfgsb():
    rng = np.random.default_rng(1)
    x = np.geomspace(1, 100, 12)
    y = 2.0 * x**-0.7 * np.exp(0.02 * rng.standard_normal(len(x)))
    y[-1] *= 8.0
    fit = fit_power_law(x, y, delta=0.05, n_boot=500)
    ols = np.polyfit(np.log(x), np.log(y), 1)[0]
    assert abs(fit.k + 0.7) < 0.03 < abs(ols + 0.7)
    assert fit.method.startswith("pairs;")  # no y uncertainty given: points are resampled
    # The bootstrap refits (IRLS) minimise the same objective as the L-BFGS-B point estimate.
    beta = _huber_line_irls(np.log(x), np.log(y)[None], np.ones((1, len(x))), np.zeros((1, 2)), 0.05)[0]
    assert beta[1] == pytest.approx(fit.k, abs=1e-5) and np.exp(beta[0]) == pytest.approx(fit.C, rel=1e-4)


def test_power_law_scatter_beyond_uncertainty_switches_to_pairs():
    rng = np.random.default_rng(2)
    y = C_TRUE * M**K_TRUE * np.exp(0.5 * rng.standard_normal(len(M)))
    y_boot = y * np.exp(0.01 * rng.standard_normal((1000, len(M))))
    with pytest.warns(FitWarning, match="reduced chi2"):
        fit = fit_power_law(M, y, y_boot=y_boot)
    assert fit.method.startswith("propagated+pairs;")


@pytest.mark.parametrize(
    ("x", "y", "needle"),
    [([1.0], [2.0], "at least 2 distinct"), ([1.0, 2.0], [1.0, -1.0], "> 0"), ([1, 2], [1, np.nan], "finite")],
)
def test_power_law_degenerate(x, y, needle):
    fit = fit_power_law(x, y)
    assert not fit.ok and needle in fit.reason and np.isnan(fit.k)


def test_web_loss_fit_recovers_parameters():
    m = np.repeat([1e6, 2e6, 4e6, 8e6, 16e6, 32e6], 2)
    clean = 1.769 + 4.952 * (m / 1e6) ** -0.283
    exact = fit_web_loss(m, clean)
    assert (exact.E, exact.A, exact.alpha) == pytest.approx((1.769, 4.952, 0.283), rel=1e-3)
    noisy = clean * (1 + 0.002 * np.random.default_rng(3).standard_normal(len(m)))
    fit = fit_web_loss(m, noisy)
    assert fit.ok and fit.method == "residuals"
    for name, v in (("E", 1.769), ("A", 4.952), ("alpha", 0.283)):
        assert fit.ci[name][0] <= v <= fit.ci[name][1], (name, fit.ci[name])
    lo, hi = fit.band(np.array([3e6]))
    assert lo[0] < 1.769 + 4.952 * 3**-0.283 < hi[0]


def test_web_loss_needs_three_sizes():
    fit = fit_web_loss([1e6, 1e6, 2e6], [3.0, 3.1, 2.9])
    assert not fit.ok and ">= 3 distinct sizes" in fit.reason


def test_threshold_power_law_on_simulated_sweep():
    df = simulate_results()
    fin = df[df["final"] & (df["ratio"] > 0) & (df["ratio"] < 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        ts = fit_thresholds(fin, "ratio", "size", group_x="params_non_embedding", n_boot=300, targets=())
        pl = threshold_power_law(ts, n_boot=500)
    assert pl.ok and pl.k < 0 and pl.ci["k"][0] < pl.k < pl.ci["k"][1] and pl.n_points == 4

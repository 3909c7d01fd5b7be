"""Calibration on simulated data whose truth is known (analysis.calibration): the jump test's false-positive rate
per smooth null family and its power against steps, and the coverage of the 95% intervals of x*, w and the power-law
exponents, at the demo's design (750 items per run, 6-10 ratios) with a design effect of 2 and with seed scatter."""

import warnings

import numpy as np
import pytest

from analysis.calibration import (
    ALTERNATIVES,
    NULLS,
    Design,
    rejection_rate,
    sigmoid_truth,
    simulate_curve,
    simulate_sizes,
)
from analysis.fitting import FitWarning
from analysis.scaling import threshold_power_law
from analysis.thresholds import fit_sigmoid, fit_thresholds
from analysis.verdicts import width_power_law

REPLICATES = 200
TEN_RATIOS = tuple(np.round(np.geomspace(0.1, 0.6, 10), 4))
EIGHT_RATIOS = tuple(np.round(np.geomspace(0.1, 0.6, 8), 4))
MAX_FALSE_POSITIVES = 0.05 + 2 * np.sqrt(0.05 * 0.95 / REPLICATES)  # nominal level + 2 Monte-Carlo SE


@pytest.mark.parametrize("name", list(NULLS))
def test_jump_test_holds_its_level_on_smooth_curves_at_or_within_the_bound(name):
    rate, _ = rejection_rate(NULLS[name], Design(), REPLICATES, draws=49)
    assert rate <= MAX_FALSE_POSITIVES, rate


def test_jump_test_holds_its_level_with_ten_ratios():
    rate, _ = rejection_rate(NULLS["power x^4 (at the bound)"], Design(x=TEN_RATIOS), REPLICATES, draws=49)
    assert rate <= MAX_FALSE_POSITIVES, rate


@pytest.mark.parametrize("name", list(ALTERNATIVES))
def test_jump_test_finds_steps(name):
    rate, _ = rejection_rate(ALTERNATIVES[name], Design(), REPLICATES // 2, draws=49)
    assert rate >= 0.95, rate


@pytest.mark.parametrize(
    ("design", "replicates"),
    [(Design(x=EIGHT_RATIOS), 2 * REPLICATES), (Design(x=EIGHT_RATIOS, seeds=3, tau=0.05), REPLICATES)],
    ids=["design effect 2", "3 seeds with scatter"],
)
def test_intervals_of_x_star_and_w_cover_the_truth(design, replicates):
    rng = np.random.default_rng(1)
    hits, fits = np.zeros(2), 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        for r in range(replicates):
            fit = fit_sigmoid(simulate_curve(sigmoid_truth(0.3, 0.15), design, rng), n_boot=400, seed=r)
            fits += fit.ok
            hits += [fit.ok and fit.ci["x_star"][0] <= 0.3 <= fit.ci["x_star"][1],
                     fit.ok and fit.ci["w"][0] <= 0.15 <= fit.ci["w"][1]]  # fmt: skip
    assert fits >= 0.98 * replicates
    assert (hits / fits >= 0.93).all(), hits / fits


def test_power_law_exponents_cover_the_truth_and_a_constant_width_does_not_sharpen():
    """r* = 0.3 (M / 1e6)^-0.5 over 5 sizes at a constant width: the exponent's CI covers -0.5 and the width's
    slope covers 0, so "sharpens" is rare (the width slope's own false-positive rate)."""
    rng = np.random.default_rng(2)
    sizes, design = (1e6, 2e6, 4e6, 8e6, 16e6), Design(x=tuple(np.round(np.geomspace(0.05, 0.8, 10), 4)))
    k_hits = w_hits = sharpens = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        for r in range(REPLICATES):
            df = simulate_sizes(sizes, lambda m: 0.3 * (m / 1e6) ** -0.5, lambda m: 0.15, design, rng)
            ts = fit_thresholds(df, "ratio", "size", group_x="params_non_embedding", n_boot=400, targets=(),
                                seed=r, jump_draws=0)  # fmt: skip
            k, w = threshold_power_law(ts, seed=r).ci["k"], width_power_law(ts, 1000, r).ci["k"]
            k_hits += k[0] <= -0.5 <= k[1]
            w_hits += w[0] <= 0.0 <= w[1]
            sharpens += w[1] < 0
    assert k_hits / REPLICATES >= 0.93 and w_hits / REPLICATES >= 0.93, (k_hits, w_hits)
    assert sharpens / REPLICATES <= MAX_FALSE_POSITIVES


def test_a_width_that_shrinks_with_size_sharpens():
    rng = np.random.default_rng(3)
    sizes, design = (1e6, 2e6, 4e6, 8e6, 16e6), Design(x=tuple(np.round(np.geomspace(0.05, 0.8, 10), 4)))
    sharpens = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        for r in range(50):
            df = simulate_sizes(
                sizes, lambda m: 0.3 * (m / 1e6) ** -0.5, lambda m: 0.2 * (m / 1e6) ** -0.3, design, rng
            )
            ts = fit_thresholds(df, "ratio", "size", group_x="params_non_embedding", n_boot=400, targets=(),
                                seed=r, jump_draws=0)  # fmt: skip
            sharpens += width_power_law(ts, 1000, r).ci["k"][1] < 0
    assert sharpens >= 45

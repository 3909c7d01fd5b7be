"""Calibration on simulated data whose truth is known (analysis.calibration): the jump test's false-positive rate
per smooth null family and its power against steps, and the coverage of the 95% intervals of x*, w and the power-law
exponents, at the demo's design (750 items per run, 6-10 ratios) with a design effect of 2 and with seed scatter.
`python -m analysis.calibration` prints the same figures over every design (BUILD_NOTES.md records them)."""

import numpy as np
import pytest

from analysis.calibration import (
    ALTERNATIVES,
    NULLS,
    WIDE_RATIOS,
    Design,
    interval_coverage,
    rejection_rate,
    scaling_coverage,
)

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
    cover = interval_coverage(design, replicates)
    assert cover["fitted"] >= 0.98 and cover["x_star"] >= 0.93 and cover["w"] >= 0.93, cover


@pytest.mark.slow  # 100 + 60 simulated sweeps of 5 sizes: ~45 s
@pytest.mark.parametrize("run_tau, replicates, coverage", [(0.0, 100, 0.93), (0.08, 60, 0.85)])
def test_power_law_exponents_cover_the_truth_and_a_constant_width_does_not_sharpen(run_tau, replicates, coverage):
    """Also where each run's x* scatters (sd 0.08 in log x) and one seed cannot show it: the sigmoids that then
    fail their goodness of fit carry it as dispersion, and the slope's interval widens with the scatter about the
    line (analysis.scaling._slope_draws). Measured: 0.97 and 0.98 here; 0.90 over 100 scattered replicates, 0.73
    when misfits were left out (BUILD_NOTES.md, "Power laws")."""
    cover = scaling_coverage(lambda m: 0.15, replicates, design=Design(x=WIDE_RATIOS, run_tau=run_tau))
    assert cover["exponent"] >= coverage and cover["sharpens"] <= MAX_FALSE_POSITIVES, cover
    if not run_tau:  # with run scatter a width law often has < 2 resolved widths (sigmoids that fit) to rest on
        assert cover["width_slope"] >= 0.93, cover


def test_a_width_that_shrinks_with_size_sharpens():
    """Power 0.86 here: the slope's t(n - 2) interval where the widths scatter beyond their own intervals costs
    power (1.0 with a normal one, which covered a scattered exponent 78% of the time; BUILD_NOTES.md)."""
    cover = scaling_coverage(lambda m: 0.2 * (m / 1e6) ** -0.3, 50, seed=3)
    assert cover["sharpens"] >= 0.8 and cover["width_slope"] >= 0.93, cover

"""psignifit 4 as an independent cross-check of the sigmoid fits (analysis.crosscheck)."""

import numpy as np
import pytest

from analysis.calibration import Design, sigmoid_truth, simulate_curve
from analysis.crosscheck import DEFAULT_TABLE, LN19, TRUTH, compare, psignifit_fit, table_curves
from analysis.io import load_results
from analysis.thresholds import sigmoid_curve

psignifit = pytest.importorskip("psignifit", reason="psignifit 4 is not installed (pip install -e '.[crosscheck]')")


def _sim(deff: float, seed: int):
    return simulate_curve(sigmoid_truth(**TRUTH), Design(deff=deff), np.random.default_rng(seed))


def test_width_conversion_is_exact():
    """psignifit's logistic on log x at threshold log x*, width 2 ln(19) w, gamma lo, lambda 1 - hi is mixlab's."""
    x = np.geomspace(0.05, 1.0, 50)
    x_star, w, lo, hi = 0.3, 0.15, 0.02, 0.9
    logistic = psignifit.sigmoids.sigmoid_by_name("logistic", PC=0.5, alpha=0.05)
    psi = logistic(np.log(x), np.log(x_star), 2 * LN19 * w, gamma=lo, lambd=1 - hi)
    np.testing.assert_allclose(psi, sigmoid_curve(x, x_star, w, lo, hi), rtol=1e-12)


def test_binomial_curve_thresholds_agree_within_intervals():
    row = compare(_sim(1.0, 0), n_boot=500)
    assert row["mix_ok"], row["mix_reason"]
    assert row["mix_x_star_lo"] <= row["ps_x_star"] <= row["mix_x_star_hi"]
    assert row["ps_x_star_lo"] <= row["mix_x_star"] <= row["ps_x_star_hi"]
    assert row["mix_w_lo"] <= row["ps_w"] <= row["mix_w_hi"]
    assert row["ps_w_lo"] <= row["mix_w"] <= row["ps_w_hi"]


def test_beta_binomial_interval_is_wider_under_overdispersion():
    curve = _sim(2.0, 1)
    beta, binomial = psignifit_fit(curve), psignifit_fit(curve, beta_binomial=False)
    assert beta["x_star_hi"] - beta["x_star_lo"] > binomial["x_star_hi"] - binomial["x_star_lo"]
    assert binomial["eta"] == 0.0 and binomial["deff"] == 1.0


def test_table_curves_are_the_sizes_with_a_ratio_curve():
    curves = table_curves(load_results(DEFAULT_TABLE))
    assert list(curves) == ["size 1M", "size 2M", "size 3M", "size 5M", "size 8M"]
    assert all(np.all((c.x > 0) & (c.x < 1)) for c in curves.values())

"""The jump test (analysis.jump): what it needs, what it reports, and its change-point fits. Its level and power on
simulated data are in tests/test_calibration.py."""

import numpy as np
import pytest

from analysis.curves import Curve
from analysis.jump import DEFAULT_BOUND, FAMILIES, fit_ramp, fit_step, jump_test, power_rise

X = np.array([0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6])


def test_references_and_bounds():
    assert power_rise(3) == pytest.approx(2.0801, abs=1e-4) and DEFAULT_BOUND == pytest.approx(power_rise(4))
    for family in FAMILIES:  # every smooth family at its steepest allowed scale rises by exactly the bound
        c = family.scale_bound(DEFAULT_BOUND)
        theta = np.array([[np.log(0.3) if family.log_x else 0.3, c if family.log_x else 1e-12, 0.0, 1.0]])
        x = np.geomspace(0.01, 3.0, 200001)
        p = family.curve(theta, x, DEFAULT_BOUND)[0]
        x10, x90 = x[np.searchsorted(p, 0.1)], x[np.searchsorted(p, 0.9)]
        assert x90 / x10 == pytest.approx(DEFAULT_BOUND, rel=2e-3), family.name


def test_step_and_ramp_fits_recover_their_curves():
    n = np.full((1, len(X)), 1e6)
    step = np.where(X >= 0.3, 0.8, 0.02)[None] * n
    ll, gap, lo, hi = fit_step(step, n)
    assert gap[0] == 2 and lo[0] == pytest.approx(0.02) and hi[0] == pytest.approx(0.8)
    ramp = np.interp(np.log(X), np.log([0.2, 0.4]), [0.05, 0.9])[None] * n
    ll_r, theta = fit_ramp(X, ramp, n)
    assert np.exp(theta[0, :2]) == pytest.approx([0.2, 0.4]) and theta[0, 2:] == pytest.approx([0.05, 0.9], abs=1e-4)
    assert ll_r[0] > fit_step(ramp, n)[0][0]


def test_it_says_when_it_cannot_run_and_what_it_tested():
    k, n = np.array([1, 2, 400, 700, 720]), np.full(5, 750)
    assert "fewer than the 6 needed" in jump_test(Curve.from_arrays(X[:5], k, n)).describe()
    with pytest.raises(ValueError, match="dispersion >= 1"):
        jump_test(Curve.from_arrays(X, np.r_[k, 730, 740], np.full(7, 750)), dispersion=0.5)
    res = jump_test(Curve.from_arrays(X, np.r_[2, 3, 5, 700, 705, 702, 698], np.full(7, 750)), n_draws=99)
    assert res.rejects and "p = 0.010" in res.describe() and res.jump_model == "step"
    assert res.jump_curve(np.array([0.1, 0.6])) == pytest.approx([10 / 2250, 2805 / 3000], abs=1e-6)

"""The capacity-allocation model (analysis.theory) against hand-computed values and a simulated sweep."""

import math
import warnings

import numpy as np
import pytest

from analysis.fitting import FitWarning
from analysis.io import final_rows
from analysis.scaling import fit_web_loss
from analysis.simulate import Truth, simulate_results
from analysis.theory import (
    PAPER_POOLS,
    compare,
    fact_value,
    measure_capacity,
    measured_tokens_per_bio,
    predict,
    predicted_exponent,
    predicted_fraction,
    predicted_ratio,
    predicted_size,
    web_slope,
)
from analysis.thresholds import fit_thresholds
from data_gen.synbio_fields import bits_per_person

# F(M) = C + A M^-alpha with A = 2, alpha = 0.5, c = 1 bit/param, scale = 1, p = 1e-3:
# -F'(100) = alpha A 100^-1.5 = 0.5 * 2 / 1000 = 1e-3 = p, so r/(1-r) = 1 and r* = 0.5 at M = 100.
HAND = dict(A=2.0, alpha=0.5, c=1.0, p=1e-3, scale=1.0)


def test_hand_computed_threshold():
    assert web_slope(100.0, A=2.0, alpha=0.5, c=1.0, scale=1.0) == pytest.approx(1e-3)
    assert predicted_ratio(100.0, **HAND) == pytest.approx(0.5)
    assert predicted_size(0.5, **HAND) == pytest.approx(100.0)
    # M = 400: -F' = 0.5 * 2 * 400^-1.5 = 1.25e-4, r/(1-r) = 0.125, r* = 1/9
    assert predicted_ratio(400.0, **HAND) == pytest.approx(1 / 9)
    # c = 2 bits/param: -F'(M_bits) = alpha A c^alpha M_bits^-(alpha+1) at M_bits = 200 -> 1e-3 * 2^0.5 / 2^1.5
    assert predicted_ratio(100.0, **{**HAND, "c": 2.0}) == pytest.approx(0.5 / (1 + 0.5))


@pytest.mark.parametrize("alpha", [0.283, 0.5, 1.0])
def test_exponent_of_threshold_in_size_is_alpha_plus_one(alpha):
    m = np.geomspace(1e6, 1e9, 7)
    r = predicted_ratio(m, A=4.952, alpha=alpha, c=2.0, p=1e-9)
    slope = np.polyfit(np.log(m), np.log(r / (1 - r)), 1)[0]
    assert slope == pytest.approx(-(alpha + 1), abs=1e-9)
    assert predicted_exponent(alpha) == pytest.approx(-(alpha + 1))
    small = predicted_ratio(np.array([1e12, 1e13]), A=4.952, alpha=alpha, c=2.0, p=1e-9)
    assert np.diff(np.log(small))[0] / np.log(10) == pytest.approx(-(alpha + 1), abs=1e-3)


def test_size_threshold_inverts_ratio_threshold_and_stored_bits_shift():
    m = np.array([3e6, 7e6, 2e7])
    kw = dict(A=4.952, alpha=0.283, c=2.0, p=3e-8, scale=1e6)
    r = predicted_ratio(m, **kw, stored_bits=1e6)
    assert predicted_size(r, **kw, stored_bits=1e6) == pytest.approx(m)
    assert predicted_ratio(m, **kw, stored_bits=1e6) == pytest.approx(predicted_ratio(m - 1e6 / 2.0, **kw))
    assert np.isnan(predicted_ratio(1e5, **kw, stored_bits=1e6))  # capacity 2e5 bits < 1e6 stored bits


def test_knapsack_bounds_and_fraction():
    kw = dict(A=4.952, alpha=0.283, c=2.0, p=3e-8, scale=1e6)
    m, total = 5e6, 4e6
    onset = predicted_ratio(m, **kw)
    full = predicted_ratio(m, **kw, stored_bits=total)
    half = predicted_ratio(m, **kw, stored_bits=total / 2)
    assert onset < half < full
    frac = predicted_fraction(np.array([onset * 0.99, half, full * 1.01]), m, **kw, total_bits=total)
    assert frac == pytest.approx([0.0, 0.5, 1.0], abs=1e-6)


def test_fact_value_and_bits_per_person():
    assert fact_value(1000, 100) == pytest.approx(math.log(2) / 1e5)
    expected = math.log2(12 * 28 * 200) + math.log2(200) + math.log2(300) + math.log2(100) + math.log2(263)
    assert bits_per_person(PAPER_POOLS) == pytest.approx(expected)
    assert bits_per_person(PAPER_POOLS) == pytest.approx(46.59, abs=0.01)
    with pytest.raises(ValueError, match="num_people"):
        fact_value(0, 100)


def test_capacity_from_knowledge_only_runs():
    truth = Truth()
    fin = final_rows(simulate_results(truth))
    cap = measure_capacity(fin, "params_non_embedding", total_bits=truth.total_bits)
    assert cap.ok and not cap.lower_bound and cap.n_runs == 4
    assert cap.ci[0] <= truth.c <= cap.ci[1] and cap.c == pytest.approx(truth.c, rel=0.03)
    saturated = fin[fin["params_non_embedding"] >= 2e6]
    lb = measure_capacity(saturated, "params_non_embedding", total_bits=truth.total_bits)
    assert lb.ok and lb.lower_bound and lb.ci[1] == np.inf
    assert not measure_capacity(fin[fin["ratio"] < 1], "params_non_embedding").ok
    assert measured_tokens_per_bio(fin) == pytest.approx(truth.tokens_per_bio)


@pytest.mark.parametrize(("miss", "agrees"), [(1.0, True), (0.5, False)])
def test_observed_vs_predicted_recovers_the_miss(miss, agrees):
    """A world whose thresholds are the theory's times `miss`: the comparison's ratio finds miss, with its CI."""
    truth = Truth(miss=miss)
    fin = final_rows(simulate_results(truth, seed=1))
    mix = fin[(fin["ratio"] > 0) & (fin["ratio"] < 1)]
    web = fin[fin["ratio"] == 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        ts = fit_thresholds(mix, "ratio", "size", group_x="params_non_embedding", n_boot=500, targets=())
        wf = fit_web_loss(web["params_non_embedding"], web["web_loss"], n_boot=500)
    cap = measure_capacity(fin, "params_non_embedding", total_bits=truth.total_bits, n_boot=500)
    p = fact_value(truth.num_people, measured_tokens_per_bio(mix))
    pred = predict("ratio", ts.table["M"].to_numpy(), wf, cap, p, truth.total_bits, n_boot=500)
    cmp = compare(ts, pred).dropna(subset=["obs_pred"])
    assert len(cmp) >= 3
    assert np.median(cmp["obs_pred"]) == pytest.approx(miss, rel=0.15)
    covers = (cmp["obs_pred_lo"] <= 1) & (cmp["obs_pred_hi"] >= 1)
    # Each 95% CI misses the truth 5% of the time, so all of 4 cover only ~81% of the time; and 2 seeds give wide
    # t intervals: allow one exception either way.
    assert covers.sum() >= len(cmp) - 1 if agrees else covers.sum() <= 1
    assert pred.exponent == pytest.approx(-(wf.alpha + 1))
    sizes = predict("size", np.array([0.2, 0.4]), wf, cap, p, truth.total_bits, n_boot=200)
    expected = predicted_size([0.2, 0.4], A=wf.A, alpha=wf.alpha, c=cap.c, p=p, stored_bits=truth.total_bits / 2)
    assert sizes.predicted == pytest.approx(expected) and np.all(sizes.lo <= sizes.predicted)
    assert sizes.exponent == pytest.approx(-1 / (wf.alpha + 1))
    assert pred.exponent_ci[0] <= -(truth.alpha + 1) <= pred.exponent_ci[1]

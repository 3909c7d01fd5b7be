"""The threshold predictor (analysis.predict) on simulated tables with a known r*(M): a held-out size is recovered
by both routes, a missing route is refused, extrapolation is flagged."""

import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.fitting import FitWarning
from analysis.predict import format_prediction, main, predict_thresholds, resolve_size
from analysis.simulate import Truth, simulate_results
from analysis.theory import predicted_fraction, predicted_size
from analysis.thresholds import sigmoid_curve

TRUTH = Truth(eval_fractions=(1.0,), mix_sizes=(2e6, 3e6, 4e6, 5e6, 8e6), exposure_ratios=())
HELD_OUT = 4e6
RATIO = 0.2
N_BOOT = 200


def _simulate(truth: Truth, seed: int = 0) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        return simulate_results(truth, seed=seed)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """Every run of the simulated sweep except those at the held-out size."""
    df = _simulate(TRUTH)
    return df[df["params_non_embedding"] != HELD_OUT].reset_index(drop=True)


def _predict(df, size, people=TRUTH.num_people, ratio=RATIO, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        return predict_thresholds(df, size, people, ratio, n_boot=N_BOOT, **kw)


def _inside(interval, value) -> bool:
    return interval.lo <= value <= interval.hi


def test_both_routes_recover_the_held_out_size(table):
    pred = _predict(table, "4M")
    assert pred.size == HELD_OUT and not pred.refusals and not pred.flags
    t = TRUTH
    true_m = predicted_size(RATIO, A=t.A, alpha=t.alpha, c=t.c, p=t.p, stored_bits=t.fraction * t.total_bits)
    for route in pred.routes:
        assert route.ok, route.reason
        assert _inside(route.r_star, t.r_star(HELD_OUT)), (route.route, route.r_star, t.r_star(HELD_OUT))
        assert _inside(route.m_star, true_m), (route.route, route.m_star, true_m)
        assert 0 <= route.accuracy.lo <= route.accuracy.value <= route.accuracy.hi <= 1
    assert _inside(pred.empirical.accuracy, sigmoid_curve(RATIO, t.r_star(HELD_OUT), t.w, t.lo, t.hi))
    stored = predicted_fraction(RATIO, HELD_OUT, A=t.A, alpha=t.alpha, c=t.c, p=t.p, total_bits=t.total_bits)
    assert _inside(pred.theory.accuracy, stored)
    text = format_prediction(pred)
    assert "empirical (" in text and "theory (" in text and "M* at r = 0.2" in text


def test_size_is_a_table_label_or_a_count(table):
    assert resolve_size(table, "3M") == (3e6, "3M")
    assert resolve_size(table, "70M") == (7e7, "70M")
    assert resolve_size(table, "1.2e6") == (1.2e6, "1.2M")


def test_extrapolation_is_flagged_with_its_factor(table):
    pred = _predict(table, "40M", ratio=None)
    assert pred.empirical.ok and pred.theory.ok and pred.empirical.m_star is None
    flags = pred.flags
    assert len(flags) == 2 and all("size = 4e+07 is x5 beyond" in f and "limit x2" in f for f in flags)
    assert not _predict(table, "40M", ratio=None, max_extrapolation=6).flags
    many = _predict(table, "4M", people=10 * TRUTH.num_people, ratio=None).flags
    assert any("N = 3e+05 is x10 beyond" in f for f in many)


def test_theory_route_is_refused_without_web_only_runs(table, tmp_path, capsys):
    no_web = table[table["ratio"] > 0]
    pred = _predict(no_web, "4M", ratio=None)
    assert pred.empirical.ok and not pred.theory.ok and "r = 0" in pred.theory.reason
    path = tmp_path / "no_web.csv"
    no_web.to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        status = main([f"--results={path}", "--size=4M", f"--people={TRUTH.num_people}", f"--n_boot={N_BOOT}"])
    out, err = capsys.readouterr()
    assert status == 2
    assert "empirical (" in out and "r* = " in out and "theory (" not in out
    assert err.strip().splitlines() == [f"theory route refused: {pred.theory.reason}"]


def test_empirical_route_is_refused_with_fewer_than_three_fitted_sizes(table):
    two = table[(table["ratio"].isin([0.0, 1.0])) | table["params_non_embedding"].isin([3e6, 5e6])]
    pred = _predict(two, "4M")
    assert not pred.empirical.ok and pred.theory.ok
    assert pred.refusals == [f"empirical route refused: {pred.empirical.reason}"]
    assert "fewer than 3 model sizes with a fitted threshold" in pred.empirical.reason


def test_empirical_route_interpolates_in_people():
    parts = []
    for n in (20_000, 40_000):
        df = _simulate(Truth(**{**TRUTH.__dict__, "num_people": n}), seed=n)
        parts.append(df.assign(run_id=df["run_id"] + f"-N{n}"))
    pred = _predict(pd.concat(parts, ignore_index=True), "4M", people=TRUTH.num_people, ratio=None)
    assert pred.empirical.ok and not pred.flags
    assert _inside(pred.empirical.r_star, TRUTH.r_star(HELD_OUT)), pred.empirical.r_star
    n_range = next(e for e in pred.empirical.extrapolation if e.what == "N")
    assert (n_range.lo, n_range.hi) == (20_000, 40_000)
    assert np.isfinite(pred.theory.r_star.value)

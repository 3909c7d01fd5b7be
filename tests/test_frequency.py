"""Threshold frequency of the power-law groups, its power law in M and the theory's -(alpha+1)
(analysis.frequency), on simulated tables whose truth is known (analysis.calibration)."""

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from analysis.calibration import FREQ_SIZES, frequency_calibration, power_law_groups_table
from analysis.fitting import FitWarning
from analysis.frequency import FIXED_LEVEL, fit_frequency, group_points, power_law_rows, slope_vs_theory
from analysis.io import ResultsFormatError
from analysis.thresholds import KNOWLEDGE_LEVEL
from analysis.verdicts import Analysis, _verdict_frequency

SLOPE = -1.3


def _wide(groups=2, **extra) -> pd.DataFrame:
    row = {"run_id": "pl", "size": "1M", "params_non_embedding": 1e6, "ratio": 0.1, "seed": 0, "step": 3,
           "final": True, "tokens": 1e9, "n_correct": 60, "n_eval": 100}  # fmt: skip
    for k in range(groups):
        row.update({f"n_correct_group_{k}": 40 - 30 * k, f"n_eval_group_{k}": 50, f"n_people_group_{k}": 2,
                    f"exposures_group_{k}": 100.0 / (k + 1), f"acc_group_{k}": (40 - 30 * k) / 50})  # fmt: skip
    uniform = {"run_id": "u", "size": "1M", "params_non_embedding": 1e6, "ratio": 0.1, "seed": 0, "step": 3,
               "final": True, "tokens": 1e9, "n_correct": 10, "n_eval": 100}  # fmt: skip
    return pd.DataFrame([{**row, **extra}, uniform])


def _fit(slope=SLOPE, seed=0, sizes=FREQ_SIZES, **kw):
    table = power_law_groups_table(sizes, lambda m: 300.0 * (m / 1e6) ** slope, np.random.default_rng(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        return fit_frequency(table, n_boot=300, seed=seed, **kw)


@pytest.fixture(scope="module")
def four_sizes():
    """f* = 300 (M / 1e6)^-1.3 at 4 sizes, 2 seeds each, 100 groups; no alpha."""
    return _fit()


def _with_alpha(fs, alpha: float):
    return replace(fs, theory=slope_vs_theory(fs.power, alpha=alpha))


def test_group_points_are_long_form_per_row_and_group():
    df = _wide()
    assert power_law_rows(df).tolist() == [True, False]
    pts = group_points(df)
    assert len(pts) == 2 and pts["group"].tolist() == [0, 1] and (pts["run_id"] == "pl").all()
    assert pts["frequency"].tolist() == [100.0, 50.0] and pts["n_correct"].tolist() == [40.0, 10.0]
    # without acc_se_group_<k> the SE is the person bound: items of a person perfectly correlated
    assert pts["acc_se"].iloc[0] == pytest.approx(np.sqrt(0.8 * 0.2 / 2)) and (pts["se_kind"] == "person bound").all()
    per_token = group_points(df, unit="per_token")
    assert per_token["frequency"].tolist() == pytest.approx([1e-7, 5e-8])
    given = group_points(_wide(acc_se_group_0=0.05))
    assert given["acc_se"].iloc[0] == 0.05 and given["se_kind"].tolist() == ["clustered", "person bound"]
    with pytest.raises(ValueError, match="unit"):
        group_points(df, unit="per_step")


def test_inconsistent_group_columns_are_refused():
    with pytest.raises(ResultsFormatError, match="filled for groups 0..G-1 with G = data.power_law_groups"):
        group_points(_wide(**{"data.power_law_groups": 3}))
    with pytest.raises(ResultsFormatError, match="exposures_group_1"):
        group_points(_wide().drop(columns=["exposures_group_1"]))


def test_threshold_frequency_slope_is_recovered_and_compared_with_the_theory(four_sizes):
    fs = _with_alpha(four_sizes, 0.3)
    assert fs.ok and fs.power.n_points == 4 and fs.level_kind.startswith(f"the fixed accuracy {FIXED_LEVEL:g}")
    lo, hi = fs.power.ci["k"]
    assert lo < SLOPE < hi and hi < 0
    t = fs.table
    assert set(t.columns) >= {"size", "M", "f_star", "f_star_lo", "f_star_hi", "level", "groups", "seeds", "unit"}
    truth = 300.0 * (t["M"] / 1e6) ** SLOPE
    assert ((t["f_star_lo"] < truth) & (truth < t["f_star_hi"])).all() and (t["groups"] == 100).all()
    assert (t["seeds"] == 2).all() and t["unit"].str.contains("seeds' own fits").all()
    th = fs.theory
    assert th.ok and th.predicted == pytest.approx(-1.3) and th.diff_ci[0] < 0 < th.diff_ci[1]
    assert slope_vs_theory(fs.power, alpha=1.5).diff_ci[0] > 0  # f* falls less steeply than M^-2.5


def test_a_size_independent_threshold_does_not_fall():
    fs = _fit(slope=0.0, seed=1)
    lo, hi = fs.power.ci["k"]
    assert fs.ok and lo < 0 < hi


def test_knowledge_only_levels_are_used_only_when_every_size_has_one():
    sizes = {f"{m:g}": 0.45 for m in FREQ_SIZES}
    assert _fit(levels=sizes).level_kind == KNOWLEDGE_LEVEL
    partial = _fit(levels={"1e+06": 0.45})
    assert partial.level_kind.startswith("the fixed accuracy") and (partial.table["level"] == FIXED_LEVEL).all()


def test_frequency_refuses_what_the_table_cannot_carry():
    assert not fit_frequency(_wide().iloc[1:]).ok  # no power-law rows
    assert "no power-law runs" in fit_frequency(_wide().iloc[1:]).reason
    bare = _wide(**{"data.power_law_groups": 2}).filter(regex=r"^(?!.*_group_\d)")  # G declared, no group columns
    assert power_law_rows(bare).tolist() == [True, False] and "without per-group columns" in fit_frequency(bare).reason
    one = _fit(sizes=(2e6,))
    assert not one.ok and ">= 2 values of size" in one.reason and one.thresholds is not None
    table = power_law_groups_table(FREQ_SIZES[:2], lambda m: 100.0, np.random.default_rng(0))
    table.loc[table["size"] == "2e+06", "ratio"] = 0.2
    two = fit_frequency(table, n_boot=100)
    assert not two.ok and "pass ratio=" in two.reason
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        picked = fit_frequency(table, ratio=0.2, n_boot=100)
    assert picked.ratio == 0.2 and set(picked.table["size"]) == {"2e+06"}


def _verdict(fs) -> tuple[str, str]:
    v = _verdict_frequency(Analysis(df=pd.DataFrame(), param_col="params_non_embedding", level=0.95, frequency=fs))
    return v.status, v.text


def test_frequency_verdict_needs_four_sizes_and_the_theory(four_sizes):
    status, text = _verdict(_with_alpha(four_sizes, 0.3))
    assert status == "supported" and "-(alpha+1) = -1.30" in text and "alpha = 0.3 given" in text
    status, text = _verdict(_with_alpha(four_sizes, 1.5))
    assert status == "not supported" and "less steeply" in text
    status, text = _verdict(four_sizes)  # no web-loss fit and no alpha
    assert status == "inconclusive" and "no alpha" in text
    status, text = _verdict(_fit(sizes=FREQ_SIZES[:3], alpha=0.3))
    assert status == "inconclusive" and "direction only" in text and "it falls" in text
    assert _verdict(_fit(sizes=FREQ_SIZES[:2], alpha=0.3))[0] == "not testable"
    assert _verdict(None)[0] == "not testable"


@pytest.mark.slow
def test_frequency_calibration_covers_the_slope_and_holds_the_null():
    """24 replicates of 4 sizes x 2 seeds x 100 groups (BUILD_NOTES records 100): the exponent's CI covers the
    truth, the difference from -(alpha+1) covers it, and a size-independent f* is rarely called falling."""
    truth = frequency_calibration(SLOPE, 24)
    assert truth["exponent"] >= 0.85 and truth["diff"] >= 0.85 and truth["falls"] >= 0.9, truth
    null = frequency_calibration(0.0, 24, seed=6)
    assert null["exponent"] >= 0.85 and null["falls"] <= 0.1, null

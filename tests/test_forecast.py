"""The prediction made before the mixtures (analysis.forecast) on simulated tables whose truth is known: from the
calibration rows alone it recovers the true r*, it is written once and read back unchanged, the analysis after the
mixtures reproduces it exactly, and a theory that misses shows as observed / predicted away from 1."""

import dataclasses
import warnings

import numpy as np
import pytest

from analysis.fitting import FitWarning
from analysis.forecast import FORECAST_FILE, Forecast, format_forecast, make_forecast, misses
from analysis.simulate import Truth, simulate_results
from analysis.verdicts import analyze

N_BOOT = 200
TRUTH = Truth(eval_fractions=(1.0,), exposure_ratios=())


def _tables(truth: Truth):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        df = simulate_results(truth, seed=1)
        calibration = df[df["ratio"].isin([0.0, 1.0])]
        forecast = make_forecast(calibration, ratios=[0.1, 0.2, 0.3], n_boot=N_BOOT)
        return forecast, analyze(df, n_boot=N_BOOT)


def test_the_prediction_recovers_the_truth_and_is_the_reports(tmp_path):
    forecast, analysis = _tables(TRUTH)
    mixed = [row for row in forecast.r_star if row["M"] in TRUTH.mix_sizes]
    assert len(mixed) == len(TRUTH.mix_sizes)
    for row in mixed:
        assert row["lo"] <= TRUTH.r_star(row["M"]) <= row["hi"], row
    assert forecast.exponent["asymptotic_ci"][0] <= -(TRUTH.alpha + 1) <= forecast.exponent["asymptotic_ci"][1]
    table = misses(forecast, analysis)
    assert table["same_as_report"].all(), table
    observed = table.dropna(subset=["obs_pred"])
    assert len(observed) >= len(TRUTH.mix_sizes) - 1  # the smallest size's r* may lie outside the ratios
    assert ((observed["obs_pred_lo"] <= 1) & (observed["obs_pred_hi"] >= 1)).all(), observed
    text = "\n".join(format_forecast(forecast))
    assert "alpha = " in text and "r*(" in text and "M*(r = 0.2)" in text

    path = tmp_path / FORECAST_FILE
    forecast.write(path)
    again = Forecast.read(path)
    assert again.r_star == forecast.r_star and again.m_star == forecast.m_star and again.made_at == forecast.made_at
    with pytest.raises(FileExistsError, match="made once"):
        dataclasses.replace(forecast, made_at="later").write(path)
    assert Forecast.read(path).made_at == forecast.made_at


def test_a_theory_that_misses_by_half_shows_observed_above_predicted():
    truth = dataclasses.replace(TRUTH, miss=1.5)  # the mixtures' r* is 1.5x the theory's
    forecast, analysis = _tables(truth)
    observed = misses(forecast, analysis).dropna(subset=["obs_pred"])
    assert len(observed) >= 3 and np.median(observed["obs_pred"]) == pytest.approx(1.5, rel=0.15), observed
    assert (observed["obs_pred_lo"] > 1).mean() >= 0.5, observed  # this grid resolves the miss at half the sizes


def test_calibration_without_web_only_runs_is_refused_with_the_reason():
    df = simulate_results(TRUTH, seed=1)
    with pytest.raises(ValueError, match="web-only"):
        make_forecast(df[df["ratio"] == 1.0], ratios=[0.2], n_boot=N_BOOT)

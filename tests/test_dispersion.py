"""Overdispersion (analysis.dispersion): item clustering from acc_se, seed scatter from replicated runs or from an
external table's sd over seeds; and an external table of means ± sd over 3 seeds gets finite, wider intervals."""

import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.calibration import Design, sigmoid_truth, simulate_curve
from analysis.curves import Curve
from analysis.dispersion import Dispersion, estimate
from analysis.fitting import FitWarning
from analysis.io import ingest_external
from analysis.thresholds import crossing, fit_sigmoid

RATIOS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7)


def test_item_clustering_is_measured_from_the_clustered_se():
    rng = np.random.default_rng(0)
    phis = [estimate(simulate_curve(sigmoid_truth(0.3, 0.3), Design(x=RATIOS, deff=2.0), rng)).items for _ in range(50)]
    assert np.mean(phis) == pytest.approx(2.0, rel=0.1)
    flat = estimate(simulate_curve(sigmoid_truth(0.3, 0.3), Design(x=RATIOS, deff=1.0), rng))
    assert flat.phi < 1.4 and not flat.from_seeds


def test_seed_scatter_from_replicated_runs_and_binomial_special_case():
    rng = np.random.default_rng(1)
    n = np.full(3 * len(RATIOS), 2000.0)
    x = np.repeat(RATIOS, 3)
    same = Curve.from_arrays(x, rng.binomial(2000, sigmoid_curve_at(x)), n, seed=np.tile([0, 1, 2], len(RATIOS)))
    d = estimate(same)
    assert d.seed_df > 0 and 0.5 < d.seeds < 2.0 and d.phi < 2.0  # binomial scatter only
    shifted = sigmoid_curve_at(x * np.tile([0.8, 1.0, 1.25], len(RATIOS)))
    d = estimate(Curve.from_arrays(x, rng.binomial(2000, shifted), n, seed=np.tile([0, 1, 2], len(RATIOS))))
    assert d.from_seeds and d.phi > 5
    assert Dispersion().phi == 1.0 and "dispersion 1.00" in Dispersion().describe()


def sigmoid_curve_at(x):
    return sigmoid_truth(0.2, 0.15)(np.asarray(x, float))


def _external(sd: float, rng) -> pd.DataFrame:
    rows = []
    for size, r_star in (("70M", 0.3), ("160M", 0.2), ("410M", 0.12)):
        for r in RATIOS:
            runs = sigmoid_truth(r_star, 0.15)(np.array([r * np.exp(sd * z) for z in rng.standard_normal(3)]))
            acc = rng.binomial(750, runs) / 750
            rows.append({"params_total": size, "ratio": r, "acc": acc.mean(), "acc_sd": acc.std(ddof=1), "n_seeds": 3})
    return pd.DataFrame(rows)


def test_an_external_table_of_means_and_sds_over_three_seeds():
    rng = np.random.default_rng(2)
    df = ingest_external(_external(0.1, rng), n_eval=750)
    assert "means over n_seeds seeds" in " ".join(df.attrs["ingest_notes"]) and (df["n_eval"] == 2250).all()
    g = df[df["size"] == "160M"]
    curve = Curve.from_frame(g, "ratio")
    d = estimate(curve)
    assert d.from_seeds and d.seed_df % 2 == 0 and d.seed_df >= 8 and d.phi > 2  # 2 df per estimable row
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        fit, binomial = fit_sigmoid(curve, n_boot=400), fit_sigmoid(curve, n_boot=400, dispersion=Dispersion())
        cross = crossing(curve, 0.4, n_boot=400)
    lo, hi = fit.ci["x_star"]
    assert fit.ok and np.isfinite([lo, hi]).all() and lo < 0.2 < hi
    assert np.log(hi / lo) > 1.3 * np.log(binomial.ci["x_star"][1] / binomial.ci["x_star"][0])
    assert cross.ok and np.isfinite(cross.ci).all() and "phi from the seed scatter" in fit.unit

"""The report: runs on the fixture, writes figures and tables, and its verdicts follow the data."""

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.fitting import FitWarning
from analysis.io import ingest_external, load_results
from analysis.report import main
from analysis.verdicts import STATUSES, analyze, main_budget, verdicts

FIXTURE = Path(__file__).parent / "fixtures" / "results_small.csv"
CLAIMS = {
    "transition": "There is a phase transition (a jump) in the mixing ratio r",
    "sharpens": "The transition in r sharpens with scale",
    "sharper": "At fixed r, accuracy rises more sharply in M",
    "falls": "r* falls with model size M",
    "exposures": "At equal exposures",
    "control": "Knowledge-only training",
    "theory": "The capacity-allocation theory",
    "frequency": "The threshold frequency",
}


def _status(vs, key):
    return next(v for v in vs if v.claim.startswith(CLAIMS[key]))


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        main([f"--results={FIXTURE}", f"--out={out}"])
    return out


def test_report_on_fixture_writes_figures_tables_and_verdicts(report_dir):
    text = (report_dir / "report.md").read_text()
    for png in (
        "phase_diagram",
        "accuracy_vs_ratio",
        "threshold_scaling",
        "accuracy_vs_exposures",
        "per_attribute",
        "web_loss",
        "knowledge_control",
        "width_vs_size",
    ):
        assert (report_dir / f"{png}.png").stat().st_size > 1000
        assert f"]({png}.png)" in text
    thresholds = pd.read_csv(report_dir / "thresholds_ratio.csv")
    assert thresholds["ok"].sum() == 4 and {"x_star_lo", "x_star_hi", "cross40", "cross80_hi"} <= set(thresholds)
    assert {"x_level", "level", "jump_p", "gof_p", "dispersion", "unit"} <= set(thresholds)
    verdict_lines = [ln for ln in text.splitlines() if ln.startswith("- **")]
    assert len(verdict_lines) == 11
    assert all(re.search(r"— \*(" + "|".join(STATUSES) + r")\*", ln) for ln in verdict_lines)
    line = next(ln for ln in verdict_lines if CLAIMS["transition"] in ln)
    # the fixture's rises (x1.42) are steeper than the bound (x1.73): the jump test finds it where ratios sample them
    assert "*supported*" in line and re.search(r"a jump at size [\w, ]*3M", line)
    assert re.search(r"ratio\* = 0\.2\d+ \[0\.\d+, 0\.\d+\]", line) and "*Rests on:* size 1M: 8 ratio values" in line
    assert "*supported*" in next(ln for ln in verdict_lines if CLAIMS["falls"] in ln)
    # the fixture's w is constant, and its grid puts >= 2 ratios on the rise of one size only: no width law
    assert "*not testable*" in next(ln for ln in verdict_lines if CLAIMS["sharpens"] in ln)
    assert "*supported*" in next(ln for ln in verdict_lines if CLAIMS["sharper"] in ln)
    assert "*supported*" in next(ln for ln in verdict_lines if CLAIMS["control"] in ln)
    assert "*supported*" in next(ln for ln in verdict_lines if CLAIMS["theory"] in ln)
    assert "not testable: no per-group rows" in next(ln for ln in verdict_lines if CLAIMS["frequency"] in ln)
    assert "exponent observed" in text and "predicted over the same sizes" in text


def test_flipping_the_data_flips_the_verdicts():
    df = load_results(FIXTURE)
    # 1. Reverse which size is which among the mixture sizes: r* now rises with M.
    sizes = {"1M": "8M", "2M": "5M", "3M": "3M", "5M": "2M", "8M": "1M"}
    params = df.groupby("size")["params_non_embedding"].first()
    mix = df["sweep"] == "mix"
    df.loc[mix, "params_non_embedding"] = df.loc[mix, "size"].map(sizes).map(params)
    df.loc[mix, "size"] = df.loc[mix, "size"].map(sizes)
    # 2. Give the high-ratio equal-exposure run the low-ratio run's results.
    exp = df[(df["sweep"] == "exposure") & df["final"]]
    low, high = exp.index[exp["ratio"].argmin()], exp.index[exp["ratio"].argmax()]
    cols = ["acc", "n_correct", "n_eval"]
    df.loc[high, cols] = df.loc[low, cols].to_numpy()
    # 3. Drop the web-only runs: the theory has no web-loss curve to work from.
    df = df[df["ratio"] > 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        vs = verdicts(analyze(df, n_boot=200, targets=()))
    assert _status(vs, "falls").status == "contradicted"
    assert _status(vs, "exposures").status == "contradicted"
    assert _status(vs, "theory").status == "not testable" and "ratio = 0" in _status(vs, "theory").text


def test_flat_accuracy_is_not_a_transition():
    df = load_results(FIXTURE)
    mix = (df["ratio"] > 0) & (df["ratio"] < 1)
    df.loc[mix, "n_correct"] = (0.3 * df.loc[mix, "n_eval"]).round()
    df.loc[mix, "acc"] = df.loc[mix, "n_correct"] / df.loc[mix, "n_eval"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        vs = verdicts(analyze(df[mix | (df["ratio"] == 0)], n_boot=200, targets=()))
    v = _status(vs, "transition")
    assert v.status == "not supported" and "no significant rise" in v.text
    assert _status(vs, "falls").status == "not testable"
    assert _status(vs, "control").status == "not testable"


def test_report_on_an_external_table(tmp_path):
    path = tmp_path / "paper.csv"
    rows = ["params_total,ratio,acc"]
    for size, r_star in (("70M", 0.3), ("160M", 0.2), ("410M", 0.12)):
        for r in (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5):
            rows.append(f"{size},{r},{0.005 if r < r_star else 0.8}")
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        main([f"--results={path}", f"--out={out}", "--external", "--n_eval=2500", "--n_boot=200"])
    text = (out / "report.md").read_text()
    assert "Ingested as an external table" in text and "n_eval = 2500" in text
    assert "There is a phase transition (a jump) in the mixing ratio r** — *supported*" in text  # 3 clean steps
    assert "r* falls with model size M** — *inconclusive*. inconclusive (direction only, 3 points): it falls" in text
    assert "capacity-allocation theory predicts r*(M) from web-only and knowledge-only runs** — *not testable*" in text
    assert ingest_external(path, n_eval=2500)["size"].tolist()[0] == "70M"


def test_threshold_frequency_from_per_group_rows():
    """Power-law SynBio variant: per-group rows with a `frequency` column give f*(M) and its power law."""
    df = load_results(FIXTURE)
    template = df[df["final"] & (df["sweep"] == "mix")].iloc[0]
    rng = np.random.default_rng(0)
    rows = []
    for size, m in (("2M", 2e6), ("3M", 3e6), ("5M", 5e6), ("8M", 8e6)):
        f_star = 1e-4 * (m / 2e6) ** -1.3
        for g, f in enumerate(np.geomspace(1e-5, 1e-3, 8)):
            n = 500
            k = rng.binomial(n, 0.9 / (1 + (f_star / f) ** 8))
            rows.append(
                {
                    **template,
                    "size": size,
                    "params_non_embedding": m,
                    "run_id": f"pl-{size}",
                    "step": g,
                    "frequency": f,
                    "n_eval": n,
                    "n_correct": k,
                    "acc": k / n,
                }
            )
    both = pd.concat([df.assign(frequency=np.nan), pd.DataFrame(rows)], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        a = analyze(both, n_boot=200, targets=())
    v = _status(verdicts(a), "frequency")
    assert v.status == "supported" and a.f_power.ci["k"][0] < -1.3 < a.f_power.ci["k"][1], v.text
    without = verdicts(analyze(df, n_boot=200, targets=()))
    assert _status(verdicts(a), "transition").text == _status(without, "transition").text  # per-group rows stay out


def test_a_longer_equal_exposure_run_does_not_pool_with_the_grid():
    final = pd.DataFrame(
        {
            "size": ["a"] * 4,
            "ratio": [0.2, 0.2, 0.4, 0.8],
            "train.tokens": [600, 2400, 600, 600],
            "acc": [0.0, 0.3, 0.1, 0.9],
        }
    )
    kept = main_budget(final)
    assert kept["train.tokens"].tolist() == [600, 600, 600]
    assert kept["acc"].tolist() == [0.0, 0.1, 0.9]
    same_length = final[final["train.tokens"] == 600]
    assert main_budget(same_length).equals(same_length)

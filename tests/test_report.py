"""The report: runs on the fixture, writes figures and tables, and its verdicts follow the data."""

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.calibration import FREQ_SIZES, GROWTH_TRUTH, growth_runs, power_law_groups_table
from analysis.fitting import FitWarning
from analysis.frequency import fit_frequency
from analysis.growth import growth_by_size, tokens_to_target
from analysis.io import ingest_external, load_results
from analysis.report import frequency_section, growth_section, main, write_report
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
        "tokens_to_target",
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
    assert "not testable: no power-law runs" in next(ln for ln in verdict_lines if CLAIMS["frequency"] in ln)
    tokens = pd.read_csv(report_dir / "tokens_to_target.csv")
    assert {"tokens_to_target", "tokens_lo", "tokens_hi", "censoring"} <= set(tokens) and "## Tokens to reach" in text
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


def _with_power_law_runs(df: pd.DataFrame, slope: float) -> pd.DataFrame:
    """The table plus final rows of power-law runs (analysis.calibration.power_law_groups_table) at the fixture's
    sizes 2M-8M, their other columns copied from a mixture run."""
    params = df.groupby("size")["params_non_embedding"].first()
    sizes = ("2M", "3M", "5M", "8M")
    groups = power_law_groups_table(tuple(params[s] for s in sizes), lambda m: 300.0 * (m / 2e6) ** slope,
                                    np.random.default_rng(0))  # fmt: skip
    groups["size"] = groups["params_non_embedding"].map({params[s]: s for s in sizes})
    template = df[df["final"] & (df["sweep"] == "mix")].iloc[0].drop(groups.columns, errors="ignore")
    rows = groups.assign(**{**template.to_dict(), "sweep": "power_law"})
    return pd.concat([df, rows], ignore_index=True)


def test_threshold_frequency_from_power_law_runs(tmp_path):
    """Power-law runs carry per-group columns (n_eval_group_<k>, ...): f*(M) falls as M^-(alpha+1) with the
    fixture's alpha = 0.3; the report shows it, and their rows stay out of every other analysis."""
    df = load_results(FIXTURE)
    both = _with_power_law_runs(df, -1.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        a = analyze(both, n_boot=200, targets=())
        v = _status(verdicts(a), "frequency")
        assert v.status == "supported" and a.frequency.power.ci["k"][0] < -1.3 < a.frequency.power.ci["k"][1], v.text
        assert "half the knowledge-only accuracy" in v.text and "from the web-loss fit" in v.text
        path = write_report(a, tmp_path, targets=())
        without = verdicts(analyze(df, n_boot=200, targets=()))
    assert _status(verdicts(a), "transition").text == _status(without, "transition").text  # power-law rows stay out
    text = path.read_text()
    assert "## Threshold frequency f* vs model size" in text and "f* ∝ M^k: k = " in text
    for png in ("accuracy_vs_frequency", "threshold_frequency"):
        assert (tmp_path / f"{png}.png").stat().st_size > 1000 and f"]({png}.png)" in text
    table = pd.read_csv(tmp_path / "threshold_frequency.csv")
    assert table["ok"].all() and {"f_star", "f_star_lo", "f_star_hi", "groups", "seeds"} <= set(table)


def test_frequency_and_growth_sections_render_from_simulated_fits():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        fs = fit_frequency(power_law_groups_table(FREQ_SIZES, lambda m: 100.0, np.random.default_rng(2)), alpha=0.3,
                           n_boot=200)  # fmt: skip
    text = "\n".join(frequency_section(fs))
    assert text.startswith("## Threshold frequency") and "- theory: -(alpha+1) = -1.3 [-1.3, -1.3]" in text
    assert len(re.findall(r"^\| \de\+06 \| ", text, flags=re.M)) == 4  # one row per size
    refused = frequency_section(fit_frequency(pd.DataFrame({"run_id": ["a"]})))
    assert "Not fitted: no power-law runs" in refused[2]
    tokens = tokens_to_target(growth_runs("exponential", GROWTH_TRUTH["exponential"], np.random.default_rng(3)), 0.4)
    text = "\n".join(growth_section(tokens, growth_by_size(tokens)))
    assert "## Tokens to reach accuracy 0.4" in text and "| 1M | 12 | 6 |" in text and "| exponential |" in text
    assert text.count("| right |") == (tokens["censoring"] == "right").sum() > 0


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

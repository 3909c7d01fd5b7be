"""Loading, validating and ingesting results tables (analysis.io) and the committed fixture."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.io import (
    RESULTS_COLUMNS,
    ResultsFormatError,
    final_rows,
    ingest_external,
    load_results,
    param_column,
    parse_count,
    validate_results,
)
from analysis.simulate import simulate_results

FIXTURE = Path(__file__).parent / "fixtures" / "results_small.csv"


def test_fixture_loads_and_is_what_the_generator_writes():
    df = load_results(FIXTURE)
    assert list(df.columns[: len(RESULTS_COLUMNS)]) == list(RESULTS_COLUMNS)
    assert df["final"].dtype == bool and df["run_id"].nunique() == len(final_rows(df))
    assert param_column(df) == "params_non_embedding"
    fresh = simulate_results(seed=0)
    num = fresh.select_dtypes("number").columns
    assert np.allclose(df[num].to_numpy(float), fresh[num].to_numpy(float), rtol=1e-7, atol=1e-12)
    assert (df["run_id"] == fresh["run_id"]).all()


def test_parquet_round_trip(tmp_path):
    df = load_results(FIXTURE)
    df.to_parquet(tmp_path / "r.parquet")
    assert load_results(tmp_path / "r.parquet").equals(df)


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.drop(columns=["n_correct", "web_loss"]), "lacks columns ['n_correct', 'web_loss']"),
        (lambda d: d.assign(acc=d["acc"] * 100), "percent"),
        (lambda d: d.assign(n_correct=d["n_eval"] + 1), "n_correct must lie in [0, n_eval]"),
        (lambda d: d.assign(ratio=d["ratio"] + 1), "ratio must lie in [0, 1]"),
        (lambda d: d.assign(final="maybe"), "'final' must be boolean"),
        (lambda d: d.assign(tokens="many"), "['tokens'] must be numeric"),
        (lambda d: pd.concat([d, d.iloc[:1]]), "(run_id, step) must be unique"),
        (lambda d: d.assign(acc=d["acc"] + 0.01), "acc != n_correct/n_eval"),
    ],
)
def test_bad_tables_fail_with_a_named_problem(mutate, needle):
    raw = pd.read_csv(FIXTURE)
    with pytest.raises(ResultsFormatError) as err:
        validate_results(mutate(raw))
    assert needle in str(err.value)


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(FileNotFoundError, match="results table not found"):
        load_results(tmp_path / "nope.csv")
    (tmp_path / "r.txt").write_text("x")
    with pytest.raises(ResultsFormatError, match="unknown table type"):
        load_results(tmp_path / "r.txt")


def test_ingest_paper_style_table(tmp_path):
    """A table typed from a paper: labels for sizes, accuracy only, a stated number of evaluated items."""
    path = tmp_path / "paper.csv"
    path.write_text(
        "params_total,ratio,acc\n70M,0.1,0.0\n70M,0.2,0.004\n70M,0.3,0.35\n70M,0.4,0.71\n410M,0.2,0.52\n1.4B,0.1,0.9\n"
    )
    df = ingest_external(path, n_eval=2500)
    assert set(RESULTS_COLUMNS) <= set(df.columns) and len(df) == 6
    assert df["params_total"].tolist()[:1] == [70e6] and df["size"].iloc[-1] == "1.4B"
    assert df["final"].all() and (df["n_eval"] == 2500).all() and df["n_correct"].iloc[3] == 1775
    assert param_column(df) == "params_total"
    assert any("n_eval = 2500" in n for n in df.attrs["ingest_notes"])


def test_ingest_counts_from_acc_se_and_errors():
    base = pd.DataFrame({"params_non_embedding": [1e6, 1e6, 1e6], "ratio": [0.1, 0.2, 0.3], "acc": [0.0, 0.2, 0.5]})
    df = ingest_external(base.assign(acc_se=[0.0, 0.01, 0.0125]))
    assert df["n_eval"].tolist() == [1600.0, 1600.0, 1600.0]
    with pytest.raises(ResultsFormatError, match="no counts for the binomial likelihood"):
        ingest_external(base)
    with pytest.raises(ResultsFormatError, match=r"required columns \['acc', 'params_non_embedding or"):
        ingest_external(pd.DataFrame({"ratio": [0.1]}))
    with pytest.raises(ResultsFormatError, match="percent"):
        ingest_external(base.assign(acc=[10, 20, 50]), n_eval=100)


def test_parse_count():
    assert parse_count("70M") == 70e6 and parse_count("1.4B") == 1.4e9 and parse_count(" 14 m ") == 14e6
    assert parse_count(3) == 3.0
    with pytest.raises(ResultsFormatError, match="parameter count"):
        parse_count("big")

"""Results table: columns, final flags, resumed-run rows, atomic and reproducible files."""

import json

import pandas as pd
import pytest

from analysis.io import RESULTS_COLUMNS, load_results
from experiments import results

# the columns of analysis.io.RESULTS_COLUMNS that the fake eval rows below lack: added empty, in that order
MISSING = [c for c in RESULTS_COLUMNS if c not in {"sweep", "run_id", "size", "params_total", "params_non_embedding",
                                                   "ratio", "num_people", "seed", "step", "final", "tokens",
                                                   "exposures", "acc", "n_eval"}]  # fmt: skip


def _config(size="t20k", ratio=0.2, seed=0, **extra):
    config = {
        "seed": seed,
        "model": {"size": size, "dtype": "float32"},
        "data": {"ratio": ratio, "num_people": 100, "dir": "data"},
        "train": {"num_steps": 10, "rules": ["a", "b"]},
        "derived": {"params_total": 5000 + int(size[1:-1]), "params_non_embedding": 4000, "device_kind": "cpu"},
    }
    for dotted, value in extra.items():
        section, key = dotted.split("__")
        config[section][key] = value
    return config


def _row(step, acc, **extra):
    return {"step": step, "tokens": 64 * step, "exposures": 0.5 * step, "acc": acc, "n_eval": 50, **extra}


def _make_run(sweep_dir, rid, config, rows, status="complete", tail=""):
    run = sweep_dir / rid
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(config))
    (run / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)
    (run / "status.json").write_text(json.dumps({"status": status, "error": None, "wall_time_s": 1.0}))
    return run


@pytest.fixture
def sweep_dir(tmp_path):
    d = tmp_path / "grid"
    _make_run(d, "size=t20k,ratio=0.2", _config(), [_row(5, 0.1), _row(10, 0.3)])
    _make_run(d, "size=t57k,ratio=0.2", _config("t57k", train__rules=["a", "c"]), [_row(5, 0.2), _row(10, 0.6)])
    _make_run(d, "size=t57k,ratio=0.4", _config("t57k", 0.4), [_row(5, 0.5)], status="running")
    (d / "never-started").mkdir()
    return d


def test_columns_hold_keys_params_varying_config_and_eval_fields(sweep_dir):
    df = results.collect(sweep_dir)
    assert list(df.columns) == [
        "sweep", "run_id", "size", "params_total", "params_non_embedding", "ratio", "num_people", "seed",
        "train.rules", "step", "final", "tokens", "exposures", "acc", "n_eval", *MISSING,
    ]  # fmt: skip
    assert df[list(MISSING)].isna().all().all()
    assert df["sweep"].unique().tolist() == ["grid"]
    assert df["run_id"].tolist() == ["size=t20k,ratio=0.2"] * 2 + ["size=t57k,ratio=0.2"] * 2 + ["size=t57k,ratio=0.4"]
    assert df["params_total"].tolist() == [5020, 5020, 5057, 5057, 5057]
    assert df["train.rules"].tolist()[::2] == ['["a", "b"]', '["a", "c"]', '["a", "b"]']
    assert df["final"].tolist() == [False, True, False, True, False]  # the running run has no final row


def test_params_in_the_eval_row_take_precedence(tmp_path):
    _make_run(tmp_path / "g", "a", _config(), [_row(1, 0.0, params_total=7, params_non_embedding=3)])
    df = results.collect(tmp_path / "g")
    assert (df["params_total"].item(), df["params_non_embedding"].item()) == (7, 3)
    assert "params_total" not in df.columns[df.columns.get_loc("final") :]


def test_resumed_run_keeps_the_newest_row_per_step_and_skips_a_cut_line(tmp_path):
    rows = [_row(5, 0.1), _row(10, 0.3), _row(10, 0.35), _row(15, 0.5)]
    _make_run(tmp_path / "g", "a", _config(), rows, tail='{"step": 20, "ac')
    with pytest.warns(UserWarning, match="eval.jsonl:5: skipping"):
        df = results.collect(tmp_path / "g")
    assert df["step"].tolist() == [5, 10, 15]
    assert df["acc"].tolist() == [0.1, 0.35, 0.5]


def test_a_row_without_step_is_an_error_naming_the_file(tmp_path):
    _make_run(tmp_path / "g", "a", _config(), [{"acc": 0.1}])
    with pytest.raises(ValueError, match="eval.jsonl:1: .*'step'"):
        results.collect(tmp_path / "g")


def test_write_table_is_atomic_and_rebuilds_byte_identical(sweep_dir):
    path = results.write_table(sweep_dir)
    first = path.read_bytes()
    assert results.write_table(sweep_dir).read_bytes() == first
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_file()) == [results.CSV_FILE, results.PARQUET_FILE]
    from_csv = pd.read_csv(path)
    from_parquet = pd.read_parquet(sweep_dir / results.PARQUET_FILE)
    pd.testing.assert_frame_equal(from_parquet, from_csv, check_dtype=False)


def test_a_key_with_mixed_types_still_writes_parquet(tmp_path):
    _make_run(tmp_path / "g", "a", _config(data__web="default"), [_row(1, 0.0)])
    _make_run(tmp_path / "g", "b", _config(data__web=7), [_row(1, 0.0)])
    results.write_table(tmp_path / "g")
    assert pd.read_parquet(tmp_path / "g" / results.PARQUET_FILE)["data.web"].tolist() == ["default", "7"]


def test_an_empty_sweep_gives_a_header_only_table(tmp_path):
    path = results.write_table(tmp_path / "empty")
    assert path.read_text().splitlines() == [
        ",".join(RESULTS_COLUMNS)  # every column the analysis reads, and nothing else
    ]


def test_a_task_run_has_every_analysis_column_and_no_num_people(tmp_path):
    """Slope rows (no per-attribute accuracy, no stored bits) beside SynBio rows: the table loads in the analysis,
    data.knowledge is a column, and the task run's num_people is empty."""
    task_row = _row(10, 0.4, acc_se=0.05, n_correct=20, acc_final=0.4, acc_full=0.1, bits_per_item=12.2)
    _make_run(tmp_path / "g", "slope", _config(data__knowledge="slope"), [task_row])
    synbio_row = _row(10, 0.3, n_correct=15, acc_birth_date=0.2)
    _make_run(tmp_path / "g", "synbio", _config(data__knowledge="synbio"), [synbio_row])
    df = results.collect(tmp_path / "g")
    assert set(RESULTS_COLUMNS) <= set(df.columns)
    assert df["data.knowledge"].tolist() == ["slope", "synbio"]
    assert df["num_people"].isna().tolist() == [True, False]
    assert df["acc_birth_date"].isna().tolist() == [True, False]
    assert df["acc_full"].tolist()[0] == 0.1
    path = results.write_table(tmp_path / "g")
    assert len(load_results(path)) == 2

"""Sweep runner: run ids, shards, core pinning, idempotence, failures and kills, with a fake trainer subprocess."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from experiments import results
from experiments.sweep import (
    SINGLE_THREAD_XLA_FLAG,
    ConfigError,
    Sweep,
    cpu_slots,
    grid,
    load_sweep,
    point_config,
    read_status,
    run_sweep,
    shard,
    train_command,
    worker_env,
)
from mixlab import run_folder
from tests.processes import alive

REPO = Path(__file__).resolve().parents[1]

# Same command line and run-folder files as mixlab.main: config.json, eval.jsonl, status.json; resumes from a
# "checkpoint" on relaunch; can be told to raise at a step or to sleep per step (so that it can be killed mid-run).
# Like mixlab.main it dies with its sweep, and locks the run folder (exit status 2 with the one-line message when
# another process holds it) before it writes or records an attempt.
FAKE_TRAINER = """
import json, math, os, sys, time
from absl import app, flags
from ml_collections import config_flags
from mixlab import host, run_folder

_CONFIG = config_flags.DEFINE_config_file("config")
_WORKDIR = flags.DEFINE_string("workdir", None, "run folder")


def write_json(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f)
    os.replace(path + ".tmp", path)


def main(argv):
    cfg, workdir = _CONFIG.value, _WORKDIR.value
    os.makedirs(workdir, exist_ok=True)
    try:
        lock = run_folder.lock(workdir)
    except run_folder.RunFolderLocked as e:
        print(f"mixlab: {e}", file=sys.stderr)
        sys.exit(2)
    if run_folder.is_complete(workdir):
        return
    start = time.time()
    resolved = cfg.to_dict()
    resolved["derived"] = {"params_total": 100 * len(cfg.model.size), "params_non_embedding": 10}
    config_path, status_path = os.path.join(workdir, "config.json"), os.path.join(workdir, "status.json")
    if os.path.exists(config_path) and json.load(open(config_path)) != resolved:
        raise ValueError("workdir holds a run with another config")
    write_json(config_path, resolved)
    write_json(status_path, {"status": "running", "error": None, "wall_time_s": 0.0})
    with open(os.path.join(workdir, "attempts.jsonl"), "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "cpus": sorted(os.sched_getaffinity(0)),
                            "xla_flags": os.environ.get("XLA_FLAGS", "")}) + "\\n")
    ckpt = os.path.join(workdir, "checkpoint.json")
    step = json.load(open(ckpt))["step"] if os.path.exists(ckpt) else 0
    try:
        while step < cfg.train.num_steps:
            step += 1
            time.sleep(cfg.fake.sleep_s)
            if step == cfg.fake.fail_at_step:
                raise RuntimeError(f"fake failure at step {step}")
            acc = 1 / (1 + math.exp(-(10 * cfg.data.ratio * step - 5)))
            row = {"step": step, "tokens": 64 * step, "exposures": cfg.data.ratio * step, "acc": acc,
                   "n_eval": 50, "acc_birth_date": acc / 2, "wall_time_s": time.time() - start}
            with open(os.path.join(workdir, "eval.jsonl"), "a") as f:
                f.write(json.dumps(row) + "\\n")
            write_json(ckpt, {"step": step})
    except Exception as e:
        write_json(status_path, {"status": "failed", "error": repr(e), "wall_time_s": time.time() - start})
        raise
    write_json(status_path, {"status": "complete", "error": None, "wall_time_s": time.time() - start})


if __name__ == "__main__":
    host.die_with_parent()
    app.run(main)
"""

FAKE_CONFIG = """
from ml_collections import ConfigDict


def get_config(arg=""):
    return ConfigDict({
        "seed": 0,
        "model": {"size": "t20k"},
        "data": {"ratio": 0.1, "num_people": 10},
        "train": {"num_steps": 6 if arg == "runlocal" else 100, "tokens": 0, "exposures": 0.0},
        "fake": {"sleep_s": 0.0, "fail_at_step": -1},
    })
"""

FAKE_SWEEP = """
from experiments.sweep import Sweep, grid


def get_sweep(arg="fast"):
    sleep = {"fast": 0.0, "slow": 0.15, "hang": 5.0}[arg]
    points = grid({"model.size": ["t20k", "t57k"], "data.ratio": [0.2, 0.4], "fake.sleep_s": [sleep]})
    return Sweep(name="fake", config=%r, points=points)
"""


@pytest.fixture
def fake(tmp_path):
    """Paths of the fake trainer, its base config and a 4-run sweep file over them."""
    (tmp_path / "fake_trainer.py").write_text(f"import sys\nsys.path.insert(0, {str(REPO)!r})\n{FAKE_TRAINER}")
    (tmp_path / "fake_config.py").write_text(FAKE_CONFIG)
    (tmp_path / "fake_sweep.py").write_text(FAKE_SWEEP % f"{tmp_path / 'fake_config.py'}:runlocal")
    return {
        "trainer": (sys.executable, str(tmp_path / "fake_trainer.py")),
        "config": f"{tmp_path / 'fake_config.py'}:runlocal",
        "sweep_file": str(tmp_path / "fake_sweep.py"),
    }


def _sweep(fake, points=None, sleep=0.0):
    points = points or grid({"model.size": ["t20k", "t57k"], "data.ratio": [0.2, 0.4], "fake.sleep_s": [sleep]})
    return Sweep(name="fake", config=fake["config"], points=points)


def _run(fake, sweep, runs, **kwargs):
    """run_sweep with the fake trainer, no data preparation, two workers and no progress bar unless overridden."""
    return run_sweep(
        sweep,
        runs,
        **{"workers": 2, "trainer": fake["trainer"], "prepare": None, "check": None, "progress": False, **kwargs},
    )


def _table_without_wall_time(sweep_dir):
    df = pd.read_csv(sweep_dir / results.CSV_FILE)
    return df.drop(columns=[c for c in df.columns if "wall_time" in c])


def _attempts(run_dir):
    """The fake trainer's record of each launch in run_dir ([] before its first launch has started up)."""
    path = run_dir / "attempts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_grid_order_and_readable_run_ids():
    points = grid({"model.size": ["t20k", "t57k"], "data.ratio": [0.2, 0.4], "seed": [1]})
    assert points[1] == {"model.size": "t20k", "data.ratio": 0.4, "seed": 1}
    sweep = Sweep(name="s", config="experiments/configs/tiny.py:runlocal", points=points)
    assert sweep.run_ids() == [
        "size=t20k,ratio=0.2,seed=1",
        "size=t20k,ratio=0.4,seed=1",
        "size=t57k,ratio=0.2,seed=1",
        "size=t57k,ratio=0.4,seed=1",
    ]


def test_run_ids_disambiguate_and_sanitise():
    sweep = Sweep(name="s", config="c.py", points=[{"seed": 1, "eval.seed": 2, "data.web": "/d/fw edu", "x.ok": True}])
    assert sweep.run_ids() == ["seed=1,eval.seed=2,web=_d_fw_edu,ok=true"]
    with pytest.raises(ValueError, match="same run id"):
        Sweep(name="s", config="c.py", points=[{"data.web": "a/b"}, {"data.web": "a_b"}])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="a/b", config="c.py", points=[{"seed": 1}]), "sweep name"),
        (dict(name="s", config="c.yaml", points=[{"seed": 1}]), ".py config file"),
        (dict(name="s", config="c.py", points=[]), "no points"),
        (dict(name="s", config="c.py", points=[{"data.ratio": None}]), "data.ratio"),
    ],
)
def test_bad_sweeps_are_clear_errors(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        Sweep(**kwargs)


def test_grid_rejects_a_bare_value():
    with pytest.raises(ValueError, match="data.ratio"):
        grid({"data.ratio": 0.2})


def test_train_command_round_trips_through_config_flags(fake, tmp_path):
    point = {"model.size": "t57k", "data.ratio": 0.25, "train.num_steps": 2, "fake.sleep_s": 0.0}
    command = train_command(fake["trainer"], fake["config"], tmp_path / "run", point)
    assert command[2:4] == [f"--config={fake['config']}", f"--workdir={tmp_path / 'run'}"]
    assert "--config.model.size=t57k" in command and "--config.train.tokens=0" in command
    subprocess.run(command, check=True, capture_output=True, env=worker_env(1))
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (resolved["model"]["size"], resolved["data"]["ratio"], resolved["train"]["num_steps"]) == ("t57k", 0.25, 2)


def test_a_run_length_key_zeroes_the_other_two(fake, tmp_path):
    point = {"data.ratio": 0.5, "train.exposures": 3.0}
    command = train_command(fake["trainer"], fake["config"], tmp_path, point)
    assert command[-4:] == [
        "--config.train.num_steps=0",
        "--config.train.tokens=0",
        "--config.data.ratio=0.5",
        "--config.train.exposures=3.0",
    ]
    config = point_config(_sweep(fake), point)
    assert (config.train.num_steps, config.train.tokens, config.train.exposures) == (0, 0, 3.0)
    assert Sweep(name="s", config="c.py", points=[point]).run_ids() == ["ratio=0.5,exposures=3.0"]


def test_fixed_overrides_apply_to_every_point_but_stay_out_of_run_ids(fake, tmp_path):
    fixed = {"train.init_from": "/some/where/run", "data.ratio": 0.1}
    sweep = Sweep(name="s", config="c.py", points=[{"seed": 0}, {"seed": 1, "data.ratio": 0.2}], fixed=fixed)
    assert sweep.run_ids() == ["seed=0", "seed=1,ratio=0.2"]
    assert sweep.points[0] == {"seed": 0, "train.init_from": "/some/where/run", "data.ratio": 0.1}
    assert sweep.points[1]["data.ratio"] == 0.2
    command = train_command(fake["trainer"], fake["config"], tmp_path, sweep.points[0])
    assert "--config.train.init_from=/some/where/run" in command


def test_point_config_checks_keys_and_types(fake):
    sweep = _sweep(fake)
    assert point_config(sweep, {"data.ratio": 0.3}).data.ratio == 0.3
    with pytest.raises(ConfigError, match="unknown config key 'data.ratoi'"):
        point_config(sweep, {"data.ratoi": 0.3})
    with pytest.raises(ConfigError, match="train.num_steps"):
        point_config(sweep, {"train.num_steps": "many"})


@given(n=st.integers(0, 60), count=st.integers(1, 9))
def test_shards_partition_the_grid_exactly(n, count):
    shards = [shard(list(range(n)), i, count) for i in range(count)]
    assert sorted(x for s in shards for x in s) == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_shard_index_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="shard_index"):
        shard([1, 2], 2, 2)


def test_cpu_slots_and_single_thread_env():
    assert cpu_slots(1, [0, 1]) == [(0, 1)]
    assert cpu_slots(2, [0, 1]) == [(0,), (1,)]
    assert cpu_slots(2, [0, 1, 2, 3, 4]) == [(0, 1), (2, 3, 4)]
    assert cpu_slots(3, [0, 1]) == [(0,), (1,), (0,)]
    assert cpu_slots(0, [0, 1, 2]) == [(0,), (1,), (2,)]  # 0: one per core
    with pytest.raises(ValueError, match="workers"):
        cpu_slots(-1)
    env = worker_env(1, {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
    assert env["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=8", SINGLE_THREAD_XLA_FLAG]
    assert env["OMP_NUM_THREADS"] == "1"
    assert SINGLE_THREAD_XLA_FLAG not in worker_env(2, {}).get("XLA_FLAGS", "")


def test_four_run_sweep_completes_then_rerun_skips_everything(fake, tmp_path):
    sweep = _sweep(fake)
    runs = tmp_path / "runs"
    prepared = []
    outcomes = _run(fake, sweep, runs, prepare=prepared.append)
    assert outcomes == {rid: "complete" for rid in sweep.run_ids()}
    assert [c.data.ratio for c in prepared] == [0.2]  # one data set: the ratio changes no prepared file
    slots = cpu_slots(2)
    for rid in sweep.run_ids():
        (attempt,) = _attempts(runs / "fake" / rid)
        assert tuple(attempt["cpus"]) in slots  # each run pinned to its worker's share of the cores
        assert (SINGLE_THREAD_XLA_FLAG in attempt["xla_flags"]) == (len(attempt["cpus"]) == 1)
    df = pd.read_csv(runs / "fake" / results.CSV_FILE)
    assert len(df) == 4 * 6 and df["final"].sum() == 4
    assert sorted(df.loc[df.final, "run_id"]) == sorted(sweep.run_ids())
    table_bytes = (runs / "fake" / results.CSV_FILE).read_bytes()

    again = _run(fake, sweep, runs, prepare=prepared.append)
    assert again == {rid: "skipped" for rid in sweep.run_ids()} and len(prepared) == 1
    assert all(len(_attempts(runs / "fake" / rid)) == 1 for rid in sweep.run_ids())
    assert (runs / "fake" / results.CSV_FILE).read_bytes() == table_bytes


def test_a_run_that_raises_is_recorded_and_siblings_go_on(fake, tmp_path):
    points = grid({"data.ratio": [0.2, 0.4]}) + [{"data.ratio": 0.3, "fake.fail_at_step": 2}]
    sweep = _sweep(fake, points)
    runs = tmp_path / "runs"
    outcomes = _run(fake, sweep, runs)
    assert outcomes == {"ratio=0.2": "complete", "ratio=0.4": "complete", "ratio=0.3,fail_at_step=2": "failed"}
    failed_dir = runs / "fake" / "ratio=0.3,fail_at_step=2"
    assert "fake failure at step 2" in read_status(failed_dir)["error"]
    assert "RuntimeError: fake failure at step 2" in (failed_dir / "train.log").read_text()
    df = pd.read_csv(runs / "fake" / results.CSV_FILE)
    assert df.loc[df.run_id == "ratio=0.3,fail_at_step=2", "step"].tolist() == [1]
    assert not df.loc[df.run_id == "ratio=0.3,fail_at_step=2", "final"].any()

    again = _run(fake, sweep, runs)
    assert again == {"ratio=0.2": "skipped", "ratio=0.4": "skipped", "ratio=0.3,fail_at_step=2": "failed"}
    assert len(_attempts(failed_dir)) == 2


def _wait_for(predicate, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for the sweep"
        time.sleep(0.05)


def _eval_rows(run_dir):
    path = run_dir / "eval.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_killed_trainer_is_recorded_failed_and_a_rerun_completes_it(fake, tmp_path):
    sweep = _sweep(fake, sleep=0.15)
    runs = tmp_path / "runs"
    victim = runs / "fake" / sweep.run_ids()[0]
    outcomes = {}
    thread = threading.Thread(target=lambda: outcomes.update(_run(fake, sweep, runs)))
    thread.start()
    _wait_for(lambda: _eval_rows(victim) >= 1)
    os.kill(_attempts(victim)[0]["pid"], signal.SIGKILL)
    thread.join(timeout=120)
    assert outcomes.pop(victim.name) == "failed"
    assert set(outcomes.values()) == {"complete"}
    assert "killed by signal SIGKILL" in read_status(victim)["error"]

    again = _run(fake, sweep, runs)
    assert again[victim.name] == "complete" and list(again.values()).count("skipped") == 3
    assert len(_attempts(victim)) == 2


def _slow_sweep_command(fake, runs, speed="slow") -> list[str]:
    """The sweep CLI over the fake trainer's slow sweep (or another speed of FAKE_SWEEP), 2 workers."""
    return [
        sys.executable,
        "-m",
        "experiments.sweep",
        f"--sweep={fake['sweep_file']}:{speed}",
        f"--runs_dir={runs}",
        "--workers=2",
        f"--trainer={' '.join(fake['trainer'])}",
        "--noprepare",
        "--novalidate",
    ]


def test_killing_the_sweep_midway_then_rerunning_gives_the_clean_table(fake, tmp_path):
    clean = tmp_path / "clean"
    _run(fake, load_sweep(f"{fake['sweep_file']}:slow"), clean)

    runs = tmp_path / "runs"
    command = _slow_sweep_command(fake, runs)
    proc = subprocess.Popen(command, cwd=REPO, start_new_session=True, stderr=subprocess.DEVNULL)
    first = runs / "fake" / "size=t20k,ratio=0.2,sleep_s=0.15"
    _wait_for(lambda: _eval_rows(first) >= 1)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its trainers, as in a lost node
    proc.wait()
    interrupted = [d.name for d in (runs / "fake").iterdir() if read_status(d)["status"] == "running"]
    assert first.name in interrupted

    again = _run(fake, load_sweep(f"{fake['sweep_file']}:slow"), runs, progress=True)
    assert {again[name] for name in interrupted} == {"complete"}
    assert len(_attempts(first)) == 2 and json.loads((first / "eval.jsonl").read_text().splitlines()[0])["step"] == 1
    pd.testing.assert_frame_equal(_table_without_wall_time(runs / "fake"), _table_without_wall_time(clean / "fake"))


def test_sigterm_to_the_sweep_stops_its_trainers(fake, tmp_path):
    runs = tmp_path / "runs"
    command = _slow_sweep_command(fake, runs)
    proc = subprocess.Popen(command, cwd=REPO, stderr=subprocess.DEVNULL)
    first = runs / "fake" / "size=t20k,ratio=0.2,sleep_s=0.15"
    _wait_for(lambda: _eval_rows(first) >= 1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    pids = [a["pid"] for d in (runs / "fake").iterdir() if d.is_dir() for a in _attempts(d)]

    def all_gone():
        for pid in pids:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            return False
        return True

    _wait_for(all_gone, timeout_s=10)
    assert read_status(first)["status"] == "running"  # resumable, not failed


def test_cli_table_only_rebuilds_the_same_file(fake, tmp_path):
    runs = tmp_path / "runs"
    _run(fake, load_sweep(fake["sweep_file"]), runs, workers=1)
    before = (runs / "fake" / results.CSV_FILE).read_bytes()
    (runs / "fake" / results.CSV_FILE).unlink()
    command = [sys.executable, "-m", "experiments.sweep", f"--sweep={fake['sweep_file']}", f"--runs_dir={runs}"]
    command.append("--novalidate")
    out = subprocess.run([*command, "--table_only"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "results.csv" in out.stdout
    assert (runs / "fake" / results.CSV_FILE).read_bytes() == before


def test_plan_prices_each_run_with_the_config_cost_summary(tmp_path):
    from experiments.configs.common import cost_summary
    from experiments.sweep import plan

    (tmp_path / "base.py").write_text(
        "from mixlab.config import base_config\n\n\ndef get_config():\n"
        "    c = base_config()\n    c.train.num_steps = 10\n    return c\n"
    )
    points = grid({"model.size": ["t20k", "14m"]}) + [{"train.num_steps": 0, "train.exposures": 3.0}]
    sweep = Sweep(name="p", config=str(tmp_path / "base.py"), points=points)
    text = plan(sweep)
    costs = [cost_summary(point_config(sweep, p)) for p in points[:2]]
    assert f"{costs[1]['params_total']}" in text and f"{costs[0]['params_total']}" in text
    hours = sum(c["h100_hours_at_40pct_mfu"] for c in costs)
    hours_6nd = sum(c["six_nd"] / c["model_flops"] * c["h100_hours_at_40pct_mfu"] for c in costs)
    assert f"total of 2 runs: {20 * 32 * 64:.4g} tokens" in text
    assert f"= {hours_6nd:.4g} H100/H200-hours" in text and f"= {hours:.4g} H100/H200-hours" in text
    assert "no cost (needs the data): size=t57k" not in text and "exposures=3.0: " in text
    assert plan(sweep, 1, 2).count("\n") < text.count("\n")


def test_paper_grids_cover_the_papers_sizes_and_ratios():
    grid_320k = load_sweep("experiments/configs/paper_grid.py:320k")
    assert len(grid_320k.points) == 40 and grid_320k.run_ids()[:2] == ["size=14m,ratio=0.1", "size=14m,ratio=0.15"]
    config = point_config(grid_320k, grid_320k.points[-1])
    assert (config.model.size, config.data.ratio, config.data.num_people) == ("410m", 0.45, 320_000)
    assert config.train.tokens == 32_000_000_000
    grid_1m = load_sweep("experiments/configs/paper_grid.py:1.28m:/fw")
    assert [p["model.size"] for p in grid_1m.points] == ["410m"] * 8
    assert point_config(grid_1m, grid_1m.points[0]).data.num_people == 1_280_000
    assert point_config(grid_1m, grid_1m.points[0]).data.web == "/fw"
    with pytest.raises(ValueError, match="paper_grid arg"):
        load_sweep("experiments/configs/paper_grid.py:2m")


def test_ensemble_groups_keep_order_and_group_only_compatible_runs():
    from experiments.sweep import ensemble_groups

    sweep = Sweep(
        name="g",
        config="experiments/configs/tiny.py:runlocal",
        points=[
            *grid({"model.size": ["t25k"], "data.ratio": [0.2, 0.4, 0.6], "seed": [0]}),
            {"model.size": "t57k", "data.ratio": 0.2, "seed": 0},
            {"model.size": "t25k", "data.ratio": 0.8, "seed": 1},
            {"model.size": "t25k", "data.ratio": 0.8, "seed": 2, "train.exposures": 2.0},
        ],
    )
    pending = list(zip(sweep.run_ids(), sweep.points, strict=True))
    config_of = {rid: point_config(sweep, p) for rid, p in pending}
    ids = sweep.run_ids()
    groups = [[rid for rid, _ in g] for g in ensemble_groups(pending, config_of, 3)]
    assert groups == [ids[0:3], [ids[3]], [ids[4]], [ids[5]]]  # full group, other size, next group, exposures alone
    assert [[r for r, _ in g] for g in ensemble_groups(pending, config_of, 1)] == [[i] for i in ids]


@pytest.mark.slow
def test_real_sweep_alone_and_as_an_ensemble_gives_one_table(tmp_path, monkeypatch):
    """mixlab.main through the sweep, two points (ratios and seeds) of runlocal: trained alone (2 workers), data
    prepared once, both runs complete with their eval rows and skipped on a rerun; trained as one ensemble, the same
    results table."""
    from experiments.configs.common import cost_summary

    monkeypatch.chdir(REPO)
    jax.devices()  # this process keeps its 8 virtual devices (the points are validated here) ...
    monkeypatch.setenv("XLA_FLAGS", "")  # ... while each run gets one CPU device
    points = [{"data.ratio": 0.2, "seed": 0}, {"data.ratio": 0.8, "seed": 1}]
    sweep = Sweep(name="real", config="experiments/configs/tiny.py:runlocal", points=points)
    ids = sweep.run_ids()
    tables = {}
    for k in (1, 2):
        runs = tmp_path / str(k)
        assert run_sweep(sweep, runs, workers=2, ensemble=k, progress=False) == dict.fromkeys(ids, "complete")
        df = pd.read_csv(runs / sweep.name / results.CSV_FILE)
        tables[k] = df.drop(columns=[c for c in df.columns if "time" in c or c in ("tokens_per_s", "mfu")])
    assert run_sweep(sweep, tmp_path / "1", workers=2, progress=False) == dict.fromkeys(ids, "skipped")
    df = tables[1]
    assert df["step"].tolist() == [15, 30, 15, 30] and df["final"].tolist() == [False, True, False, True]
    assert set(df["params_total"]) == {cost_summary(point_config(sweep, points[0]))["params_total"]}
    final = df[df.final].set_index("ratio")
    assert final.loc[0.8, "exposures"] > 3 * final.loc[0.2, "exposures"] > 0

    a, b = tables[1], tables[2]
    assert list(a.columns) == list(b.columns)
    numeric = a.select_dtypes("number").columns
    pd.testing.assert_frame_equal(a.drop(columns=numeric), b.drop(columns=numeric))
    pd.testing.assert_frame_equal(a[numeric], b[numeric], rtol=1e-4, atol=1e-5)
    assert "trained in an ensemble" in (tmp_path / "2" / sweep.name / ids[1] / "train.log").read_text()


def test_a_run_held_by_another_process_is_skipped_untouched_then_trained(fake, tmp_path):
    sweep = _sweep(fake)
    runs = tmp_path / "runs"
    held = runs / "fake" / sweep.run_ids()[1]
    held.mkdir(parents=True)
    with run_folder.lock(held):  # this process holds it, as another sweep's trainer would
        outcomes = _run(fake, sweep, runs)
        assert sorted(p.name for p in held.iterdir()) == [run_folder.LOCK_FILE]  # nothing written, nothing launched
    assert outcomes.pop(held.name) == "held" and set(outcomes.values()) == {"complete"}
    again = _run(fake, sweep, runs)
    assert again[held.name] == "complete" and len(_attempts(held)) == 1


def test_a_trainer_that_finds_the_lock_taken_after_the_check_is_held_not_failed(fake, tmp_path, monkeypatch):
    """The window between the sweep's check and the trainer's lock: the trainer exits 2 naming the holder."""
    sweep = _sweep(fake, grid({"data.ratio": [0.2]}))
    run_dir = tmp_path / "runs" / "fake" / "ratio=0.2"
    run_dir.mkdir(parents=True)
    monkeypatch.setattr(run_folder, "lock_holder", lambda run_dir: None)  # the check saw it free
    with run_folder.lock(run_dir):
        assert _run(fake, sweep, tmp_path / "runs") == {"ratio=0.2": "held"}
    assert read_status(run_dir)["status"] == "new" and not _attempts(run_dir)
    assert f"is locked by pid {os.getpid()} on " in (run_dir / "train.log").read_text()


def test_sigkill_to_the_sweep_kills_its_trainers(fake, tmp_path):
    runs = tmp_path / "runs"
    command = _slow_sweep_command(fake, runs, "hang")  # 30 s runs: trainers left alone would outlive the test
    proc = subprocess.Popen(command, cwd=REPO, start_new_session=True, stderr=subprocess.DEVNULL)

    def trainer_pids():
        return [a["pid"] for d in (runs / "fake").iterdir() if d.is_dir() for a in _attempts(d)]

    try:
        _wait_for(lambda: (runs / "fake").is_dir() and len(trainer_pids()) == 2)
        pids = trainer_pids()
        assert all(map(alive, pids))
        proc.kill()  # the sweep alone, not its process group
        proc.wait()
        _wait_for(lambda: not any(map(alive, pids)), timeout_s=5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_two_sweeps_on_one_folder_train_each_run_once(fake, tmp_path):
    runs = tmp_path / "runs"
    command = _slow_sweep_command(fake, runs)
    procs = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)]
    procs.append(subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    sweep = load_sweep(f"{fake['sweep_file']}:slow")
    for rid in sweep.run_ids():
        assert len(_attempts(runs / "fake" / rid)) == 1, rid
        assert read_status(runs / "fake" / rid)["status"] == "complete"
    assert "FAILED" not in "".join(errors)

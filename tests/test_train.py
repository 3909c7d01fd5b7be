"""The trainer end to end on tiny data: sharded == 1 device, bitwise resume, run-folder rules, bad configs, NaN."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from mixlab import run_folder, train
from mixlab.config import ConfigError, ConfigMismatchError, base_config
from mixlab.run_folder import read_status
from tests.checkpoints import read_numpy

REPO = Path(__file__).resolve().parents[1]


def tiny(data_dir: str, **overrides) -> "ml_collections.ConfigDict":  # noqa: F821
    c = base_config()
    c.data.update(dir=data_dir, web="synthetic", tokenizer=os.path.join(data_dir, "tokenizer.json"))
    c.data.update(num_people=32, ratio=0.5, seq_len=192, global_batch=8)
    c.data.synthetic.update(num_docs=200, num_patterns=2000)
    c.model.update(size="t25k", num_layers=1)
    c.optim.warmup_steps = 2
    c.train.update(num_steps=6, log_every=1, eval_every=0, checkpoint_every=0, tensorboard=False)
    c.eval.update(num_people=8, batch_size=64, web_batches=1)
    for key, value in overrides.items():
        section, name = key.split("__")
        if name:
            c[section][name] = value
        else:
            c[section] = value
    return c


def rows(workdir, name="metrics"):
    with open(os.path.join(workdir, f"{name}.jsonl")) as f:
        return [json.loads(line) for line in f]


K = 3  # runs train 2K steps; the resume tests stop after K and restart


def _final_params(workdir) -> list[np.ndarray]:
    state, _ = read_numpy(os.path.join(workdir, "checkpoints"))
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(state)]


def _without(row: dict, keys=("eval_time_s", "wall_time_s")) -> dict:
    return {k: v for k, v in row.items() if k not in keys}


def sharded(data_dir: str, **overrides):
    """(data=2, fsdp=2, tensor=2) over the 8 virtual CPU devices."""
    c = tiny(data_dir, train__num_steps=2 * K, train__eval_every=K, **overrides)
    c.sharding.mesh.update(data=2, fsdp=2, tensor=2)
    return c


def one_device(data_dir: str, **overrides):
    c = tiny(data_dir, train__num_steps=2 * K, train__eval_every=K, sharding__num_devices=1, **overrides)
    c.sharding.mesh.update(data=1, fsdp=1, tensor=1)
    return c


@pytest.fixture(scope="module")
def straight(data_dir, tmp_path_factory) -> tuple[str, dict]:
    """2K steps in one go on the (2, 2, 2) mesh: (workdir, final eval row)."""
    assert jax.device_count() == 8
    workdir = str(tmp_path_factory.mktemp("straight"))
    return workdir, train.train_and_evaluate(sharded(data_dir), workdir)


@pytest.fixture(scope="module")
def stopped(data_dir, tmp_path_factory) -> str:
    """K steps on the (2, 2, 2) mesh, then stopped: a run folder holding the step-K checkpoint."""
    workdir = str(tmp_path_factory.mktemp("stopped") / "run")
    assert train.train_and_evaluate(sharded(data_dir), workdir, stop_after=K) == {"step": K, "stopped_early": True}
    assert json.load(open(os.path.join(workdir, "status.json")))["status"] == "running"
    return workdir


def test_sharded_losses_equal_one_device(data_dir, tmp_path, straight):
    """(data=2, fsdp=2, tensor=2) on 8 virtual CPU devices vs 1 device: the same losses to 1e-5 relative."""
    train.train_and_evaluate(one_device(data_dir), str(tmp_path))
    a, b = rows(tmp_path), rows(straight[0])
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 2 * K + 1))
    for key in ("loss", "loss_knowledge", "loss_web", "grad_norm"):
        np.testing.assert_allclose([r[key] for r in b], [r[key] for r in a], rtol=1e-5, err_msg=key)
    assert a[-1]["loss"] < a[0]["loss"]  # it trains
    assert json.load(open(os.path.join(straight[0], "config.json")))["derived"]["num_devices"] == 8
    assert json.load(open(tmp_path / "config.json"))["derived"]["num_devices"] == 1


def test_resume_is_bitwise(data_dir, tmp_path, straight, stopped):
    workdir, final = straight
    resumed = str(tmp_path / "resumed")
    shutil.copytree(stopped, resumed)
    assert _without(train.train_and_evaluate(sharded(data_dir), resumed)) == _without(final)
    assert json.load(open(os.path.join(resumed, "status.json")))["status"] == "complete"
    a, b = _final_params(workdir), _final_params(resumed)
    assert len(a) == len(b) > 10
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert [r["loss"] for r in rows(workdir)] == [r["loss"] for r in rows(resumed)]
    assert [r["step"] for r in rows(resumed, "eval")] == [K, 2 * K]


def test_checkpoint_from_8_devices_resumes_on_1(data_dir, tmp_path, straight, stopped):
    moved = str(tmp_path / "moved")
    shutil.copytree(stopped, moved)
    final = train.train_and_evaluate(one_device(data_dir), moved)  # the mesh may change between sessions
    assert json.load(open(os.path.join(moved, "config.json")))["derived"]["num_devices"] == 1
    np.testing.assert_allclose([r["loss"] for r in rows(moved)], [r["loss"] for r in rows(straight[0])], rtol=1e-5)
    assert final["acc"] == straight[1]["acc"] and final["value_loss"] == pytest.approx(straight[1]["value_loss"], 1e-4)


def test_run_folder_rules(data_dir, straight):
    workdir, final = straight
    cfg = sharded(data_dir)
    # A complete run returns its final row at once and rewrites nothing (but the lock file, naming its latest holder).
    files = set(os.listdir(workdir)) - {run_folder.LOCK_FILE}
    mtimes = {f: os.path.getmtime(os.path.join(workdir, f)) for f in files}
    assert train.train_and_evaluate(cfg, workdir) == final
    assert mtimes == {f: os.path.getmtime(os.path.join(workdir, f)) for f in files}
    assert set(os.listdir(workdir)) - {run_folder.LOCK_FILE} == files
    # A different config in the same folder is refused, naming the keys.
    with pytest.raises(ConfigMismatchError, match=r"data\.ratio: saved=0\.5 now=0\.25.*seed"):
        train.train_and_evaluate(sharded(data_dir, data__ratio=0.25, seed__=3), workdir)


def test_outputs_have_the_contract_fields(straight):
    workdir, row = straight
    resolved = json.load(open(os.path.join(workdir, "config.json")))
    d = resolved["derived"]
    assert resolved["train"]["num_steps"] == d["num_steps"] == 2 * K
    for key in ("step", "tokens", "knowledge_tokens", "web_tokens", "exposures", "acc", "acc_se", "n_eval",
                "n_correct", "value_loss", "bits_stored", "bits_per_param", "web_loss", "wall_time_s",
                "acc_birth_date", "acc_employer"):  # fmt: skip
        assert key in row, key
    assert row["step"] == 2 * K and row["tokens"] == 2 * K * 8 * 192 and row["n_eval"] == 8 * 25
    assert row["knowledge_tokens"] == 2 * K * round(0.5 * 8 * 192) == 2 * K * d["knowledge_tokens_per_step"]
    # every completed document is one exposure: mean exposures ~ knowledge tokens / (people * tokens per document)
    approx = row["knowledge_tokens"] / (32 * d["tokens_per_exposure"])
    assert abs(row["exposures"] - approx) <= 1.0 / 32 + 0.1 * approx
    logged = rows(workdir)
    assert [r["step"] for r in logged] == list(range(1, 2 * K + 1))
    for key in ("tokens_per_s", "mfu", "data_wait_share", "time_compile_s", "knowledge_tokens", "web_tokens",
                "exposures", "exposures_min", "loss_knowledge", "loss_web"):  # fmt: skip
        assert key in logged[-1], key
    assert logged[-1]["mfu"] > 0 and logged[-1]["time_compile_s"] > 0 and 0 <= logged[-1]["data_wait_share"] < 1
    assert json.load(open(os.path.join(workdir, "status.json")))["status"] == "complete"


def test_num_steps_from_exposures_or_tokens(data_dir, tmp_path):
    """train.exposures (per person) and train.tokens resolve to num_steps in config.json (stop_after=0: no training)."""
    train.train_and_evaluate(
        tiny(data_dir, train__num_steps=0, train__exposures=3.0), str(tmp_path / "e"), stop_after=0
    )
    d = json.load(open(tmp_path / "e" / "config.json"))["derived"]
    assert d["num_steps"] == int(np.ceil(3.0 * 32 * d["tokens_per_exposure"] / d["knowledge_tokens_per_step"]))
    train.train_and_evaluate(
        tiny(data_dir, train__num_steps=0, train__tokens=10_000), str(tmp_path / "t"), stop_after=0
    )
    assert json.load(open(tmp_path / "t" / "config.json"))["train"]["num_steps"] == int(np.ceil(10_000 / (8 * 192)))


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_pure_web_and_pure_knowledge_runs_train_and_evaluate(data_dir, tmp_path, ratio):
    """The calibration runs: r = 0 (web only, no exposures) and r = 1 (knowledge only)."""
    cfg = tiny(data_dir, data__ratio=ratio, train__num_steps=2)
    row = train.train_and_evaluate(cfg, str(tmp_path))
    assert row["step"] == 2
    assert (row["exposures"] == 0.0) == (ratio == 0.0)
    assert row["knowledge_tokens"] == (0 if ratio == 0.0 else row["tokens"])


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda c: c.data.__setitem__("ratioo", 0.3), r"unknown config key.*data\.ratioo"),
        (lambda c: c.data.__setitem__("ratio", 1.5), r"data\.ratio=1\.5"),
        (lambda c: c.data.__setitem__("ratio", -0.1), r"data\.ratio=-0\.1"),
        (lambda c: c.sharding.mesh.update(data=3, fsdp=1, tensor=1), r"sharding\.mesh.*does not divide"),
        (lambda c: c.data.__setitem__("global_batch", 12), r"data\.global_batch=12.*data-parallel size 8"),
        (lambda c: c.optim.__setitem__("grad_accum", 4), r"data\.global_batch / optim\.grad_accum"),
        (lambda c: c.train.__setitem__("tokens", 1000), r"exactly one of"),
        (lambda c: c.model.__setitem__("size", "t1"), r"model\.size='t1'"),
    ],
)
def test_bad_config_is_a_clear_error_before_anything_runs(data_dir, tmp_path, change, match):
    cfg = tiny(data_dir)
    change(cfg)
    with pytest.raises((ValueError, KeyError), match=match):
        train.train_and_evaluate(cfg, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()  # nothing written, nothing compiled


def test_nan_loss_stops_with_a_clear_error_after_writing_metrics(data_dir, tmp_path):
    cfg = tiny(data_dir, optim__lr=1e30, optim__warmup_steps=0, train__num_steps=8)
    with pytest.raises(train.NonFiniteLossError, match="training loss is nan"):
        train.train_and_evaluate(cfg, str(tmp_path))
    logged = rows(tmp_path)
    assert logged and not np.isfinite(logged[-1]["loss"]) and all(np.isfinite(r["loss"]) for r in logged[:-1])
    status = json.load(open(tmp_path / "status.json"))
    assert status["status"] == "failed" and "NonFiniteLossError" in status["error"]


def _damage(step_dir: str, how: str) -> None:
    """Truncate (to half) or delete the largest file of a checkpoint's state."""
    files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(step_dir, "state")) for f in fs]
    largest = max(files, key=os.path.getsize)
    if how == "truncate":
        with open(largest, "r+b") as f:
            f.truncate(os.path.getsize(largest) // 2)
    else:
        os.remove(largest)


# orbax leaves its failed reads' coroutines unawaited: pytest reports them as unraisable; they are expected here.
unread = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@unread
@pytest.mark.parametrize("how", ["truncate", "delete"])
def test_an_unreadable_latest_checkpoint_is_moved_aside_and_the_previous_one_used(data_dir, tmp_path, how):
    cfg = tiny(data_dir, train__num_steps=9, train__checkpoint_every=3, train__keep_checkpoints=3)
    straight = str(tmp_path / "straight")
    train.train_and_evaluate(cfg, straight)
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(cfg, workdir, stop_after=6)
    _damage(os.path.join(workdir, "checkpoints", "6"), how)
    train.train_and_evaluate(cfg, workdir)
    aside = [name for name in os.listdir(workdir) if name.startswith("corrupt-checkpoint-6-")]
    assert len(aside) == 1 and os.path.isdir(os.path.join(workdir, aside[0]))  # kept, not deleted
    for x, y in zip(_final_params(workdir), _final_params(straight), strict=True):
        np.testing.assert_array_equal(x, y)  # resumed from step 3: the same run, bit for bit


@unread
def test_no_readable_checkpoint_is_an_error_not_a_restart(data_dir, tmp_path):
    from mixlab.checkpoint import CheckpointError

    cfg = tiny(data_dir, train__num_steps=9, train__checkpoint_every=3, train__keep_checkpoints=3)
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(cfg, workdir, stop_after=6)
    for step in ("3", "6"):
        _damage(os.path.join(workdir, "checkpoints", step), "truncate")
    logged = len(rows(workdir))
    with pytest.raises(CheckpointError, match="no readable checkpoint is left"):
        train.train_and_evaluate(cfg, workdir)
    assert len(rows(workdir)) == logged and json.load(open(os.path.join(workdir, "status.json")))["status"] == "failed"


def test_a_folder_without_config_json_is_checked_against_its_checkpoints_before_anything_is_written(data_dir, tmp_path):
    cfg = tiny(data_dir, train__num_steps=6, train__checkpoint_every=3)
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(cfg, workdir, stop_after=3)
    os.remove(os.path.join(workdir, "config.json"))
    before = sorted(os.listdir(workdir))
    with pytest.raises(ConfigMismatchError, match=r"seed: saved=0 now=5"):
        train.train_and_evaluate(tiny(data_dir, train__num_steps=6, train__checkpoint_every=3, seed__=5), workdir)
    assert sorted(os.listdir(workdir)) == before  # no config.json of the wrong run
    assert train.train_and_evaluate(cfg, workdir)["step"] == 6  # the original command still resumes


def test_a_run_that_cannot_start_leaves_no_folder(data_dir, tmp_path):
    """Sequences shorter than the longest biography pass the config check but not the stream: no folder is made."""
    with pytest.raises(ValueError, match="seq_len"):
        train.train_and_evaluate(tiny(data_dir, data__seq_len=16), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_too_little_disk_for_the_checkpoints_is_refused_before_training(data_dir, tmp_path, monkeypatch):
    import shutil as shutil_module

    from mixlab.checkpoint import CheckpointError

    usage = shutil_module.disk_usage(tmp_path)
    monkeypatch.setattr(train.shutil, "disk_usage", lambda path: usage._replace(free=2**20))  # 1 MiB left
    with pytest.raises(CheckpointError, match=r"1\.0 MiB free, but 3 checkpoints of .* MiB need"):
        train.train_and_evaluate(tiny(data_dir), str(tmp_path / "run"))
    assert not (tmp_path / "run" / "metrics.jsonl").exists() and read_status(tmp_path / "run")["status"] == "failed"


def test_a_failed_checkpoint_write_stops_the_run_in_one_line(data_dir, tmp_path, monkeypatch):
    from mixlab import checkpoint
    from mixlab.checkpoint import CheckpointError

    def full_disk(self, step, args, force):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.ocp.CheckpointManager, "save", full_disk)
    cfg = tiny(data_dir, train__num_steps=6, train__checkpoint_every=3)
    with pytest.raises(CheckpointError, match=r"writing checkpoint 3 to .* failed: .*No space left on device"):
        train.train_and_evaluate(cfg, str(tmp_path / "run"))
    status = read_status(tmp_path / "run")
    assert status["status"] == "failed" and "No space left on device" in status["error"]
    assert max(r["step"] for r in rows(tmp_path / "run")) == 3  # it stopped at the failed write


# Holds the run folder's lock (run_folder.lock) until killed.
HOLD_LOCK = (
    "import sys, time; from mixlab import run_folder; f = run_folder.lock(sys.argv[1]); print('held'); time.sleep(600)"
)


def test_a_folder_another_live_process_holds_is_refused_naming_it_and_left_untouched(data_dir, tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    command = [sys.executable, "-u", "-c", HOLD_LOCK, str(workdir)]
    holder = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        before = {p.name: p.read_bytes() for p in workdir.iterdir()}
        message = f"run folder {workdir} is locked by pid {holder.pid} on {socket.gethostname()} since "
        with pytest.raises(ConfigError, match=re.escape(message)):
            train.train_and_evaluate(tiny(data_dir, train__num_steps=2), str(workdir))
        cli = subprocess.run(
            [sys.executable, "-m", "mixlab.main", "--config=experiments/configs/tiny.py:runlocal"]
            + [f"--workdir={workdir}", "--jax_cache_dir="],
            cwd=REPO, env={**os.environ, "XLA_FLAGS": ""}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert cli.returncode == 2 and "Traceback" not in cli.stderr, cli.stderr
        assert cli.stderr.strip().splitlines()[-1].startswith(f"mixlab: {message}")
        assert {p.name: p.read_bytes() for p in workdir.iterdir()} == before and set(before) == {run_folder.LOCK_FILE}
    finally:
        holder.kill()  # a dead holder's lock goes with it
        holder.wait()
    assert train.train_and_evaluate(tiny(data_dir, train__num_steps=2), str(workdir))["step"] == 2
    assert json.loads((workdir / run_folder.LOCK_FILE).read_text())["pid"] == os.getpid()

"""Continual pre-training and early stops: warm start from a web-only run, the web-loss guardrail, stopping at a
target accuracy, the log-spaced eval schedule, and their bad inputs."""

import hashlib
import json
import os
import shutil

import ml_collections
import pytest

from mixlab import run_folder, train
from mixlab.config import ConfigError, base_config, validate
from tests.test_train import tiny


def _one_device(data_dir: str, **overrides) -> ml_collections.ConfigDict:
    c = tiny(data_dir, sharding__num_devices=1, **overrides)
    c.sharding.mesh.update(data=1, fsdp=1, tensor=1)
    return c


def _continual(data_dir: str, source: str, **overrides) -> ml_collections.ConfigDict:
    """Knowledge only at a high constant LR from the web-only source: the web loss rises at once."""
    c = _one_device(data_dir, data__ratio=1.0, train__num_steps=30, train__eval_every=1, **overrides)
    c.optim.update(schedule="constant", lr=1e-2, warmup_steps=0)
    c.train.update(init_from=source, guard_web_loss_rise=0.05)
    return c


def _digest(folder: str) -> dict[str, str]:
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def web_only(data_dir, tmp_path_factory) -> tuple[str, dict]:
    workdir = str(tmp_path_factory.mktemp("web_only") / "run")
    return workdir, train.train_and_evaluate(_one_device(data_dir, data__ratio=0.0), workdir)


@pytest.fixture(scope="module")
def guarded(data_dir, web_only, tmp_path_factory) -> tuple[str, dict, dict]:
    """(workdir, final row, the source folder's file hashes before the run)."""
    before = _digest(web_only[0])
    workdir = str(tmp_path_factory.mktemp("guarded") / "run")
    return workdir, train.train_and_evaluate(_continual(data_dir, web_only[0]), workdir), before


def test_eval_schedule_is_log_spaced_per_decade():
    t = base_config().train
    t.update(eval_every=0, eval_per_decade=3)
    assert sorted(train.eval_steps(t, 100, at_start=False)) == [1, 2, 5, 10, 22, 46, 100]
    t.update(eval_every=40, eval_per_decade=0)
    assert sorted(train.eval_steps(t, 100, at_start=True)) == [0, 40, 80, 100]


def test_warm_start_begins_from_the_source_and_never_writes_there(guarded, web_only):
    workdir, _, before = guarded
    rows = run_folder.read_eval_rows(workdir)
    assert rows[0]["step"] == 0  # the starting point is evaluated
    # the same parameters on the same eval set: the source's final row, to float precision
    assert rows[0]["web_loss"] == pytest.approx(web_only[1]["web_loss"], rel=1e-6)
    assert rows[0]["value_loss"] == pytest.approx(web_only[1]["value_loss"], rel=1e-6)
    assert _digest(web_only[0]) == before
    derived = json.load(open(os.path.join(workdir, "config.json")))["derived"]
    assert derived["init_from"]["ratio"] == 0.0
    assert derived["init_from"]["checkpoint"].endswith(os.path.join("checkpoints", "6"))


def test_guardrail_stops_the_run_and_says_why(guarded):
    workdir, final, _ = guarded
    rows = run_folder.read_eval_rows(workdir)
    stop = final["step"]
    assert 0 < stop < 30 and rows[-1] == final
    assert final["web_loss"] > rows[0]["web_loss"] + 0.05
    assert all(r["web_loss"] <= rows[0]["web_loss"] + 0.05 for r in rows[:-1])
    assert final["stopped"].startswith("guardrail: web loss")
    status = run_folder.read_status(workdir)
    assert status["status"] == "complete" and status["stopped"] == final["stopped"]
    assert stop in [int(p) for p in os.listdir(os.path.join(workdir, "checkpoints")) if p.isdigit()]


def test_a_stopped_run_is_complete_on_relaunch_and_resumes_to_the_same_stop(data_dir, guarded, web_only, tmp_path):
    workdir, final, _ = guarded
    assert train.train_and_evaluate(_continual(data_dir, web_only[0]), workdir) == final
    # killed before its status was written: the checkpoint at the stop and the stopped row suffice
    copy = str(tmp_path / "copy")
    shutil.copytree(workdir, copy)
    run_folder.write_status(copy, "running", None, 0.0)
    assert train.train_and_evaluate(_continual(data_dir, web_only[0]), copy) == final
    # interrupted before the stop: the resumed run stops at the same step with the same row
    part = str(tmp_path / "part")
    cfg = _continual(data_dir, web_only[0], train__checkpoint_every=1)
    assert train.train_and_evaluate(cfg, part, stop_after=final["step"] - 1)["stopped_early"]
    resumed = train.train_and_evaluate(cfg, part)
    drop = ("eval_time_s", "wall_time_s")
    assert {k: v for k, v in resumed.items() if k not in drop} == {k: v for k, v in final.items() if k not in drop}


def test_stop_at_target_accuracy(data_dir, tmp_path):
    c = _one_device(data_dir, data__ratio=1.0, data__num_people=2, train__num_steps=60, train__eval_every=5)
    c.optim.update(schedule="constant", lr=1e-2, warmup_steps=0)
    c.eval.num_people = 2
    c.train.stop_at_acc = 0.1
    final = train.train_and_evaluate(c, str(tmp_path))
    rows = run_folder.read_eval_rows(str(tmp_path))
    assert final["acc"] >= 0.1 and final["step"] < 60 and final["stopped"].startswith("target: acc")
    assert all(r["acc"] < 0.1 for r in rows[:-1])


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("train.stop_at_acc", 1.5, r"train.stop_at_acc=1.5: must be None \(off\) or in \(0, 1\]"),
        ("train.guard_web_loss_rise", 0.0, r"train.guard_web_loss_rise=0.0: the allowed rise"),
        ("train.guard_web_loss_rise", -1.0, r"train.guard_web_loss_rise=-1.0"),
        ("train.eval_per_decade", -1, r"train.eval_per_decade=-1"),
        ("optim.schedule", "flat", r"optim.schedule='flat': must be one of \('wsd', 'cosine', 'constant'\)"),
        ("train.init_from", "/nonexistent/run", r"train.init_from='/nonexistent/run': no such folder"),
    ],
)
def test_bad_values_are_refused(data_dir, key, value, message):
    c = _one_device(data_dir)
    section, name = key.split(".")
    c[section][name] = value
    with pytest.raises(ConfigError, match=message):
        validate(c)


def test_warm_start_refuses_another_shape_an_incomplete_source_and_its_own_folder(data_dir, web_only, tmp_path):
    wider = _continual(data_dir, web_only[0])
    wider.model.D = 64
    with pytest.raises(ConfigError, match=r"another shape or vocabulary: model.D: source None, run 64"):
        validate(wider)
    vocab = _continual(data_dir, web_only[0])
    vocab.data.vocab_size = 600
    with pytest.raises(ConfigError, match=r"data.vocab_size: source 1024, run 600"):
        validate(vocab)
    running = str(tmp_path / "running")
    shutil.copytree(web_only[0], running)
    run_folder.write_status(running, "running", None, 0.0)
    with pytest.raises(ConfigError, match=r"the source run is 'running', not complete"):
        validate(_continual(data_dir, running))
    with pytest.raises(ConfigError, match=r"lies inside the run folder"):
        train.train_and_evaluate(_continual(data_dir, web_only[0]), os.path.dirname(web_only[0]))
    one = os.path.join(web_only[0], "checkpoints", "6")
    assert validate(_continual(data_dir, one)) is not None  # a checkpoint folder is a source too

"""mixlab.config.validate: every bad value is refused before anything is built, naming the key and what is allowed."""

import os
import re
import subprocess
import sys

import pytest

from experiments.configs import tiny
from experiments.sweep import Sweep, grid, run_sweep
from mixlab import config as config_lib
from mixlab.config import ConfigError, ConfigMismatchError, check_same_run, config_diff, validate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def runlocal(**overrides):
    c = tiny.get_config("runlocal")
    c.sharding.num_devices = 1
    config_lib.override(c, overrides)
    return c


def test_runlocal_is_valid():
    mesh, rules = validate(runlocal())
    assert mesh.devices.size == 1 and rules["batch"] == ("data", "fsdp")


@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("optim.lr", -0.001, "must be > 0"),
        ("optim.lr", 0.0, "must be > 0"),
        ("optim.lr", float("nan"), "must be > 0"),
        ("optim.schedule", "cosinee", "must be one of ('wsd', 'cosine', 'constant')"),
        ("optim.warmup_steps", 100, "must fit in the run's 30 steps"),
        ("optim.warmup_steps", -1, "must be >= 0"),
        ("optim.decay_fraction", 2.0, "must be in [0, 1]"),
        ("optim.weight_decay", -1.0, "must be >= 0"),
        ("optim.b1", -0.1, "must be in [0, 1)"),
        ("optim.b2", 1.5, "must be in [0, 1)"),
        ("optim.b2", 1.0, "must be in [0, 1)"),
        ("optim.eps", 0.0, "must be > 0"),
        ("optim.clip_norm", -1.0, "must be > 0"),
        ("optim.grad_accum", 3, "divides data.global_batch=8"),
        ("optim.grad_accum", 0, "must be an int >= 1"),
        ("data.ratio", 1.5, "must be in [0, 1]"),
        ("data.ratio", -0.1, "must be in [0, 1]"),
        ("data.seq_len", 0, "must be an int >= 1"),
        ("data.global_batch", 0, "must be an int >= 1"),
        ("data.num_people", 0, "must be an int >= 1"),
        ("data.vocab_size", 10, "must be an int >= 258"),
        ("data.subsample", 0.0, "must be in (0, 1]"),
        ("data.subsample", 1.5, "must be in (0, 1]"),
        ("data.synbio_seed", -1, "must be >= 0"),
        ("data.power_law_groups", -1, "must be >= 0"),
        ("data.power_law_groups", 7, "must divide data.num_people=100"),
        ("data.web", "/no/such/corpus", "not a file or folder"),
        ("data.tokenizer", "/no/such/tokenizer.json", "no such file"),
        ("train.log_every", 0, "must be >= 1"),
        ("train.eval_every", -1, "must be >= 0"),
        ("train.checkpoint_every", -1, "must be >= 0"),
        ("train.milestone_every", -1, "must be >= 0"),
        ("train.keep_checkpoints", 0, "must be >= 1"),
        ("eval.num_people", 0, "must be -1 (everyone) or in [1, data.num_people=100]"),
        ("eval.num_people", 1000, "must be -1 (everyone) or in [1, data.num_people=100]"),
        ("eval.batch_size", 0, "must be >= 1"),
        ("eval.web_batches", 0, "must be >= 1"),
        ("eval.seed", -1, "must be >= 0"),
        ("sharding.num_devices", 0, "must be -1 (all) or in [1, 8]"),
    ],
)
def test_each_bad_value_is_named_with_its_range(key, value, allowed):
    with pytest.raises(ConfigError, match=re.escape(f"{key}={value!r}") + ".*" + re.escape(allowed)):
        validate(runlocal(**{key: value}))


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"data.web": "none"}, r"data\.ratio=0\.2: must be 1 with data\.web='none'"),
        ({"data.power_law_groups": 4, "data.subsample": 0.5}, r"data\.subsample=0\.5: must be 1\.0 when"),
        ({"model.size": "t1"}, r"model\.size='t1' is not a preset"),
        ({"model.H": 5}, r"model\.D=32 is not divisible by model\.H=5"),
        ({"data.pool_sizes.first_name": 0}, r"pool_sizes\['first_name'\] = 0"),
        ({"data.synthetic.zipf_exponent": 0.5}, r"zipf_exponent=0\.5 must be > 1"),
        ({"sharding.mesh.data": 3}, r"sharding\.mesh .* does not divide the 1 devices"),
        ({"sharding.rules.kv": "foo"}, r"sharding\.rules\.kv='foo': 'foo' is not a mesh axis"),
        ({"train.num_steps": 0}, r"exactly one of .* must be > 0"),
    ],
)
def test_cross_key_and_delegated_checks(overrides, match):
    c = runlocal()
    if "train.num_steps" in overrides:
        c.train.num_steps = 0
    else:
        config_lib.override(c, overrides)
    with pytest.raises(ConfigError, match=match):
        validate(c)


def test_unknown_and_missing_keys():
    c = runlocal()
    c.data.ratioo = 0.3
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['data\.ratioo'\]"):
        validate(c)
    with pytest.raises(ConfigError, match=r"unknown config key 'data\.ratoi'"):
        config_lib.override(runlocal(), {"data.ratoi": 0.3})


def test_batch_must_divide_over_the_data_parallel_devices():
    c = runlocal()
    c.sharding.num_devices = 8
    with pytest.raises(ConfigError, match=r"data\.global_batch / optim\.grad_accum=4 .* data-parallel size 8"):
        validate(runlocal(**{"optim.grad_accum": 2, "sharding.num_devices": 8}))
    validate(c)


def test_the_schedule_is_checked_once_exposures_resolve_the_run_length():
    c = runlocal(**{"train.exposures": 2.0, "optim.warmup_steps": 500})
    validate(c)  # the run length needs the data
    with pytest.raises(ConfigError, match=r"optim\.warmup_steps=500: .* must fit in the run's 4 steps"):
        config_lib.resolve_num_steps(c, knowledge_tokens_per_step=100, tokens_per_exposure=2.0, num_people=100)


def test_the_run_length_rule():
    assert config_lib.with_run_length({"train.tokens": 5, "seed": 1}) == {
        "train.num_steps": 0,
        "train.exposures": 0,
        "train.tokens": 5,
        "seed": 1,
    }
    assert config_lib.with_run_length({"seed": 1}) == {"seed": 1}
    c = runlocal(**{"train.exposures": 3.0})
    assert (c.train.num_steps, c.train.tokens, c.train.exposures) == (0, 0, 3.0)
    c = tiny.get_config("runlocal,tokens=5000")
    assert (c.train.num_steps, c.train.tokens, c.train.exposures) == (0, 5000, 0.0)


def test_the_default_sharding_rules_are_the_sharding_modules():
    from mixlab import sharding

    rules = config_lib.base_config().sharding.rules.to_dict()
    assert rules == sharding.RULES  # act_* included, so every rule can be set from a config


def test_same_run_comparison():
    a = {"a": {"b": 1, "c": 2}, "train": {"log_every": 5, "num_steps": 100}}
    b = {"a": {"b": 1, "c": 3, "d": 0}, "train": {"log_every": 50, "num_steps": 0}}
    assert config_diff(a, b) == ["a.c", "a.d", "train.num_steps"]
    assert config_diff(a, b, ignore=()) == ["a.c", "a.d", "train.log_every", "train.num_steps"]
    with pytest.raises(ConfigMismatchError, match=r"2 keys differ\): a\.c: saved=2 now=3; a\.d"):
        check_same_run(a, b, "here")  # num_steps not set now: a run given in tokens resolved it
    check_same_run(a, {**a, "train": {"log_every": 1, "num_steps": 100}, "derived": {"x": 1}}, "here")


def test_a_sweep_with_one_bad_point_fails_before_any_run(tmp_path):
    points = grid({"seed": list(range(40)), "data.ratio": [0.2]}) + [{"seed": 40, "data.ratio": 1.5}]
    sweep = Sweep(name="bad", config="experiments/configs/tiny.py:runlocal", points=points)
    with pytest.raises(ConfigError, match=r"point seed=40,ratio=1\.5: data\.ratio=1\.5: the mixing ratio"):
        run_sweep(sweep, tmp_path, prepare=None, progress=False, trainer=("false",))
    assert not any(tmp_path.iterdir())


def test_the_cli_refuses_in_one_line_with_exit_status_2(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "mixlab.main", "--config=experiments/configs/tiny.py:runlocal"]
        + [f"--workdir={tmp_path}/run", "--config.optim.schedule=cosinee", "--jax_cache_dir="],
        cwd=ROOT,
        env={**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=120,
    )  # a process of its own; the cases below are forked by the `cli` fixture
    assert out.returncode == 2
    expected = "mixlab: optim.schedule='cosinee': must be one of ('wsd', 'cosine', 'constant')"
    assert out.stderr.strip().splitlines()[-1] == expected
    assert "Traceback" not in out.stderr and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config=experiments/configs/nope.py"], "mixlab: --config=experiments/configs/nope.py: FileNotFoundError"),
        (["--config=experiments/configs/tiny.py:bogus=1"], "ValueError: config arg 'bogus': unknown key"),
        (
            ["--config=experiments/configs/tiny.py:runlocal", "--config.train.foo=1"],
            "mixlab: unknown config key 'train.foo' (from --config.train.foo=1); nearest known keys: train.tokens",
        ),
        (["--config=experiments/configs/tiny.py:runlocal", "--config.optim.lrr=1"], "nearest known keys: optim.lr,"),
    ],
)
def test_bad_config_files_and_unknown_keys_are_one_line(cli, tmp_path, args, message):
    out = cli.run("mixlab.main", *args, f"--workdir={tmp_path}/run", timeout_s=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert message in out.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()


def test_a_workdir_that_is_a_file_or_cannot_be_created_is_refused_before_anything(tmp_path):
    from mixlab import train
    from tests.test_train import tiny

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        train.train_and_evaluate(tiny(str(tmp_path)), str(blocker))
    with pytest.raises(ConfigError, match="is not a folder this process can write in"):
        train.train_and_evaluate(tiny(str(tmp_path)), str(blocker / "run"))
    assert blocker.read_text() == "not a folder" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]

"""Config files: they load, every key is known, arg strings and overrides work, docstrings match the code."""

import importlib
import os
import re
import subprocess
import sys
import time

import pytest

from experiments.configs.common import cost_summary
from mixlab import config as config_lib

CONFIGS = ("tiny", "pythia")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name):
    return importlib.import_module(f"experiments.configs.{name}")


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("arg", ["", "runlocal", "size=t100k,ratio=0.35,seed=3,people=5000,steps=777"])
def test_configs_load_with_known_keys_and_valid_values(name, arg, tmp_path):
    c = load(name).get_config(arg)
    if c.data.web not in config_lib.WEB_KEYWORDS:  # a corpus and tokenizer on local files, absent here
        with pytest.raises(config_lib.ConfigError, match=r"data\.web='data/fineweb-edu': not a file or folder"):
            config_lib.validate(c)
        (tmp_path / "tokenizer.json").write_text("{}")
        c.data.update(web=str(tmp_path), tokenizer=str(tmp_path / "tokenizer.json"))
    if arg == "runlocal":
        c.sharding.num_devices = 1  # a laptop's one CPU (these tests see 8 virtual devices)
    config_lib.validate(c)
    if "size=" in arg:
        assert (c.model.size, c.data.ratio, c.seed, c.data.num_people) == ("t100k", 0.35, 3, 5000)
        assert c.train.num_steps == 777 and type(c.data.num_people) is int


@pytest.mark.parametrize("name", CONFIGS)
def test_docstring_gives_commands_and_the_costs_the_code_computes(name):
    module = load(name)
    doc = module.__doc__
    assert f"python -m mixlab.main --config=experiments/configs/{name}.py:" in doc
    assert f"--config=experiments/configs/{name}.py:runlocal" in doc and "Expected result" in doc
    lines = re.findall(r"^    (\S+): params ([\d,]+) total / ([\d,]+) non-embedding; ([\d,]+) tokens;", doc, re.M)
    assert {arg for arg, *_ in lines} >= {"runlocal"}
    for arg, total, non_embedding, tokens in lines:
        s = cost_summary(module.get_config("" if arg == "(default)" else arg))
        got = (s["params_total"], s["params_non_embedding"], s["tokens"])
        assert got == tuple(int(x.replace(",", "")) for x in (total, non_embedding, tokens)), (arg, got)


def test_pythia_is_the_paper_setup():
    c = load("pythia").get_config("")
    assert (c.data.seq_len, c.data.global_batch, c.train.tokens) == (2048, 512, 32_000_000_000)
    assert (c.optim.schedule, c.optim.lr, c.optim.warmup_steps, c.optim.decay_fraction) == ("wsd", 1e-3, 160, 0.1)
    assert (c.optim.b1, c.optim.b2, c.optim.weight_decay, c.optim.clip_norm) == (0.9, 0.95, 0.1, 1.0)
    assert c.model.dtype == "bfloat16"


@pytest.mark.parametrize(
    "arg, match", [("sise=t1", "'sise'"), ("ratio=abc", "data.ratio"), ("fast", "'fast'"), ("steps=1.5", "train")]
)
def test_bad_arg_strings(arg, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        load("tiny").get_config(arg)


def _cli(*args, timeout=120):
    env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [sys.executable, "-m", "mixlab.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_runlocal_trains_on_cpu_in_under_a_minute(name, tmp_path):
    """Cold start included once the data is prepared (the first call may build data/ for the synthetic web)."""
    from data_gen.prepare import prepare

    prepare(config_lib.load_config(f"experiments/configs/{name}.py:runlocal").data)  # built once, outside the minute
    t0 = time.perf_counter()
    out = _cli(f"--config=experiments/configs/{name}.py:runlocal", f"--workdir={tmp_path}/run", "--jax_cache_dir=")
    assert out.returncode == 0, out.stderr[-3000:]
    assert time.perf_counter() - t0 < 60
    assert '"status": "complete"' in (tmp_path / "run" / "status.json").read_text()

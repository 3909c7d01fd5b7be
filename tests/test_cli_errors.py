"""experiments.sweep, experiments.demo and data_gen.prepare refuse bad input in one stderr line with exit status 2:
a damaged token store, a store of another tokenizer, bad flags and config values, a missing or raising file.
--debug raises the same error with its traceback (mixlab/cli.py).

Each case is `python -m <module> <args>` forked from one warm interpreter (the `cli` fixture, tests/cli_server.py);
test_real_entry_points_refuse_in_one_line starts each module as its own process."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from data_gen.prepare import prepare
from mixlab.config import base_config
from tests.processes import CliServer

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}
SWEEP_FILE = """
from experiments.sweep import Sweep


def get_sweep():
    return Sweep(name="t", config={config!r}, points=[{point!r}], fixed={fixed!r})
"""
PATH_KEYS = ("data.dir", "data.web", "data.tokenizer")  # Sweep.fixed: long tmp paths stay out of the run id


@pytest.fixture(scope="module")
def prepared(data_dir, tmp_path_factory) -> dict[str, str]:
    """A data folder holding the store of a small local corpus, as data_gen.prepare's CLI builds it: the data keys of
    a sweep point that opens it (the tiny runlocal config)."""
    root = tmp_path_factory.mktemp("prepared")
    corpus = root / "corpus.jsonl"
    text = "document {}: the quick brown fox jumps over the lazy dog."
    corpus.write_text("".join(json.dumps({"text": text.format(i)}) + "\n" for i in range(300)))
    keys = {"dir": str(root / "data"), "web": str(corpus), "tokenizer": os.path.join(data_dir, "tokenizer.json")}
    cfg = base_config().data
    cfg.update(**keys, ratio=1.0)
    prepare(cfg)
    return keys


def _copy(prepared: dict[str, str], tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A copy of the prepared data folder (to damage): its data keys and its store's folder."""
    keys = {**prepared, "dir": str(tmp_path / "data")}
    shutil.copytree(prepared["dir"], keys["dir"])
    (store,) = (Path(keys["dir"]) / "stores").iterdir()
    return keys, store


def _flip_a_byte(store: Path) -> str:
    path = store / "train" / "tokens.bin"
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))
    return f"token store file {path}: expected sha256 "


def _other_tokenizer(store: Path) -> str:
    path = store / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["tokenizer"]["fingerprint"] = "0" * 64
    path.write_text(json.dumps(manifest))
    return f"token store {store} was built with tokenizer 0000000000000000 (vocab_size "


def _args(module: str, args: tuple[str, ...]) -> list[str]:
    """The demo runs without its calibration phase (the test's sweep is all it runs)."""
    return [*args, *(["--calibration="] if module == "experiments.demo" else [])]


def _run(cli: CliServer | None, module: str, *args: str) -> subprocess.CompletedProcess:
    """The module's CLI, forked by the server, or (cli None) in a process of its own."""
    if cli is not None:
        return cli.run(module, *_args(module, args))
    command = [sys.executable, "-m", module, *_args(module, args)]
    return subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)


def _refusal(out: subprocess.CompletedProcess) -> str:
    """The one stderr line of a run refused with exit status 2 (no traceback)."""
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-3000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr[-3000:]
    return lines[0]


def _sweep_file(tmp_path: Path, point: dict, config: str = "experiments/configs/tiny.py:runlocal") -> str:
    path = tmp_path / "sweep_file.py"
    fixed = {k: v for k, v in point.items() if k in PATH_KEYS}
    rest = {k: v for k, v in point.items() if k not in PATH_KEYS}
    path.write_text(SWEEP_FILE.format(config=config, point=rest, fixed=fixed))
    return str(path)


def _point(keys: dict[str, str]) -> dict[str, str]:
    return {f"data.{k}": v for k, v in keys.items()}


def _sweep_args(tmp_path: Path, sweep_file: str) -> list[str]:
    return [f"--sweep={sweep_file}", f"--runs_dir={tmp_path / 'runs'}", "--workers=1"]


# experiments.demo runs its sweeps through the same loading and validation as experiments.sweep: one case of each
# kind is enough to show that its entry point turns them into one line too.
@pytest.mark.parametrize(
    "module, damage",
    [(m, d) for m in ("experiments.sweep", "data_gen.prepare") for d in (_flip_a_byte, _other_tokenizer)]
    + [("experiments.demo", _flip_a_byte)],
)
def test_a_damaged_or_foreign_store_is_one_line(cli, prepared, tmp_path, module, damage):
    keys, store = _copy(prepared, tmp_path)
    message = damage(store)
    if module == "data_gen.prepare":
        args = [f"--{k}={v}" for k, v in keys.items()]
    else:
        args = _sweep_args(tmp_path, _sweep_file(tmp_path, _point(keys)))
    line = _refusal(_run(cli, module, *args))
    assert line.startswith(f"{module}: ") and message in line, line
    assert not (tmp_path / "runs").exists()  # refused before any run folder


def test_debug_shows_the_traceback(prepared, tmp_path):
    keys, store = _copy(prepared, tmp_path)
    _flip_a_byte(store)
    out = _run(None, "data_gen.prepare", *[f"--{k}={v}" for k, v in keys.items()], "--debug")
    assert out.returncode == 1 and "Traceback" in out.stderr
    assert "data_gen.web.StoreIntegrityError: token store file" in out.stderr


FLAG_CASES = [
    (["--workers=-1"], "--workers=-1: must be >= 0 (0 = one per core)"),
    (["--workers=x"], "flag --workers=x: invalid literal for int() with base 10: 'x' (--helpshort lists the flags)"),
    (["--wokers=1"], "Unknown command line flag 'wokers'"),
    (["extra"], "unexpected arguments ['extra']: every argument is a --flag=value"),
]
SHARD_CASE = (["--shard_index=2", "--num_shards=2"], "--shard_index=2, --num_shards=2: need 0 <= shard_index <")


@pytest.mark.parametrize(
    "module, args, message",
    [("experiments.sweep", *case) for case in FLAG_CASES]
    + [("experiments.demo", *FLAG_CASES[0]), ("experiments.demo", ["--ensemble=0"], "--ensemble=0: must be >= 1")]
    + [("experiments.sweep", *SHARD_CASE)],
)
def test_bad_flags_are_one_line(cli, prepared, tmp_path, module, args, message):
    base = _sweep_args(tmp_path, _sweep_file(tmp_path, _point(prepared)))
    line = _refusal(_run(cli, module, *[a for a in base if not a.startswith(args[0].split("=")[0])], *args))
    assert line.startswith(f"{module}: ") and message in line, line


CONFIG_CASES = [
    ("bad value", "ratio=1.5: data.ratio=1.5: the mixing ratio must be in [0, 1]"),
    ("unknown key", "unknown config key 'data.ratioo'"),
    ("no sweep file", "--sweep=nope.py: FileNotFoundError: sweep file 'nope.py' does not exist"),
    ("raising sweep file", "ZeroDivisionError: division by zero"),
    ("no base config", "sweep 't': config nope.py: FileNotFoundError: config file 'nope.py' does not exist"),
]


@pytest.mark.parametrize(
    "module, case, message",
    [("experiments.sweep", *case) for case in CONFIG_CASES] + [("experiments.demo", *CONFIG_CASES[0])],
)
def test_bad_config_values_and_files_are_one_line(cli, prepared, tmp_path, module, case, message):
    point = _point(prepared)
    if case == "bad value":
        sweep_file = _sweep_file(tmp_path, {**point, "data.ratio": 1.5})
    elif case == "unknown key":
        sweep_file = _sweep_file(tmp_path, {**point, "data.ratioo": 0.5})
    elif case == "no sweep file":
        sweep_file = "nope.py"
    elif case == "raising sweep file":
        sweep_file = str(tmp_path / "raising.py")
        Path(sweep_file).write_text("1 / 0\n")
    else:
        sweep_file = _sweep_file(tmp_path, point, config="nope.py")
    line = _refusal(_run(cli, module, *_sweep_args(tmp_path, sweep_file)))
    assert line.startswith(f"{module}: ") and message in line, line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--vocab_size=100"], "data.vocab_size=100: must be an int >= 258"),
        (["--num_people=0"], "data.num_people=0: must be an int >= 1"),
        (["--web=nope.txt"], "data.web='nope.txt': not a file or folder; or one of ('default', 'debian-docs',"),
        (["--tokenizer=nope.json"], "data.tokenizer='nope.json': no such file"),
        (["--vocab_size=x"], "argument --vocab_size: invalid int value: 'x' (--help lists the flags)"),
        (["--bogus=1"], "unrecognized arguments: --bogus=1"),
    ],
)
def test_bad_prepare_flags_are_one_line(cli, prepared, tmp_path, args, message):
    keys = {**prepared, "dir": str(tmp_path / "data")}
    flags = [f"--{k}={v}" for k, v in keys.items() if not args[0].startswith(f"--{k}=")]
    line = _refusal(_run(cli, "data_gen.prepare", *flags, *args))
    assert line.startswith("data_gen.prepare: ") and message in line, line
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("module", ["experiments.sweep", "experiments.demo", "data_gen.prepare"])
def test_real_entry_points_refuse_in_one_line(prepared, tmp_path, module):
    """As the forked cases, from a process of its own (no warm imports)."""
    if module == "data_gen.prepare":
        args = [f"--{k}={v}" for k, v in {**prepared, "dir": str(tmp_path / "data")}.items()] + ["--num_people=0"]
        message = "data.num_people=0: must be an int >= 1"
    else:
        args = [*_sweep_args(tmp_path, _sweep_file(tmp_path, {**_point(prepared), "data.ratio": 1.5}))]
        message = "data.ratio=1.5: the mixing ratio must be in [0, 1]"
    line = _refusal(_run(None, module, *args))
    assert line.startswith(f"{module}: ") and message in line, line

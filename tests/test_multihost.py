"""Two local CPU processes (jax.distributed, gloo collectives) train the same losses as one process; a process that
dies or never starts ends the other within --distributed_timeout_s."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from mixlab import distributed, train
from mixlab.config import ConfigError
from tests.test_train import K, one_device, rows, tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIG_FILE = """
import json
import ml_collections

def get_config():
    return ml_collections.ConfigDict(json.loads({text!r}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _multihost(cfg, tmp_path) -> str:
    """A config file of `cfg` spread over 2 processes x 2 CPU devices (4-way data parallel)."""
    cfg.sharding.num_devices = -1
    cfg.sharding.mesh.update(data=-1, fsdp=1, tensor=1)
    config_path = tmp_path / "multihost_config.py"
    config_path.write_text(CONFIG_FILE.format(text=json.dumps(cfg.to_dict())))
    return str(config_path)


def _launch(config_path: str, workdir: str, port: int, process_id: int, *flags: str) -> subprocess.Popen:
    """Process `process_id` of 2 of mixlab.main, its stderr piped apart from its stdout."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    command = [sys.executable, "-m", "mixlab.main", f"--config={config_path}", f"--workdir={workdir}"]
    command += [f"--coordinator_address=localhost:{port}", "--num_processes=2", f"--process_id={process_id}"]
    return subprocess.Popen(
        [*command, "--jax_cache_dir=", *flags], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


@pytest.mark.slow  # three cold compiles (reference + 2 processes): ~1.5 CPU-minutes
def test_two_processes_equal_one(data_dir, tmp_path):
    cfg = one_device(data_dir)
    reference = str(tmp_path / "one")
    train.train_and_evaluate(cfg, reference)

    config_path = _multihost(cfg, tmp_path)
    workdir, port = str(tmp_path / "two"), _free_port()
    procs = [_launch(config_path, workdir, port, i) for i in range(2)]
    outs = ["".join(p.communicate(timeout=300)) for p in procs]
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-4000:]
    derived = json.load(open(os.path.join(workdir, "config.json")))["derived"]
    assert (derived["num_processes"], derived["num_devices"]) == (2, 4)
    a, b = rows(reference), rows(workdir)
    assert [r["step"] for r in b] == list(range(1, 2 * K + 1))
    for key in ("loss", "loss_knowledge", "loss_web", "grad_norm"):
        np.testing.assert_allclose([r[key] for r in b], [r[key] for r in a], rtol=1e-5, err_msg=key)
    ea, eb = rows(reference, "eval"), rows(workdir, "eval")
    assert [r["acc"] for r in eb] == [r["acc"] for r in ea]
    np.testing.assert_allclose([r["value_loss"] for r in eb], [r["value_loss"] for r in ea], rtol=1e-4)


def test_distributed_arguments(monkeypatch):
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "MIXLAB_DISTRIBUTED"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.maybe_initialize() is False  # nothing asked for: single process
    with pytest.raises(ConfigError, match="without a coordinator address"):
        distributed.maybe_initialize(num_processes=2, process_id=1)
    with pytest.raises(ConfigError, match="needs num_processes and process_id"):
        distributed.maybe_initialize("localhost:1234", num_processes=2)
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "localhost:1234")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_PROCESS_ID", "2")
    with pytest.raises(ConfigError, match=r"process_id=2 must be in \[0, num_processes=2\)"):
        distributed.maybe_initialize()
    monkeypatch.setenv("JAX_PROCESS_ID", "x")
    with pytest.raises(ConfigError, match="JAX_PROCESS_ID='x' is not an integer"):
        distributed.maybe_initialize()
    with pytest.raises(ConfigError, match=r"--distributed_timeout_s=0: must be an int > 0 \(seconds\)"):
        distributed.maybe_initialize(timeout_s=0)


TIMEOUT_S = 10
BOUND_S = 90  # the survivor's exit after the kill: the collective timeout, plus gloo's and a loaded machine's slack


@pytest.mark.slow  # two cold compiles, then a 10 s timeout: ~1 CPU-minute
@pytest.mark.parametrize("victim", [1, 0])
def test_a_killed_process_ends_the_other_within_the_timeout(data_dir, tmp_path, victim):
    """kill -9 of one process mid-training. Process 1 killed: process 0's next collective times out and it exits 1
    with one line naming process 1 and the timeout; its run folder says failed. Process 0 (the coordinator) killed:
    JAX ends process 1 at once (its poll of the coordination service fails), with JAX's own abort message."""
    config_path = _multihost(tiny(data_dir, train__num_steps=10_000), tmp_path)
    workdir, port = tmp_path / "run", _free_port()
    procs = [_launch(config_path, str(workdir), port, i, f"--distributed_timeout_s={TIMEOUT_S}") for i in range(2)]
    try:
        metrics, start = workdir / "metrics.jsonl", time.monotonic()
        while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            assert time.monotonic() - start < 300, "training did not start"
            time.sleep(0.2)
        procs[victim].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        survivor = procs[1 - victim]
        _, err = survivor.communicate(timeout=BOUND_S)
        elapsed = time.monotonic() - killed
    finally:
        for p in procs:
            p.kill()
            p.communicate()
    assert survivor.returncode != 0 and elapsed < BOUND_S, (survivor.returncode, elapsed, err[-3000:])
    if victim == 1:
        assert survivor.returncode == 1 and "Traceback" not in err, err[-3000:]
        assert (
            err.strip()
            .splitlines()[-1]
            .startswith(
                "mixlab: process 0 of 2: lost process 1: a collective with it did not complete (it died, or hangs past "
                "--distributed_timeout_s): "
            )
        ), err[-3000:]
        # a read error (the peer's socket reset), the 10 s timeout, or gloo's abort in its receive thread
        assert re.search(r"Gloo [\w -]+ failed|gloo::", err), err[-3000:]
        assert json.loads((workdir / "status.json").read_text())["status"] == "failed"
    else:
        assert "coordination service" in err, err[-3000:]


def test_a_process_whose_peer_never_starts_fails_joining_within_the_timeout(tmp_path):
    """Process 0 of 2 alone: one line naming the coordinator and the timeout, exit status 1, nothing written."""
    port = _free_port()
    start = time.monotonic()
    proc = _launch("experiments/configs/tiny.py:runlocal", str(tmp_path / "run"), port, 0, "--distributed_timeout_s=3")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        f"mixlab: process 0 of 2: not every process joined the coordinator at localhost:{port} within "
        "--distributed_timeout_s=3; start all of them with the same --coordinator_address and --num_processes, "
        "each with its own --process_id"
    )
    assert time.monotonic() - start < 3 + 60 and not (tmp_path / "run").exists()

"""Two local CPU processes (jax.distributed, gloo collectives) train the same losses as one process."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from mixlab import distributed, train
from tests.test_train import K, one_device, rows

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


@pytest.mark.slow  # three cold compiles (reference + 2 processes): ~1.5 CPU-minutes
def test_two_processes_equal_one(data_dir, tmp_path):
    cfg = one_device(data_dir)
    reference = str(tmp_path / "one")
    train.train_and_evaluate(cfg, reference)

    cfg.sharding.num_devices = -1
    cfg.sharding.mesh.update(data=-1, fsdp=1, tensor=1)  # 2 processes x 2 CPU devices: 4-way data parallel
    config_path = tmp_path / "multihost_config.py"
    config_path.write_text(CONFIG_FILE.format(text=json.dumps(cfg.to_dict())))
    workdir, port = str(tmp_path / "two"), _free_port()
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mixlab.main",
                f"--config={config_path}",
                f"--workdir={workdir}",
                f"--coordinator_address=localhost:{port}",
                "--num_processes=2",
                f"--process_id={i}",
                "--jax_cache_dir=",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
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
    with pytest.raises(ValueError, match="without a coordinator address"):
        distributed.maybe_initialize(num_processes=2, process_id=1)
    with pytest.raises(ValueError, match="needs num_processes and process_id"):
        distributed.maybe_initialize("localhost:1234", num_processes=2)
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "localhost:1234")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_PROCESS_ID", "2")
    with pytest.raises(ValueError, match=r"process_id=2 must be in \[0, num_processes=2\)"):
        distributed.maybe_initialize()
    monkeypatch.setenv("JAX_PROCESS_ID", "x")
    with pytest.raises(ValueError, match="JAX_PROCESS_ID='x' is not an integer"):
        distributed.maybe_initialize()

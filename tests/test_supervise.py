"""The supervising parent of a multi-process run's process (mixlab.supervise): a native abort becomes one line."""

import json
import subprocess
import sys

from mixlab import run_folder, supervise
from mixlab.distributed import Cluster

ABORT = (
    "import os, sys\n"
    "sys.stderr.write('step 2/10000 loss 6.39\\n'); sys.stderr.flush()\n"
    "sys.stderr.write(\"terminate called after throwing an instance of 'gloo::EnforceNotMet'\\n\")\n"
    "sys.stderr.write('  what():  [enforce fail at pair.cc:459] 16 vs 4. Received data size does not match\\n')\n"
    "sys.stderr.write('Fatal Python error: Aborted\\n\\nThread 0x1 (most recent call first):\\n'); sys.stderr.flush()\n"
    "os.abort()\n"
)


def _parent(tmp_path, child_code: str, process_id: int = 0) -> subprocess.CompletedProcess:
    """A parent process running `child_code` as its supervised child, for process `process_id` of 2."""
    run_folder.write_status(tmp_path, "running", None, 1.5)
    code = (
        "import sys\n"
        "from mixlab import supervise\n"
        "from mixlab.distributed import Cluster\n"
        f"cluster = Cluster('localhost:1', 2, {process_id}, False)\n"
        f"sys.exit(supervise.run_child(cluster, [{str(tmp_path)!r}], [sys.executable, '-c', {child_code!r}]))\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_a_native_abort_of_the_child_is_one_line_and_a_failed_run(tmp_path):
    out = _parent(tmp_path, ABORT)
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines[0] == "step 2/10000 loss 6.39"  # the child's log passes through
    assert len(lines) == 2 and lines[1].startswith(
        "mixlab: process 0 of 2: lost process 1: a collective with it did not complete (it died, or hangs past "
        "--distributed_timeout_s): the process aborted in the JAX runtime (SIGABRT): terminate called after "
        "throwing an instance of 'gloo::EnforceNotMet' what(): [enforce fail at pair.cc:459] 16 vs 4."
    ), out.stderr
    log = tmp_path / "abort-process0.log"
    assert str(log) in lines[1] and "Thread 0x1" in log.read_text()
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "failed" and "SIGABRT" in status["error"] and status["wall_time_s"] == 1.5


def test_process_1_leaves_the_status_to_process_0(tmp_path):
    out = _parent(tmp_path, ABORT, process_id=1)
    assert out.returncode == 1 and "process 1 of 2: lost process 0" in out.stderr.splitlines()[-1]
    assert run_folder.read_status(tmp_path)["status"] == "running"


def test_a_clean_exit_and_a_refusal_pass_through_unchanged(tmp_path):
    out = _parent(tmp_path, "import sys; sys.stderr.write('mixlab: --config.x: bad\\n'); sys.exit(2)")
    assert out.returncode == 2 and out.stderr == "mixlab: --config.x: bad\n"
    out = _parent(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    assert out.returncode == 128 + 15 and out.stderr == ""


def test_the_child_is_known_by_its_environment(monkeypatch):
    monkeypatch.delenv(supervise.SUPERVISED_ENV, raising=False)
    assert not supervise.is_child()
    monkeypatch.setenv(supervise.SUPERVISED_ENV, "1")
    assert supervise.is_child()
    assert Cluster(None, None, None, True).who() == "this process"

"""Process helpers shared by the tests: killing trainers and sweeps, and the warm interpreter that forks CLI runs
(CliServer)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def alive(pid: int) -> bool:
    """pid is a process that has not exited (a zombie, dead but not yet reaped, has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


class CliServer:
    """tests/cli_server.py as a context manager: run(module, *args) is `python -m module *args` forked from one warm
    interpreter (started with `env`), answered as a subprocess.CompletedProcess."""

    def __init__(self, env: dict[str, str]):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.cli_server"], cwd=ROOT, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def run(self, module: str, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
        self.proc.stdin.write(json.dumps({"module": module, "args": list(args), "timeout_s": timeout_s}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"tests.cli_server exited with status {self.proc.wait()}"
        reply = json.loads(line)
        return subprocess.CompletedProcess([module, *args], reply["returncode"], reply["stdout"], reply["stderr"])

    def __enter__(self) -> "CliServer":
        return self

    def __exit__(self, *exc) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)

"""mixlab.host: the malloc tunable is added once, kept out of the way of the user's own, and re-exec applies it;
a sweep's trainer refuses to start once its parent is gone."""

import os
import subprocess
import sys

import pytest

from mixlab import host

needs_tunable = pytest.mark.skipif(not host._glibc_has_tunable(), reason="glibc < 2.35 or not glibc")


@needs_tunable
def test_tuned_env_adds_the_tunable_once_and_keeps_the_users():
    assert host.tuned_env({})["GLIBC_TUNABLES"] == host.MALLOC_TUNABLE
    env = host.tuned_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "X": "1"})
    assert env == {"GLIBC_TUNABLES": f"glibc.malloc.arena_max=2:{host.MALLOC_TUNABLE}", "X": "1"}
    assert host.tuned_env(env) == env
    assert host.tuned_env({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"})["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=0"


@needs_tunable
def test_reexec_runs_the_same_command_with_the_tunable():
    code = "import os; from mixlab import host; host.reexec_tuned(); print(os.environ['GLIBC_TUNABLES'])"
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == host.MALLOC_TUNABLE


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_die_with_parent_runs_under_its_parent_and_exits_when_it_is_gone():
    code = "import os; from mixlab import host; host.die_with_parent(); print(os.environ.get(host.PARENT_PID_ENV))"
    alive = {**os.environ, host.PARENT_PID_ENV: str(os.getpid())}
    out = subprocess.run([sys.executable, "-c", code], env=alive, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"  # ran, and its own children will not inherit the variable
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = {**os.environ, host.PARENT_PID_ENV: gone.stdout.strip()}
    out = subprocess.run([sys.executable, "-c", code], env=dead, capture_output=True, text=True)
    assert out.returncode == 1 and f"parent process {gone.stdout.strip()}" in out.stderr and not out.stdout

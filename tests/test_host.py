"""mixlab.host: the malloc tunable is added once, kept out of the way of the user's own, and re-exec applies it."""

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

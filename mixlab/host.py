"""Host settings for XLA CPU: glibc's malloc on transparent huge pages.

XLA CPU allocates each step's buffers afresh; with glibc's defaults every large buffer is a new mmap whose 4 KiB
pages fault on first touch, every step. The glibc tunable `glibc.malloc.hugetlb=1` (glibc >= 2.35) makes malloc
ask for transparent huge pages, which measured 1.6-2x more train-step throughput on the tiny presets (BUILD_NOTES.md,
"CPU step time"). Tunables are read at process start, so entry points re-exec themselves once with it set, and the
sweep passes it to its workers. Without glibc, or with huge pages off in the kernel, it changes nothing.

`die_with_parent` ties a sweep's trainer to the sweep: when the sweep dies, even by SIGKILL, the kernel kills it.
"""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import sys
from collections.abc import Mapping

MALLOC_TUNABLE = "glibc.malloc.hugetlb=1"
PARENT_PID_ENV = "MIXLAB_PARENT_PID"  # set by the sweep for its trainers: the process they must not outlive
_PR_SET_PDEATHSIG = 1


def _glibc_has_tunable() -> bool:
    libc, version = platform.libc_ver()
    if libc != "glibc" or not version:
        return False
    major, minor = (int(x) for x in version.split(".")[:2])
    return (major, minor) >= (2, 35)


def tuned_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default os.environ) with MALLOC_TUNABLE added to GLIBC_TUNABLES where glibc supports it."""
    env = dict(os.environ if base is None else base)
    tunables = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t]
    if _glibc_has_tunable() and not any(t.startswith("glibc.malloc.hugetlb=") for t in tunables):
        env["GLIBC_TUNABLES"] = ":".join([*tunables, MALLOC_TUNABLE])
    return env


def reexec_tuned() -> None:
    """Re-exec this process's command line with tuned_env() unless it already holds (call it first in a main)."""
    env = tuned_env()
    if env.get("GLIBC_TUNABLES") != os.environ.get("GLIBC_TUNABLES"):
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def die_with_parent() -> None:
    """When $MIXLAB_PARENT_PID is set: on Linux, have the kernel SIGKILL this process when its parent dies
    (prctl PR_SET_PDEATHSIG; call it after any re-exec), and exit now if the named process is already gone.

    The variable is removed, so that this process's own children do not inherit it. A wrapper between the two
    (the named process alive but not the parent) is allowed: the signal then follows the wrapper.
    """
    parent = os.environ.pop(PARENT_PID_ENV, None)
    if parent is None or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != int(parent) and not _alive(int(parent)):
        sys.exit(f"mixlab: the parent process {parent} ({PARENT_PID_ENV}) is gone; not starting")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


if __name__ == "__main__":  # python -m mixlab.host <module> [args...]: run `python -m <module>` with tuned_env()
    if len(sys.argv) < 2:
        sys.exit("usage: python -m mixlab.host <module> [args...]")
    os.execve(sys.executable, [sys.executable, "-m", *sys.argv[1:]], tuned_env())

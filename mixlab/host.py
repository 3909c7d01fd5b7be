"""Host settings for XLA CPU: glibc's malloc on transparent huge pages.

XLA CPU allocates each step's buffers afresh; with glibc's defaults every large buffer is a new mmap whose 4 KiB
pages fault on first touch, every step. The glibc tunable `glibc.malloc.hugetlb=1` (glibc >= 2.35) makes malloc
ask for transparent huge pages, which measured 1.6-2x more train-step throughput on the tiny presets (BUILD_NOTES.md,
"CPU step time"). Tunables are read at process start, so entry points re-exec themselves once with it set, and the
sweep passes it to its workers. Without glibc, or with huge pages off in the kernel, it changes nothing.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping

MALLOC_TUNABLE = "glibc.malloc.hugetlb=1"


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


if __name__ == "__main__":  # python -m mixlab.host <module> [args...]: run `python -m <module>` with tuned_env()
    if len(sys.argv) < 2:
        sys.exit("usage: python -m mixlab.host <module> [args...]")
    os.execve(sys.executable, [sys.executable, "-m", *sys.argv[1:]], tuned_env())

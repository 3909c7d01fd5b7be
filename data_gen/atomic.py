"""Publish a built directory atomically, so concurrent builders (parallel sweep workers, several hosts on a shared
file system) never see or clobber each other's half-written output."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def building(final: Path) -> Iterator[Path]:
    """Yield a fresh private directory next to `final`; when the block succeeds it is renamed to `final`.

    If another process published `final` first, that result is kept and ours discarded (builders of the same path
    build the same content). The private directory is always removed on failure."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp makes it private (0700)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

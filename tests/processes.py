"""Process helpers shared by the tests that kill trainers and sweeps."""

import os
from pathlib import Path


def alive(pid: int) -> bool:
    """pid is a process that has not exited (a zombie, dead but not yet reaped, has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"

"""A supervising parent for each process of a multi-process run: a native abort becomes one line.

When one process of a jax.distributed run dies mid-collective, another can die inside the collective runtime
itself before any Python error is raised (gloo throws in its receive thread, std::terminate, SIGABRT): nothing in
that process can turn it into mixlab.cli's one line. So `python -m mixlab.main` in a multi-process run does its
work in a child (MIXLAB_SUPERVISED=1, killed by the kernel if this parent dies) and passes the child's stderr
through line by line. From the first line of a native abort on, the lines go to <workdir>/abort-process<id>.log
instead; if the child then dies of a signal, process 0 marks its runs failed and the parent ends with one line
(mixlab.distributed.lost_peer_message) naming the abort and that file, exit status 1. SIGTERM, SIGINT and SIGHUP
are passed on to the child; a child killed by one of them ends the parent with status 128 + the signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from mixlab import distributed, host, run_folder

SUPERVISED_ENV = "MIXLAB_SUPERVISED"
ABORT_MARKERS = (b"terminate called", b"Fatal Python error")  # the first line of a native abort's output
NATIVE_CRASHES = (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE)
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def is_child() -> bool:
    return os.environ.get(SUPERVISED_ENV) == "1"


def run_child(cluster: distributed.Cluster, workdirs: list[str], command: list[str] | None = None) -> int:
    """Run `command` (default: this command line again) as the supervised child; return the exit status this
    process should end with."""
    env = {**os.environ, SUPERVISED_ENV: "1", host.PARENT_PID_ENV: str(os.getpid())}
    command = command or [sys.executable, *sys.orig_argv[1:]]
    child = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    for sig in FORWARDED:
        signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
    held: list[bytes] = []
    for line in child.stderr:
        if held or line.startswith(ABORT_MARKERS):
            held.append(line)
        else:
            sys.stderr.buffer.write(line)
            sys.stderr.buffer.flush()
    code = child.wait()
    if code >= 0:
        if held:
            sys.stderr.buffer.write(b"".join(held))
        return code
    if -code not in NATIVE_CRASHES:
        return 128 - code
    return _report_crash(cluster, workdirs, signal.Signals(-code).name, held)


def _report_crash(cluster: distributed.Cluster, workdirs: list[str], name: str, held: list[bytes]) -> int:
    text = b"".join(held).decode(errors="replace")
    lines = [ln.strip() for ln in text.splitlines()]
    first = f": {lines[0]}" if lines else ""
    what = next((f" {ln}" for ln in lines if ln.startswith("what():")), "")
    detail = f"the process aborted in the JAX runtime ({name}){first}{what}"
    if workdirs:
        log = Path(workdirs[0]) / f"abort-process{cluster.process_id if cluster.process_id is not None else 'x'}.log"
        log.write_text(text)
        detail += f"; its output is in {log}"
    if cluster.process_id in (0, None):  # process 0 writes each run's status (mixlab.train)
        for workdir in workdirs:
            status = run_folder.read_status(workdir)
            if status["status"] == "running":
                run_folder.write_status(workdir, "failed", detail, status.get("wall_time_s") or 0.0)
    if cluster.auto or cluster.process_id is None or cluster.num_processes is None:
        message = f"{cluster.who()}: {detail}"
    else:
        message = distributed.lost_peer_message(cluster.process_id, cluster.num_processes, detail)
    print(f"mixlab: {message}", file=sys.stderr, flush=True)
    return 1

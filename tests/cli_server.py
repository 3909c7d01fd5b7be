"""`python -m <module> <args>` many times from one warm interpreter, for the tests of the command-line refusals.

Started once (tests.processes.CliServer), it imports what the entry points import (jax, flax, orbax, pandas,
mixlab, analysis, data_gen; no jax backend is created, so forking is safe), then for each request line on stdin
(JSON: {"module", "args", "timeout_s"}) forks a child that runs the module as __main__ with those arguments, its stdout
and stderr to files, exactly as `python -m` would (a SystemExit's status, 1 and the traceback on an uncaught error),
and answers one JSON line: {"returncode", "stdout", "stderr"}. A child still running after timeout_s is SIGKILLed
(returncode -9). Each child pays its own work, not the ~2.5 s of imports.
"""

import json
import os
import runpy
import signal
import sys
import tempfile
import time
import traceback
import warnings

from ml_collections import config_flags  # noqa: F401

# What the entry points import, which every child would otherwise repeat; not the modules that define their flags at
# import (mixlab.main, experiments.demo, experiments.findings: each child defines them once, running one).
import analysis.findings  # noqa: F401
import analysis.forecast  # noqa: F401
import analysis.report  # noqa: F401
import analysis.verdicts  # noqa: F401
import data_gen.prepare  # noqa: F401
import experiments.configs.findings  # noqa: F401
import experiments.sweep  # noqa: F401
import mixlab.sources  # noqa: F401
import mixlab.train  # noqa: F401


def _child(module: str, args: list[str], out: str, err: str) -> None:
    """Run `module` as __main__ with `args`; never returns."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    for fd, path in ((1, out), (2, err)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_TRUNC), fd)
    sys.argv = [module, *args]
    # The module is already imported (warm), which runpy warns about; experiments.sweep's __main__ runs the
    # importable module, as it would import it under `python -m`.
    warnings.filterwarnings("ignore", r"'[\w.]+' found in sys.modules after import of package", RuntimeWarning)
    status = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            status = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            status = 1
    except BaseException:
        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _wait(pid: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        time.sleep(0.005)


def serve() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        with tempfile.TemporaryDirectory() as tmp:
            out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
            for path in (out, err):
                open(path, "w").close()
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                _child(request["module"], request["args"], out, err)
            returncode = _wait(pid, request["timeout_s"])
            with open(out) as o, open(err) as e:
                reply = {"returncode": returncode, "stdout": o.read(), "stderr": e.read()}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    serve()

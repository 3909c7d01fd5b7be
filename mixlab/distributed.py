"""Multi-host start-up: jax.distributed.initialize when flags or the environment ask for it, with bounded waits.

JAX's own multi-controller runtime, no extra layer: every process runs the same program, owns its local devices,
and feeds its own rows of each global batch. Arguments come from the flags, else from the environment variables
JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID; `auto` (or MIXLAB_DISTRIBUTED=auto) lets JAX detect
the cluster (Slurm, Open MPI, Cloud TPU). On CPU, cross-process collectives use gloo.

No wait on another process is unbounded. `timeout_s` (mixlab.main --distributed_timeout_s) bounds
- joining: every process must reach the coordinator within it (a watchdog here; else DistributedError, one line);
- each CPU collective (XLA's --xla_cpu_collective_timeout_seconds, gloo's wait): a process that died or hangs fails
  the others' next collective, which `collectives_checked` turns into a DistributedError naming them;
- the shutdown barrier at exit (JAX's shutdown_timeout_seconds).
JAX's own deadlines (initialization_timeout, heartbeat_timeout_seconds: a process that stops sending heartbeats is
dead, and JAX aborts every other one) are set BACKSTOP_S later, so that they end, with JAX's multi-line abort, only
what the one-line errors could not (e.g. a process waiting outside a collective). Gloo also gives up on a new
collective group whose members do not all arrive within 30 s of each other (XLA's fixed key-value timeout).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import jax

from mixlab.config import ConfigError

DEFAULT_TIMEOUT_S = 300  # JAX's own default initialization_timeout
BACKSTOP_S = 60
_COLLECTIVE_TIMEOUT_FLAG = "--xla_cpu_collective_timeout_seconds"
_GLOO_FAILURE = re.compile(r"Gloo [\w -]+ failed")


class DistributedError(RuntimeError):
    """The processes of a multi-process run did not reach each other in time: one died, hangs or never started."""


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer") from None


@dataclass(frozen=True)
class Cluster:
    """The processes a multi-process run was asked for; with `auto`, JAX detects the rest (None here)."""

    coordinator_address: str | None
    num_processes: int | None
    process_id: int | None
    auto: bool

    def who(self) -> str:
        return "this process" if self.auto else f"process {self.process_id} of {self.num_processes}"


def requested(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    auto: bool = False,
) -> Cluster | None:
    """The multi-process run the flags (or the JAX_* environment variables, or MIXLAB_DISTRIBUTED=auto) ask for,
    None for a single process; ConfigError for arguments that cannot work."""
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    num_processes = num_processes if num_processes is not None else _env_int("JAX_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _env_int("JAX_PROCESS_ID")
    auto = auto or os.environ.get("MIXLAB_DISTRIBUTED", "") == "auto"
    if not auto and coordinator_address is None:
        if num_processes not in (None, 1) or process_id not in (None, 0):
            raise ConfigError(
                f"num_processes={num_processes}, process_id={process_id} given without a coordinator address "
                "(--coordinator_address or JAX_COORDINATOR_ADDRESS)"
            )
        return None
    if not auto:
        if num_processes is None or process_id is None:
            raise ConfigError(
                f"coordinator_address={coordinator_address!r} needs num_processes and process_id "
                "(flags or JAX_NUM_PROCESSES / JAX_PROCESS_ID), or use auto detection"
            )
        if not 0 <= process_id < num_processes:
            raise ConfigError(f"process_id={process_id} must be in [0, num_processes={num_processes})")
    return Cluster(coordinator_address, num_processes, process_id, auto)


def lost_peer_message(me: int, count: int, detail: str) -> str:
    """The one line of a process whose collective with the others failed (collectives_checked, mixlab.supervise)."""
    others = ", ".join(str(i) for i in range(count) if i != me)
    lost = f"process {others}" if count == 2 else f"one of processes {others}"
    return (
        f"process {me} of {count}: lost {lost}: a collective with it did not complete (it died, or hangs past "
        f"--distributed_timeout_s): {' '.join(detail.split())}"
    )


def maybe_initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    auto: bool = False,
    timeout_s: int = DEFAULT_TIMEOUT_S,
) -> bool:
    """Call jax.distributed.initialize if asked to (`requested`), every wait bounded by `timeout_s`; return whether
    it ran.

    Must run before anything touches a JAX backend. Bad arguments are a ConfigError; processes that do not all join
    within `timeout_s` end this one (DistributedError, one line, mixlab.cli.fail_now).
    """
    if not (isinstance(timeout_s, int) and timeout_s > 0):
        raise ConfigError(f"--distributed_timeout_s={timeout_s!r}: must be an int > 0 (seconds)")
    cluster = requested(coordinator_address, num_processes, process_id, auto)
    if cluster is None:
        return False
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # only affects CPU devices
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_COLLECTIVE_TIMEOUT_FLAG}={timeout_s}".strip()
    where = "the detected coordinator" if cluster.auto else f"the coordinator at {cluster.coordinator_address}"
    late = DistributedError(
        f"{cluster.who()}: not every process joined {where} within --distributed_timeout_s={timeout_s}; start all of "
        "them with the same --coordinator_address and --num_processes, each with its own --process_id"
    )
    with _watchdog(timeout_s, late):
        jax.distributed.initialize(
            cluster.coordinator_address,
            cluster.num_processes,
            cluster.process_id,
            initialization_timeout=timeout_s + BACKSTOP_S,
            heartbeat_timeout_seconds=timeout_s + BACKSTOP_S,
            shutdown_timeout_seconds=timeout_s,
        )
    return True


@contextlib.contextmanager
def _watchdog(seconds: float, error: DistributedError) -> Iterator[None]:
    """End the process with `error` (mixlab.cli.fail_now) unless the block finishes within `seconds`: JAX's joining
    blocks in C++, where no Python exception can reach it, and its own deadline aborts with a stack dump."""
    from mixlab import cli

    timer = threading.Timer(seconds, cli.fail_now, (error,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@contextlib.contextmanager
def collectives_checked() -> Iterator[None]:
    """Inside, a failed gloo collective of a multi-process run (another process died, or hung past the collective
    timeout) is a DistributedError naming this process and the others; anything else passes unchanged."""
    try:
        yield
    except jax.errors.JaxRuntimeError as e:
        if jax.process_count() == 1 or not _GLOO_FAILURE.search(str(e)):
            raise
        raise DistributedError(lost_peer_message(jax.process_index(), jax.process_count(), str(e))) from e

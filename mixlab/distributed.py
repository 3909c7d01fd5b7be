"""Multi-host start-up: jax.distributed.initialize when flags or the environment ask for it.

JAX's own multi-controller runtime, no extra layer: every process runs the same program, owns its local devices,
and feeds its own rows of each global batch. Arguments come from the flags, else from the environment variables
JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID; `auto` (or MIXLAB_DISTRIBUTED=auto) lets JAX detect
the cluster (Slurm, Open MPI, Cloud TPU). On CPU, cross-process collectives use gloo.
"""

from __future__ import annotations

import os

import jax


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as e:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from e


def maybe_initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    auto: bool = False,
) -> bool:
    """Call jax.distributed.initialize if asked to; return whether it ran.

    Must run before anything touches a JAX backend. Asked for: `auto`, MIXLAB_DISTRIBUTED=auto, or a coordinator
    address (flag or JAX_COORDINATOR_ADDRESS), which then needs the process count and id as well.
    """
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    num_processes = num_processes if num_processes is not None else _env_int("JAX_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _env_int("JAX_PROCESS_ID")
    auto = auto or os.environ.get("MIXLAB_DISTRIBUTED", "") == "auto"
    if not auto and coordinator_address is None:
        if num_processes not in (None, 1) or process_id not in (None, 0):
            raise ValueError(
                f"num_processes={num_processes}, process_id={process_id} given without a coordinator address "
                "(--coordinator_address or JAX_COORDINATOR_ADDRESS)"
            )
        return False
    if not auto:
        if num_processes is None or process_id is None:
            raise ValueError(
                f"coordinator_address={coordinator_address!r} needs num_processes and process_id "
                "(flags or JAX_NUM_PROCESSES / JAX_PROCESS_ID), or use auto detection"
            )
        if not 0 <= process_id < num_processes:
            raise ValueError(f"process_id={process_id} must be in [0, num_processes={num_processes})")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # only affects CPU devices
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    return True

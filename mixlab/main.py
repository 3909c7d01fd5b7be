"""Train one run: `python -m mixlab.main --config=<file.py[:arg]> --workdir=<run folder> [--config.x.y=...]`.

    python -m mixlab.main --config=experiments/configs/tiny.py:runlocal --workdir=runs/tiny

The workdir receives config.json (resolved), metrics.jsonl, eval.jsonl, checkpoints/ and status.json
(mixlab/run_folder.py). Relaunching with the same workdir resumes from the latest checkpoint. Multi-host: pass
--coordinator_address/--num_processes/--process_id (or the JAX_* environment variables, or --distributed_auto) to
every process. A config that cannot work is refused before anything is built, with one line naming the key and the
allowed range, and exit status 2.
"""

from __future__ import annotations

import os
import sys

import jax
from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from mixlab import distributed, host, train
from mixlab.config import ConfigError, ConfigMismatchError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config: path/to/config.py[:arg].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder (created; resumed if it holds a checkpoint).")
_STOP_AFTER = flags.DEFINE_integer("stop_after", None, "End this session after this many steps (checkpointed).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "Multi-host: host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's id.")
_AUTO = flags.DEFINE_bool("distributed_auto", False, "Multi-host: let JAX detect the cluster (Slurm, MPI, TPU).")
_JAX_CACHE = flags.DEFINE_string(
    "jax_cache_dir",
    os.environ.get("JAX_COMPILATION_CACHE_DIR", ".cache/jax"),
    "Persistent XLA compilation cache shared by runs of equal shapes ('' = off).",
)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every checkpoint step at INFO
    distributed.maybe_initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value, _AUTO.value)
    if _JAX_CACHE.value:
        jax.config.update("jax_compilation_cache_dir", _JAX_CACHE.value)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # eval compiles many small programs
    train.logging.info(
        "JAX %s: %d processes, %d devices (%s)",
        jax.__version__,
        jax.process_count(),
        jax.device_count(),
        jax.devices()[0].device_kind,
    )
    try:
        train.train_and_evaluate(_CONFIG.value, _WORKDIR.value, stop_after=_STOP_AFTER.value)
    except (ConfigError, ConfigMismatchError) as e:
        print(f"mixlab: {e}", file=sys.stderr)
        sys.exit(2)


def run() -> None:
    host.reexec_tuned()
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)


if __name__ == "__main__":
    run()

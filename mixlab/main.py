"""Train one run: `python -m mixlab.main --config=<file.py[:arg]> --workdir=<run folder> [--config.x.y=...]`.

    python -m mixlab.main --config=experiments/configs/tiny.py:runlocal --workdir=runs/tiny

An ensemble (K runs of one shape in one program, mixlab.train.train_ensemble) takes --members instead of --workdir:
a JSON list of {"workdir": ..., "overrides": {dotted key: value}}, each member's overrides applied on top of the
config and its --config.* flags; members may differ only in mixlab.config.MEMBER_KEYS.

The workdir receives config.json (resolved), metrics.jsonl, eval.jsonl, checkpoints/ and status.json
(mixlab/run_folder.py). Relaunching with the same workdir resumes from the latest checkpoint; a launch on a folder
that another live process holds (run_folder.lock) is refused in one line naming it. Multi-host: pass
--coordinator_address/--num_processes/--process_id (or the JAX_* environment variables, or --distributed_auto) to
every process; --distributed_timeout_s bounds every wait on the others (joining, each collective, the exit), so
that a process that dies or never starts ends the others within it, in one line and exit status 1
(mixlab/distributed.py); each process runs its work in a supervised child, so that a native abort in the collective
runtime ends it with that one line too (mixlab/supervise.py). A config that cannot work is refused before anything
is built, with one line naming the key and the allowed range, and exit status 2 (mixlab/cli.py; --debug shows the
traceback).
"""

from __future__ import annotations

import difflib
import json
import os
import sys

import jax
from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from mixlab import cli, distributed, host, supervise, train
from mixlab.config import ConfigError, flatten, load_config, loading, override

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config: path/to/config.py[:arg].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder (created; resumed if it holds a checkpoint).")
_MEMBERS = flags.DEFINE_string(
    "members", None, 'Ensemble: JSON list of {"workdir": ..., "overrides": {...}} (instead of --workdir).'
)
_STOP_AFTER = flags.DEFINE_integer("stop_after", None, "End this session after this many steps (checkpointed).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "Multi-host: host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's id.")
_AUTO = flags.DEFINE_bool("distributed_auto", False, "Multi-host: let JAX detect the cluster (Slurm, MPI, TPU).")
_TIMEOUT = flags.DEFINE_integer(
    "distributed_timeout_s",
    distributed.DEFAULT_TIMEOUT_S,
    "Multi-host: seconds a process waits for the others (to join, at each collective, at exit) before it fails.",
)
_JAX_CACHE = flags.DEFINE_string(
    "jax_cache_dir",
    os.environ.get("JAX_COMPILATION_CACHE_DIR", ".cache/jax"),
    "Persistent XLA compilation cache shared by runs of equal shapes ('' = off).",
)


def main(argv: list[str]) -> None:
    with cli.one_line_errors("mixlab"):
        cli.no_arguments(argv)
        cluster = distributed.requested(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value, _AUTO.value)
        if cluster is not None and not supervise.is_child():
            sys.exit(supervise.run_child(cluster, _workdirs()))
        _main()


def _workdirs() -> list[str]:
    """The run folders of --workdir or --members, as far as they parse (the child refuses a bad list)."""
    if _WORKDIR.value is not None:
        return [_WORKDIR.value]
    try:
        return [str(m["workdir"]) for m in json.loads(_MEMBERS.value or "[]")]
    except (json.JSONDecodeError, TypeError, KeyError):
        return []


def _main() -> None:
    if not flags.FLAGS["verbosity"].present:
        absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every checkpoint step at INFO
    distributed.maybe_initialize(
        _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value, _AUTO.value, _TIMEOUT.value
    )
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
    with distributed.collectives_checked():
        if _MEMBERS.value is None:
            if _WORKDIR.value is None:
                raise ConfigError("--workdir (or --members) is required")
            train.train_and_evaluate(_CONFIG.value, _WORKDIR.value, stop_after=_STOP_AFTER.value)
        else:
            configs, workdirs = member_configs(_CONFIG.value, _MEMBERS.value)
            train.train_ensemble(configs, workdirs, stop_after=_STOP_AFTER.value)


def member_configs(config, members_json: str) -> tuple[list, list[str]]:
    """(configs, workdirs) of --members: the config with each member's overrides; ConfigError for a bad list."""
    try:
        members = json.loads(members_json)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--members is not JSON: {e}") from None
    ok = isinstance(members, list) and members and all(isinstance(m, dict) and "workdir" in m for m in members)
    if not ok or _WORKDIR.value is not None:
        raise ConfigError(
            '--members must be a non-empty JSON list of {"workdir": ..., "overrides": {...}}, '
            "given instead of --workdir"
        )
    configs = []
    for i, member in enumerate(members):
        c = config.copy_and_resolve_references()
        override(c, member.get("overrides", {}), f"--members[{i}]")
        configs.append(c)
    return configs, [str(m["workdir"]) for m in members]


def preflight(argv: list[str]) -> None:
    """ConfigError, before absl parses the flags, for a --config file that cannot be loaded or a --config.<key>
    that is not one of its keys (absl would print the config loader's traceback instead of one line)."""
    spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
    if spec is None:
        return
    with loading(f"--config={spec}"):
        config = load_config(spec)
    known = list(flatten(config.to_dict()))
    for arg in argv:
        if arg.startswith("--config.") and arg.split("=", 1)[0][len("--config.") :] not in known:
            key = arg.split("=", 1)[0][len("--config.") :]
            near = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
            hint = f"; nearest known keys: {', '.join(near)}" if near else ""
            raise ConfigError(f"unknown config key {key!r} (from {arg}){hint}")


def run() -> None:
    host.reexec_tuned()
    host.die_with_parent()  # after the re-exec: a sweep's trainer dies with the sweep
    with cli.one_line_errors("mixlab"):
        preflight(sys.argv[1:])
    flags.mark_flags_as_required(["config"])
    app.run(main, flags_parser=cli.flags_parser("mixlab"))


if __name__ == "__main__":
    run()

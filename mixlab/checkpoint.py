"""Orbax checkpoints of the train state (params, optimizer state, step, RNG) plus a JSON record of the run.

A checkpoint is saved under the number of completed steps, atomically (orbax writes to a temporary directory and
renames it on commit). The last `keep` checkpoints are kept, plus every multiple of `milestone_every`. The data
position is the step itself, since batches are a pure function of (seed, step). Arrays are restored into the shardings
of the abstract state passed in, so a checkpoint written on 8 devices restores on 1 (or any other mesh).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from mixlab.config import check_same_run


def _handler_registry() -> ocp.handlers.DefaultCheckpointHandlerRegistry:
    """Pytree items saved without replica-parallel slicing: each replicated array is written whole by replica 0.

    Orbax's default splits every replicated array across its replicas, which compiles a slice per array shape and
    device set (over ten seconds per save of a tiny model on 8 CPU devices); our states are small per replica.
    """
    th = ocp.type_handlers
    types = th.create_type_handler_registry(
        (int, th.ScalarHandler()),
        (float, th.ScalarHandler()),
        (np.number, th.ScalarHandler()),
        (np.ndarray, th.NumpyHandler()),
        (jax.Array, th.ArrayHandler(use_replica_parallel=False)),
        (str, th.StringHandler()),
    )
    pytree = ocp.handlers.PyTreeCheckpointHandler(type_handler_registry=types)
    registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
    registry.add("state", ocp.args.PyTreeSave, pytree)
    registry.add("state", ocp.args.PyTreeRestore, pytree)
    registry.add("meta", ocp.args.JsonSave, ocp.handlers.JsonCheckpointHandler())
    registry.add("meta", ocp.args.JsonRestore, ocp.handlers.JsonCheckpointHandler())
    return registry


class CheckpointError(RuntimeError):
    """No checkpoint of a run that has some can be restored (each unreadable one was moved aside, not deleted)."""


def state_bytes(state: Any) -> int:
    """Bytes of one checkpoint of `state` (all its arrays), before orbax's small metadata files."""
    return sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(state))


class CorruptCheckpointError(RuntimeError):
    """One checkpoint could not be read; it has been moved aside (the message says where)."""


def read_only_manager(directory: str) -> ocp.CheckpointManager:
    """A manager of the checkpoints under `directory` that never writes there (e.g. another run's folder)."""
    options = ocp.CheckpointManagerOptions(create=False, read_only=True)
    return ocp.CheckpointManager(os.path.abspath(directory), options=options, handler_registry=_handler_registry())


def saved_config(directory: str) -> dict[str, Any] | None:
    """The config recorded in the newest checkpoint under `directory` (None: no checkpoint), read without writing."""
    if not os.path.isdir(directory):
        return None
    with read_only_manager(directory) as m:
        step = m.latest_step()
        if step is None:
            return None
        return m.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]["config"]


class Checkpointer:
    """Saves and restores {'state': pytree of arrays, 'meta': JSON dict (config, timers, ...)} by step."""

    def __init__(self, directory: str, keep: int, milestone_every: int, config: Mapping[str, Any]):
        if keep < 1:
            raise ValueError(f"train.keep_checkpoints={keep}: must be >= 1")
        if milestone_every < 0:
            raise ValueError(f"train.milestone_every={milestone_every}: must be >= 0 (0 = no milestones)")
        policy: policies.PreservationPolicy = policies.LatestN(n=keep)
        if milestone_every > 0:
            policy = policies.AnyPreservationPolicy([policy, policies.EveryNSteps(interval_steps=milestone_every)])
        self.config = dict(config)
        self.directory = os.path.abspath(directory)
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(preservation_policy=policy, create=True),
            handler_registry=_handler_registry(),
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any, meta: Mapping[str, Any]) -> None:
        """Save asynchronously (the device-to-host copy completes before this returns, so `state` may be donated).

        A failed write (of this save, or of the previous one, which finished in the background) raises
        CheckpointError in one line: training does not go on without its checkpoints.
        """
        record = {"step": int(step), "config": self.config, **meta}
        args = ocp.args.Composite(state=ocp.args.PyTreeSave(state), meta=ocp.args.JsonSave(record))
        with self._write_errors(step):
            self._manager.check_for_errors()
            self._manager.save(int(step), args=args, force=True)

    @contextlib.contextmanager
    def _write_errors(self, step: int) -> Iterator[None]:
        try:
            yield
        except Exception as e:  # orbax wraps OSError (disk full, permissions) in several ways
            reason = (str(e).strip().splitlines() or [type(e).__name__])[-1][:300]
            raise CheckpointError(f"writing checkpoint {step} to {self.directory} failed: {reason}") from None

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Restore `step` (default: latest) into the shapes, dtypes and shardings of `abstract_state`.

        The saved config must be this Checkpointer's config (mixlab.config.check_same_run: ConfigMismatchError).
        A checkpoint that cannot be read (a truncated or missing file) is moved aside and CorruptCheckpointError
        raised, so that the caller can fall back to an older one.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        try:
            meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        except Exception as e:  # orbax and tensorstore raise many kinds for a damaged checkpoint
            raise self._quarantine(step, e) from None
        check_same_run(meta["config"], self.config, f"checkpoint {self.directory} step {step}")
        target = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), abstract_state
        )
        restore = ocp.args.PyTreeRestore(target, restore_args=ocp.checkpoint_utils.construct_restore_args(target))
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(state=restore))
        except Exception as e:
            raise self._quarantine(step, e) from None
        return restored["state"], meta

    def _quarantine(self, step: int, error: Exception) -> CorruptCheckpointError:
        """Move checkpoint `step` aside (never delete it) and describe why, for the caller to raise."""
        source = os.path.join(self.directory, str(step))
        target = os.path.join(os.path.dirname(self.directory), f"corrupt-checkpoint-{step}-{int(time.time())}")
        os.replace(source, target)
        self._manager.reload()
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        message = f"checkpoint {source} cannot be read ({type(error).__name__}: {reason}); moved to {target}"
        logging.getLogger("mixlab.train").warning("%s", message)
        return CorruptCheckpointError(message)

    def close(self) -> None:
        with self._write_errors(self.latest_step() or 0):
            self._manager.wait_until_finished()
            self._manager.check_for_errors()
        self._manager.close()

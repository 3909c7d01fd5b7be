"""Orbax checkpoints of the train state (params, optimizer state, step, RNG) plus a JSON record of the run.

A checkpoint is saved under the number of completed steps, atomically (orbax writes to a temporary directory and
renames it on commit). The last `keep` checkpoints are kept, plus every multiple of `milestone_every`. The data
position is the step itself, since batches are a pure function of (seed, step). Arrays are restored into the shardings
of the abstract state passed in, so a checkpoint written on 8 devices restores on 1 (or any other mesh).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

# Config keys that may change between a checkpoint and its resumption: how the run is laid out and monitored, not
# what it computes. Entries ending in "." are prefixes.
RUNTIME_KEYS = (
    "sharding.",
    "train.log_every",
    "train.eval_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.milestone_every",
    "train.tensorboard",
    "eval.batch_size",
    "data.dir",
)


class ConfigMismatchError(ValueError):
    """The config of a run folder or checkpoint differs from the config of the run trying to use it."""


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def config_diff(saved: Mapping[str, Any], current: Mapping[str, Any], ignore=RUNTIME_KEYS) -> list[str]:
    """Dotted keys whose values differ (or exist on one side only), skipping the runtime keys in `ignore`."""
    a, b = flatten(saved), flatten(current)

    def ignored(key: str) -> bool:
        return any(key.startswith(k) if k.endswith(".") else key == k for k in ignore)

    return sorted(k for k in a.keys() | b.keys() if not ignored(k) and a.get(k, "<missing>") != b.get(k, "<missing>"))


def check_config(saved: Mapping[str, Any], current: Mapping[str, Any], where: str) -> None:
    """Raise ConfigMismatchError listing each differing key with both values."""
    diff = config_diff(saved, current)
    if diff:
        a, b = flatten(saved), flatten(current)
        lines = "; ".join(f"{k}: saved={a.get(k, '<missing>')!r} now={b.get(k, '<missing>')!r}" for k in diff)
        raise ConfigMismatchError(f"{where} was written with a different config ({len(diff)} keys differ): {lines}")


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

    def save(self, step: int, state: Any, meta: Mapping[str, Any]) -> None:
        """Save asynchronously (the device-to-host copy completes before this returns, so `state` may be donated)."""
        record = {"step": int(step), "config": self.config, **meta}
        args = ocp.args.Composite(state=ocp.args.PyTreeSave(state), meta=ocp.args.JsonSave(record))
        self._manager.save(int(step), args=args, force=True)

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Restore `step` (default: latest) into the shapes, dtypes and shardings of `abstract_state`.

        The saved config must equal this Checkpointer's config apart from RUNTIME_KEYS (ConfigMismatchError).
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        check_config(meta["config"], self.config, f"checkpoint {self.directory} step {step}")
        target = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), abstract_state
        )
        restore = ocp.args.PyTreeRestore(target, restore_args=ocp.checkpoint_utils.construct_restore_args(target))
        restored = self._manager.restore(step, args=ocp.args.Composite(state=restore))
        return restored["state"], meta

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

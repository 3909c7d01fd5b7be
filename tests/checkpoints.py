"""Test helpers that read a mixlab checkpoint directory with plain orbax, outside mixlab.checkpoint.Checkpointer."""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


def saved_steps(directory: str) -> list[int]:
    """Steps of the committed checkpoints in `directory`, ascending (orbax names each one by its step)."""
    return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def read_numpy(directory: str) -> tuple[Any, dict[str, Any]]:
    """(state as host numpy arrays, meta) of the latest checkpoint, whatever mesh wrote it; no config check.

    Nested containers come back as dicts.
    """
    handlers = {"state": ocp.PyTreeCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
    with ocp.CheckpointManager(os.path.abspath(directory), item_handlers=handlers) as manager:
        step = manager.latest_step()
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {directory}")
        tree = manager.item_metadata(step)["state"]
        restore_args = jax.tree_util.tree_map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
        args = ocp.args.Composite(state=ocp.args.PyTreeRestore(restore_args=restore_args), meta=ocp.args.JsonRestore())
        restored = manager.restore(step, args=args)
    return restored["state"], restored["meta"]

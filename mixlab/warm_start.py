"""Warm start (continual pre-training): a run whose parameters start from another run's checkpoint.

train.init_from names a complete run folder (its newest checkpoint is used) or one checkpoint folder
<run>/checkpoints/<step>. Only the parameters are taken: the optimizer state, step counter and data stream start
afresh. The source is read through a read-only orbax manager, so nothing is ever written into it. `resolve` checks,
before anything is built, that the source exists and holds a model of this run's shape and vocabulary.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

from mixlab import run_folder
from mixlab.checkpoint import read_only_manager
from mixlab.config import ConfigError, as_dict, config_diff, flatten

# What the source must share with the run: the model's shape and the token vocabulary.
SHARED_PREFIXES = ("model.", "data.vocab_size", "data.web", "data.tokenizer", "data.pool_sizes.")
_NOT_SHAPE = ("model.attention", "model.dtype")


@dataclasses.dataclass(frozen=True)
class Source:
    """A readable checkpoint: its orbax folder, step and recorded config."""

    directory: str
    step: int
    config: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        """What config.json records about the source (under derived.init_from)."""
        c = flatten(self.config)
        return {"checkpoint": os.path.join(self.directory, str(self.step)), "ratio": c.get("data.ratio")}


def _locate(init_from: str) -> tuple[str, int | None]:
    """(orbax folder, step or None = newest) of a run folder or of one checkpoint folder; ConfigError otherwise."""
    path = os.path.abspath(os.path.expanduser(init_from))
    if not os.path.isdir(path):
        raise ConfigError(f"train.init_from={init_from!r}: no such folder (a run folder or <run>/checkpoints/<step>)")
    if os.path.isdir(os.path.join(path, run_folder.CHECKPOINT_DIR)):
        if not run_folder.is_complete(path):
            status = run_folder.read_status(path)["status"]
            raise ConfigError(f"train.init_from={init_from!r}: the source run is {status!r}, not complete")
        return os.path.join(path, run_folder.CHECKPOINT_DIR), None
    name = os.path.basename(path)
    if name.isdigit() and os.path.basename(os.path.dirname(path)) == run_folder.CHECKPOINT_DIR:
        return os.path.dirname(path), int(name)
    raise ConfigError(f"train.init_from={init_from!r}: not a run folder, nor a checkpoint folder <run>/checkpoints/<n>")


def resolve(config: ml_collections.ConfigDict) -> Source | None:
    """The warm-start source of `config` (None without train.init_from), checked against the run's shape."""
    init_from = str(config.train.init_from)
    if not init_from:
        return None
    directory, step = _locate(init_from)
    try:
        with read_only_manager(directory) as manager:
            steps = manager.all_steps()
            step = max(steps, default=None) if step is None else step
            if step is None or step not in steps:
                raise ConfigError(f"train.init_from={init_from!r}: no readable checkpoint there")
            meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except ConfigError:
        raise
    except Exception as e:  # orbax/tensorstore errors of a damaged checkpoint
        reason = f"checkpoint {step} cannot be read ({type(e).__name__})"
        raise ConfigError(f"train.init_from={init_from!r}: {reason}") from None
    source = Source(directory, int(step), meta["config"])
    saved, now = flatten(source.config), flatten(as_dict(config))
    shared = [k for k in config_diff(source.config, as_dict(config), ()) if k.startswith(SHARED_PREFIXES)]
    differ = [k for k in shared if k not in _NOT_SHAPE]
    if differ:
        shown = "; ".join(f"{k}: source {saved.get(k)!r}, run {now.get(k)!r}" for k in differ[:4])
        raise ConfigError(f"train.init_from={init_from!r} holds a model of another shape or vocabulary: {shown}")
    return source


def load_params(source: Source, abstract_params: Any) -> Any:
    """The source's parameters, restored into the shapes, dtypes and shardings of `abstract_params`."""
    target = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), {"params": abstract_params}
    )
    restore = ocp.args.PyTreeRestore(
        target, restore_args=ocp.checkpoint_utils.construct_restore_args(target), partial_restore=True
    )
    with read_only_manager(source.directory) as manager:
        restored = manager.restore(source.step, args=ocp.args.Composite(state=restore))
    return restored["state"]["params"]

"""Checkpoints: bitwise round trip, restore on a different device count, retention, atomicity, config check, and
reading back with plain orbax."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mixlab import checkpoint, config
from tests.checkpoints import read_numpy, saved_steps

CONFIG = {
    "seed": 0,
    "data": {"ratio": 0.2, "dir": "data"},
    "train": {"log_every": 10},
    "sharding": {"mesh": {"data": 8}},
}


def _state(mesh: Mesh, seed: int = 0) -> dict:
    k1, k2 = jax.random.split(jax.random.key(seed))
    row = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
    rep = NamedSharding(mesh, PartitionSpec())
    return {
        "params": {"w": jax.device_put(jax.random.normal(k1, (16, 4)), row), "b": jax.device_put(jnp.ones(4), rep)},
        "opt_state": {"mu": jax.device_put(jax.random.normal(k2, (16, 4)), row)},
        "step": jax.device_put(jnp.asarray(7, jnp.int32), rep),
        "rng": jax.device_put(jax.random.key_data(jax.random.key(3)), rep),
    }


def _mesh(n: int) -> Mesh:
    return Mesh(np.array(jax.devices()[:n]), ("data",))


def test_round_trip_is_bitwise_and_restores_on_one_device(tmp_path):
    assert jax.device_count() == 8
    saved = _state(_mesh(8))
    ckpt = checkpoint.Checkpointer(str(tmp_path), keep=2, milestone_every=0, config=CONFIG)
    ckpt.save(7, saved, {"timers": {"train": 1.5}})
    ckpt.close()

    target = _state(_mesh(1), seed=1)  # other values, 1-device shardings
    restored, meta = checkpoint.Checkpointer(str(tmp_path), 2, 0, CONFIG).restore(target)
    assert meta["step"] == 7 and meta["timers"] == {"train": 1.5}
    for a, b in zip(jax.tree_util.tree_leaves(saved), jax.tree_util.tree_leaves(restored), strict=True):
        assert b.sharding.mesh.devices.size == 1
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert a.dtype == b.dtype


def test_keeps_last_k_plus_milestones(tmp_path):
    ckpt = checkpoint.Checkpointer(str(tmp_path), keep=2, milestone_every=4, config=CONFIG)
    state = _state(_mesh(1))
    for step in range(1, 11):
        ckpt.save(step, state, {})
    ckpt.close()
    assert saved_steps(str(tmp_path)) == [4, 8, 9, 10]


def test_uncommitted_checkpoint_is_ignored(tmp_path):
    ckpt = checkpoint.Checkpointer(str(tmp_path), keep=3, milestone_every=0, config=CONFIG)
    ckpt.save(5, _state(_mesh(1)), {})
    ckpt.close()
    os.makedirs(tmp_path / "9.orbax-checkpoint-tmp-123")  # what a save killed mid-write leaves behind
    assert checkpoint.Checkpointer(str(tmp_path), 3, 0, CONFIG).latest_step() == 5


def test_changed_config_is_refused_naming_the_keys(tmp_path):
    ckpt = checkpoint.Checkpointer(str(tmp_path), keep=1, milestone_every=0, config=CONFIG)
    ckpt.save(1, _state(_mesh(1)), {})
    ckpt.close()
    changed = {**CONFIG, "seed": 1, "data": {"ratio": 0.3, "dir": "elsewhere"}, "sharding": {"mesh": {"data": 1}}}
    with pytest.raises(config.ConfigMismatchError, match=r"2 keys differ.*data\.ratio.*seed") as e:
        checkpoint.Checkpointer(str(tmp_path), 1, 0, changed).restore(_state(_mesh(1)))
    assert "data.dir" not in str(e.value) and "sharding" not in str(e.value)  # runtime keys may change


def test_bad_retention_arguments(tmp_path):
    with pytest.raises(ValueError, match="train.keep_checkpoints"):
        checkpoint.Checkpointer(str(tmp_path), keep=0, milestone_every=0, config=CONFIG)
    with pytest.raises(ValueError, match="train.milestone_every"):
        checkpoint.Checkpointer(str(tmp_path), keep=1, milestone_every=-1, config=CONFIG)


def test_readable_as_numpy_with_plain_orbax(tmp_path):
    """A checkpoint written on 8 devices reads back as host numpy arrays without Checkpointer or a mesh."""
    saved = _state(_mesh(8))
    ckpt = checkpoint.Checkpointer(str(tmp_path), keep=1, milestone_every=0, config=CONFIG)
    ckpt.save(3, saved, {"note": "x"})
    ckpt.close()
    state, meta = read_numpy(str(tmp_path))
    assert meta["note"] == "x" and meta["config"] == CONFIG
    np.testing.assert_array_equal(state["params"]["w"], np.asarray(saved["params"]["w"]))
    assert isinstance(state["params"]["w"], np.ndarray) and int(state["step"]) == 7

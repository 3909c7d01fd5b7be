"""Ensembles: K runs in one program give each run's folder what K separate runs give; resume; a failing member."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mixlab import run_folder, train
from mixlab.config import ConfigError
from tests.checkpoints import read_numpy
from tests.test_train import rows, tiny

MEMBERS = [dict(data__ratio=0.25, seed__=0), dict(data__ratio=0.5, seed__=1), dict(data__ratio=0.75, seed__=2)]
TIMING = ("time", "tokens_per_s", "mfu", "data_wait_share")


def _config(data_dir, mesh=(1, 1, 1), **member):
    c = tiny(data_dir, train__num_steps=6, train__eval_every=3, train__checkpoint_every=3, **member)
    c.sharding.num_devices = int(np.prod(mesh))
    c.sharding.mesh.update(data=mesh[0], fsdp=mesh[1], tensor=mesh[2])
    return c


def _untimed(row: dict) -> dict:
    return {k: v for k, v in row.items() if not any(t in k for t in TIMING)}


def _assert_rows_close(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        g, w = _untimed(g), _untimed(w)
        assert g.keys() == w.keys()
        for key in g:
            np.testing.assert_allclose(g[key], w[key], rtol=2e-4, atol=2e-5, err_msg=key)


def _params(workdir):
    state, meta = read_numpy(os.path.join(workdir, "checkpoints"))
    return jax.tree_util.tree_leaves(state["params"]), meta


@pytest.fixture(scope="module")
def separate(data_dir, tmp_path_factory):
    """Each member trained alone on one device."""
    root = tmp_path_factory.mktemp("separate")
    dirs = [str(root / str(i)) for i in range(len(MEMBERS))]
    for member, workdir in zip(MEMBERS, dirs, strict=True):
        train.train_and_evaluate(_config(data_dir, **member), workdir)
    return dirs


@pytest.fixture(scope="module")
def together(data_dir, tmp_path_factory):
    """The three members as one ensemble on the (2, 2, 2) mesh of 8 virtual devices."""
    root = tmp_path_factory.mktemp("together")
    dirs = [str(root / str(i)) for i in range(len(MEMBERS))]
    configs = [_config(data_dir, (2, 2, 2), **member) for member in MEMBERS]
    return dirs, train.train_ensemble(configs, dirs)


def test_an_ensemble_gives_each_run_what_it_gets_alone(separate, together):
    dirs, results = together
    for alone, member, result in zip(separate, dirs, results, strict=True):
        assert run_folder.is_complete(member)
        _assert_rows_close(run_folder.read_eval_rows(member), run_folder.read_eval_rows(alone))
        _assert_rows_close([result], run_folder.read_eval_rows(alone)[-1:])
        _assert_rows_close(rows(member), rows(alone))
        got, meta = _params(member)
        want, _ = _params(alone)
        # Adam moves a weight by up to lr per step whatever its gradient's size, so weights whose gradients are
        # ~0 (rounding differences of batched vs plain matmuls) differ by a fraction of that: allow 1% of it.
        moved = 1e-2 * meta["config"]["optim"]["lr"] * meta["step"]
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=moved)
        assert meta["step"] == 6
        saved = json.load(open(os.path.join(member, "config.json")))
        assert saved["data"] == json.load(open(os.path.join(alone, "config.json")))["data"]
    accs = [r["acc"] for r in results]
    losses = [r["web_loss"] for r in results]
    assert len(set(losses)) == 3, "the members trained on their own streams"
    assert all(0 <= a <= 1 for a in accs)


def test_an_ensemble_resumes_bitwise(data_dir, together, tmp_path):
    dirs = [str(tmp_path / str(i)) for i in range(len(MEMBERS))]
    configs = [_config(data_dir, (2, 2, 2), **member) for member in MEMBERS]
    assert all(r == {"step": 3, "stopped_early": True} for r in train.train_ensemble(configs, dirs, stop_after=3))
    train.train_ensemble(configs, dirs)
    for resumed, straight in zip(dirs, together[0], strict=True):
        for g, w in zip(_params(resumed)[0], _params(straight)[0], strict=True):
            np.testing.assert_array_equal(g, w)
        assert [_untimed(r) for r in run_folder.read_eval_rows(resumed)] == [
            _untimed(r) for r in run_folder.read_eval_rows(straight)
        ]
    assert train.train_ensemble(configs, dirs)[1] == run_folder.read_eval_rows(dirs[1])[-1]  # complete: no training


def test_a_diverging_member_fails_alone(data_dir, tmp_path, monkeypatch):
    """Member 1's parameters are NaN from the start (as if it had diverged): it is recorded failed, the others finish
    with the numbers they get alone."""
    init = train.init_ensemble_state

    def poisoned(*args, **kwargs):
        state, shardings = init(*args, **kwargs)
        state["params"] = jax.tree_util.tree_map(lambda x: x.at[1].set(jnp.nan), state["params"])
        return state, shardings

    monkeypatch.setattr(train, "init_ensemble_state", poisoned)
    dirs = [str(tmp_path / str(i)) for i in range(len(MEMBERS))]
    results = train.train_ensemble([_config(data_dir, **m) for m in MEMBERS], dirs)
    status = run_folder.read_status(dirs[1])
    assert status["status"] == "failed" and "NonFiniteLossError" in status["error"]
    assert results[1]["failed"] == status["error"]
    assert len(rows(dirs[1])) == 1, "the failed member's metrics stop at the step that failed"
    for k in (0, 2):
        assert run_folder.is_complete(dirs[k]) and results[k]["step"] == 6


def test_members_must_share_the_step(data_dir, tmp_path):
    configs = [_config(data_dir), _config(data_dir, model__num_layers=2)]
    with pytest.raises(ConfigError, match="model.num_layers"):
        train.train_ensemble(configs, [str(tmp_path / "a"), str(tmp_path / "b")])
    with pytest.raises(ConfigError, match="share a workdir"):
        train.train_ensemble([_config(data_dir), _config(data_dir, seed__=1)], [str(tmp_path / "a")] * 2)
    assert not os.listdir(tmp_path)


def test_the_vmapped_and_the_looped_ensemble_steps_agree():
    """The two ways mixlab.step.ensemble_train_step steps the members (vmap on accelerators, lax.map on CPU), on
    the (2, 2, 2) mesh: two steps of three members, the same states and metrics to the tolerance of the ensemble
    against separate runs (batched matmuls sum in another order)."""
    import functools

    from mixlab import sharding, step
    from mixlab.config import base_config
    from mixlab.mixture import Batch
    from mixlab.model import ModelConfig

    cfg = base_config()
    cfg.model.update(size="t25k")
    mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    rules = sharding.resolve_rules()
    spec = step.StepSpec.create(ModelConfig.from_config(cfg.model.to_dict(), 256, 16), cfg.optim, 100, mesh, rules)
    state, shardings = step.init_ensemble_state(spec, mesh, rules, [0, 1, 2])
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 8, 17), dtype=np.int32)
    source = (rng.random((3, 8, 16)) < 0.5).astype(np.int8)
    packed = np.stack([step.pack(Batch(x[k, :, :-1], x[k, :, 1:], np.ones((8, 16), np.float32), source[k], 0, 0, 0))
                       for k in range(3)])  # fmt: skip
    batch = jax.device_put(packed, step.stack_sharding(sharding.batch_sharding(mesh, rules)))
    out = {}
    for vectorize in (True, False):
        run = jax.jit(functools.partial(step.ensemble_train_step, spec, vectorize=vectorize))
        s = state
        for _ in range(2):
            s, metrics = run(s, batch)
        out[vectorize] = (jax.tree_util.tree_leaves(s), np.asarray(metrics))
    (vmapped, metrics_v), (looped, metrics_l) = out[True], out[False]
    for a, b in zip(vmapped, looped, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(metrics_v, metrics_l, rtol=2e-4, atol=2e-5)

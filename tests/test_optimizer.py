"""Optimizer: WSD, cosine and constant schedules, weight-decay mask, clipping, gradient accumulation."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from mixlab import model, optimizer
from mixlab.config import base_config


def _optim(**kw) -> ml_collections.ConfigDict:
    o = base_config().optim
    o.update(kw)
    return o


def test_wsd_schedule():
    lr = optimizer.make_schedule(_optim(lr=1.0, warmup_steps=10, decay_fraction=0.1, schedule="wsd"), 100)
    got = {s: float(lr(s)) for s in (0, 4, 9, 50, 89, 90, 95, 99, 100)}
    want = {0: 0.1, 4: 0.5, 9: 1.0, 50: 1.0, 89: 1.0, 90: 1.0, 95: 0.5, 99: 0.1, 100: 0.0}
    assert got == pytest.approx(want, abs=1e-6)


def test_cosine_schedule():
    lr = optimizer.make_schedule(_optim(lr=2.0, warmup_steps=10, schedule="cosine"), 110)
    assert [float(lr(s)) for s in (0, 9, 60, 110)] == pytest.approx([0.2, 2.0, 1.0, 0.0], abs=1e-6)


def test_constant_schedule_holds_lr_after_warmup():
    lr = optimizer.make_schedule(_optim(lr=0.5, warmup_steps=4, schedule="constant"), 100)
    assert [float(lr(s)) for s in (0, 3, 50, 99, 100)] == pytest.approx([0.125, 0.5, 0.5, 0.5, 0.5], abs=1e-7)


def test_decay_mask_on_the_model_skips_norms_and_biases():
    cfg = model.ModelConfig(vocab_size=128, num_layers=2, D=32, H=2, max_len=16)
    params = nnx.state(model.abstract_model(cfg), nnx.Param)
    mask = optimizer.decay_mask(params)
    decayed = sorted(jax.tree_util.keystr(p) for p, m in jax.tree_util.tree_leaves_with_path(mask) if m)
    names = sorted({d.split("]")[-2].split("[")[-1].strip("'") for d in decayed})
    assert names == ["embed", "head", "mlp_in_w", "mlp_out_w", "out_w", "qkv_w"]
    assert len(decayed) == 2 + 4 * cfg.num_layers


def test_weight_decay_only_on_masked_params():
    params = {"w": jnp.ones((2, 2)), "bias": jnp.ones(2), "ln": {"scale": jnp.ones(2)}}
    tx = optimizer.make_optimizer(_optim(lr=0.5, warmup_steps=0, weight_decay=0.1, decay_fraction=0.0), 10)
    zero = jax.tree_util.tree_map(jnp.zeros_like, params)
    updates, _ = tx.update(zero, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.5 * 0.1 * np.ones((2, 2)), rtol=1e-6)
    np.testing.assert_array_equal(updates["bias"], 0.0)
    np.testing.assert_array_equal(updates["ln"]["scale"], 0.0)


def test_global_norm_clipping():
    """A gradient above clip_norm is rescaled to it: Adam then sees the same sequence as with the rescaled input."""
    tx = optimizer.make_optimizer(_optim(lr=0.1, warmup_steps=0, weight_decay=0.0, clip_norm=1.0), 10)
    params = {"w": jnp.zeros(4)}
    big = {"w": jnp.array([30.0, 40.0, 0.0, 0.0])}  # norm 50
    unit = {"w": big["w"] / 50.0}
    small = {"w": jnp.array([0.1, -0.2, 0.3, 0.0])}  # norm < 1: left alone

    def run(first):
        state = tx.init(params)
        u1, state = tx.update(first, state, params)
        u2, _ = tx.update(small, state, params)
        return np.concatenate([u1["w"], u2["w"]])

    np.testing.assert_allclose(run(big), run(unit), rtol=1e-6)
    unclipped = optax.adamw(0.1, b1=0.9, b2=0.95, weight_decay=0.0)
    s = unclipped.init(params)
    _, s = unclipped.update(big, s, params)
    u2, _ = unclipped.update(small, s, params)
    assert not np.allclose(u2["w"], run(big)[4:], rtol=1e-3)  # the check above can fail


def test_gradient_accumulation_matches_the_full_batch():
    x = jax.random.normal(jax.random.key(0), (16, 5))
    y = jax.random.normal(jax.random.key(1), (16,))
    params = {"w": jnp.arange(5.0) / 5}

    def sum_loss(p, batch):
        err = batch["x"] @ p["w"] - batch["y"]
        return jnp.sum(err**2), {"n": jnp.float32(batch["y"].shape[0]), "sq": jnp.sum(err**2)}

    full_g, full_aux = optimizer.accumulate_gradients(sum_loss, params, {"x": x, "y": y}, 1)
    acc_g, acc_aux = jax.jit(optimizer.accumulate_gradients, static_argnums=(0, 3))(
        sum_loss, params, {"x": x, "y": y}, 4
    )
    np.testing.assert_allclose(acc_g["w"], full_g["w"], rtol=1e-5)
    assert float(acc_aux["n"]) == 16.0
    np.testing.assert_allclose(acc_aux["sq"], full_aux["sq"], rtol=1e-5)

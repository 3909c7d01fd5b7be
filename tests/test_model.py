"""Model: shapes, causality, rotary, residual/tying options, config errors, and parameter counts."""

import dataclasses
import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mixlab.model import SIZES, ModelConfig, Transformer, apply, param_counts, rotary

V = 256


@functools.cache
def _base(size: str) -> Transformer:
    cfg = ModelConfig(vocab_size=V, max_len=32, **SIZES[size])
    return Transformer(cfg, rngs=nnx.Rngs(0))


def make(size: str = "t25k", **overrides) -> Transformer:
    """The (cached) `size` model's parameters under a config with `overrides` (same init, no re-initialisation)."""
    base = _base(size)
    cfg = dataclasses.replace(base.cfg, **overrides)
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0))))
    have = dict(nnx.to_flat_state(nnx.state(base)))
    return nnx.merge(graphdef, nnx.from_flat_state([(path, have[path]) for path, _ in nnx.to_flat_state(abstract)]))


_forward = jax.jit(apply, static_argnums=0)
_rotary = jax.jit(rotary, static_argnums=(1, 2))


def forward(model: Transformer, tokens_BxL: jax.Array) -> jax.Array:
    return _forward(*nnx.split(model), tokens_BxL)


def tokens(B: int = 2, L: int = 12, seed: int = 0) -> jax.Array:
    return jax.random.randint(jax.random.key(seed), (B, L), 0, V)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_forward_shape_and_float32_logits(dtype):
    model = make(dtype=dtype)
    logits = forward(model, tokens())
    assert logits.shape == (2, 12, V)
    assert logits.dtype == jnp.float32
    assert bool(jnp.isfinite(logits).all())
    params = nnx.state(model, nnx.Param)
    assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}


def test_bfloat16_close_to_float32():
    t = tokens()
    full, half = forward(make(), t), forward(make(dtype="bfloat16"), t)
    assert float(jnp.abs(full - half).max()) < 0.1 * float(jnp.abs(full).max())


def test_pure_apply_matches_module():
    model = make()
    graphdef, params = nnx.split(model)
    t = tokens()
    np.testing.assert_allclose(
        _forward(graphdef, params, t), nnx.jit(Transformer.__call__)(model, t), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("parallel_residual", [True, False])
def test_causal(parallel_residual):
    model = make(parallel_residual=parallel_residual)
    t = tokens()
    t2 = t.at[:, 7].set((t[:, 7] + 1) % V)
    a, b = forward(model, t), forward(model, t2)
    np.testing.assert_array_equal(a[:, :7], b[:, :7])
    assert float(jnp.abs(a[:, 7:] - b[:, 7:]).min(axis=-1).max()) > 0


def test_parallel_and_sequential_residual_differ():
    t = tokens()
    assert (
        float(jnp.abs(forward(make(parallel_residual=True), t) - forward(make(parallel_residual=False), t)).max())
        > 1e-4
    )


def test_tied_embeddings():
    tied = make(tie_embeddings=True)
    assert not hasattr(tied, "head")
    assert forward(tied, tokens()).shape == (2, 12, V)
    total_tied, non_emb_tied = param_counts(tied.cfg)
    total, non_emb = param_counts(make().cfg)
    assert total - total_tied == V * tied.cfg.D
    assert non_emb == non_emb_tied


def test_too_long_sequence_is_an_error():
    with pytest.raises(ValueError, match="max_len"):
        forward(make(), tokens(L=33))


@pytest.mark.parametrize(("fraction", "K", "expected"), [(0.25, 16, 4), (0.25, 64, 16), (0.0, 16, 0), (1.0, 8, 8)])
def test_rotary_dim(fraction, K, expected):
    cfg = ModelConfig(vocab_size=V, max_len=8, num_layers=1, D=2 * K, H=2, rotary_fraction=fraction)
    assert cfg.rotary_dim == expected


def test_rotary_dim_rounds_down_to_even():
    assert ModelConfig(vocab_size=V, max_len=8, num_layers=1, D=48, H=4).rotary_dim == 2  # K=12 -> int(3) -> 2


def _reference_rotary(x: np.ndarray, rotary_dim: int, base: float) -> np.ndarray:
    """GPT-NeoX rotate-half: dim i is paired with dim i + rotary_dim/2 and rotated by pos * base^(-2i/rotary_dim)."""
    out = x.astype(np.float64).copy()
    half = rotary_dim // 2
    for pos in range(x.shape[1]):
        for i in range(half):
            theta = pos * base ** (-2.0 * i / rotary_dim)
            a, b = x[:, pos, :, i], x[:, pos, :, i + half]
            out[:, pos, :, i] = a * np.cos(theta) - b * np.sin(theta)
            out[:, pos, :, i + half] = b * np.cos(theta) + a * np.sin(theta)
    return out


def test_rotary_matches_reference_and_leaves_other_dims():
    x = np.random.default_rng(1).normal(size=(2, 9, 3, 16)).astype(np.float32)
    y = np.asarray(_rotary(jnp.asarray(x), 4, 10000.0))
    np.testing.assert_allclose(y, _reference_rotary(x, 4, 10000.0), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y[..., 4:], x[..., 4:])
    np.testing.assert_array_equal(y[:, 0], x[:, 0])  # position 0 is not rotated


def test_rotary_scores_depend_on_relative_position_only():
    q, k = np.random.default_rng(0).normal(size=(2, 1, 1, 1, 8)).astype(np.float32)
    qs, ks = _rotary(np.tile(q, (1, 20, 1, 1)), 8, 10000.0), _rotary(np.tile(k, (1, 20, 1, 1)), 8, 10000.0)
    qs, ks = np.asarray(qs), np.asarray(ks)
    score = lambda m, n: float(np.dot(qs[0, m, 0], ks[0, n, 0]))  # noqa: E731
    assert score(5, 2) == pytest.approx(score(15, 12), rel=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 4), rel=1e-2)


@pytest.mark.parametrize(("fraction", "invariant"), [(0.0, True), (0.25, False)])
def test_position_information_comes_from_rotary_only(fraction, invariant):
    """One layer, no rotary: the last position attends to a *set* of earlier tokens, so permuting them is invisible."""
    model = make(num_layers=1, rotary_fraction=fraction)
    t = tokens(B=1, L=10)
    permuted = t.at[:, :9].set(t[:, :9][:, ::-1])
    diff = float(jnp.abs(forward(model, t)[:, -1] - forward(model, permuted)[:, -1]).max())
    assert (diff < 1e-5) == invariant, diff


def test_from_config_presets_and_overrides():
    cfg = ModelConfig.from_config({"size": "t57k", "dtype": "bfloat16", "D": 96, "H": None}, vocab_size=V, max_len=64)
    assert (cfg.num_layers, cfg.D, cfg.H, cfg.F, cfg.dtype, cfg.max_len) == (2, 96, 3, 384, "bfloat16", 64)


@pytest.mark.parametrize(
    ("model_cfg", "match"),
    [
        ({"size": "t25k", "widht": 3}, "model.widht"),
        ({"size": "huge"}, "model.size"),
        ({"size": "t25k", "H": 5}, "model.D=32 is not divisible by model.H=5"),
        ({"size": "t25k", "dtype": "float16"}, "model.dtype"),
        ({"size": "t25k", "rotary_fraction": 1.5}, "model.rotary_fraction"),
        ({"size": "t25k", "num_layers": 0}, "model.num_layers"),
    ],
)
def test_bad_model_config(model_cfg, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        ModelConfig.from_config(model_cfg, vocab_size=V, max_len=64)


# Published Pythia parameter counts (HF models, V = 50304): total and non-embedding.
PYTHIA = {
    "14m": (14_067_712, None),
    "31m": (30_494_720, None),
    "70m": (70_426_624, 18_915_328),
    "160m": (162_322_944, 85_056_000),
    "410m": (405_334_016, 302_311_424),
    "1b": (1_011_781_632, 805_736_448),
}


@pytest.mark.parametrize("size", list(PYTHIA))
def test_pythia_param_counts(size):
    total, non_embedding = param_counts(ModelConfig(vocab_size=50304, max_len=2048, **SIZES[size]))
    published_total, published_non_embedding = PYTHIA[size]
    assert total == pytest.approx(published_total, rel=0.02)
    if published_non_embedding is not None:
        assert non_embedding == pytest.approx(published_non_embedding, rel=0.02)


def _nominal(name: str) -> float:
    number, unit = re.fullmatch(r"t?(\d+)([km])", name).groups()
    return int(number) * {"k": 1e3, "m": 1e6}[unit]


@pytest.mark.parametrize("size", [s for s in SIZES if s not in PYTHIA])
def test_preset_names_match_computed_counts(size):
    """Tiny presets are named by non-embedding count; the other non-Pythia sizes by total count at V=50304."""
    total, non_embedding = param_counts(ModelConfig(vocab_size=50304, max_len=2048, **SIZES[size]))
    counted = non_embedding if size.startswith("t") else total
    assert counted == pytest.approx(_nominal(size), rel=0.06)


def test_param_counts_match_the_instantiated_model():
    model = _base("t25k")
    total = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    D, L = model.cfg.D, model.cfg.num_layers
    assert param_counts(model.cfg) == (total, total - 2 * V * D)
    assert param_counts(model.cfg)[1] == L * (12 * D * D + 13 * D) + 2 * D

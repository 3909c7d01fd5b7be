"""mixlab.attention: every implementation computes the same causal attention and gradients; GeLU through erf."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mixlab import attention
from mixlab.model import gelu


def _qkv(L: int, dtype=jnp.float32, B: int = 2, H: int = 3, K: int = 16):
    keys = jax.random.split(jax.random.key(0), 4)
    q, k, v, do = (jax.random.normal(key, (B, L, H, K), jnp.float32) for key in keys)
    return q.astype(dtype), k.astype(dtype), v.astype(dtype), do


def _reference(q, k, v):
    """softmax(q k^T / sqrt(K) + causal mask) v in float64 numpy, from the definition."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    s = np.einsum("bqhk,bshk->bhqs", q, k) / np.sqrt(q.shape[-1])
    L = q.shape[1]
    s = np.where(np.tril(np.ones((L, L), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    return np.einsum("bhqs,bshk->bqhk", p / p.sum(-1, keepdims=True), v)


@pytest.mark.parametrize("L", [1, 7, 64, 66])  # one block, blocks of unequal size, equal blocks, a short last block
def test_blocked_matches_the_definition_and_xla_gradients(L):
    q, k, v, do = _qkv(L)
    out = attention.causal_attention(q, k, v, "blocked")
    np.testing.assert_allclose(out, _reference(q, k, v), rtol=2e-5, atol=2e-6)

    def grads(impl):
        return jax.grad(lambda q, k, v: jnp.sum(attention.causal_attention(q, k, v, impl) * do), (0, 1, 2))(q, k, v)

    for got, want in zip(grads("blocked"), grads("xla"), strict=True):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


def test_blocked_under_jit_and_bfloat16():
    q, k, v, _ = _qkv(40, jnp.bfloat16)
    out = jax.jit(lambda q, k, v: attention.causal_attention(q, k, v, "blocked"))(q, k, v)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out, np.float32), _reference(q, k, v), atol=3e-2)


def test_auto_resolves_by_backend_and_unknown_names_are_refused():
    assert attention.resolve("auto", "cpu", jnp.float32) == "blocked"
    assert attention.resolve("auto", "gpu", jnp.bfloat16) == "cudnn"
    assert attention.resolve("auto", "gpu", jnp.float32) == "xla"
    assert attention.resolve("auto", "tpu", jnp.bfloat16) == "xla"
    assert attention.resolve("xla", "cpu", jnp.float32) == "xla"
    q, k, v, _ = _qkv(4)
    with pytest.raises(ValueError, match="flash"):
        attention.causal_attention(q, k, v, "flash")


def test_gelu_is_the_exact_gelu():
    x = jnp.linspace(-9.0, 9.0, 4001)
    np.testing.assert_allclose(gelu(x), jax.nn.gelu(x, approximate=False), atol=1e-6)
    np.testing.assert_allclose(
        jax.vmap(jax.grad(gelu))(x), jax.vmap(jax.grad(lambda t: jax.nn.gelu(t, approximate=False)))(x), atol=1e-6
    )

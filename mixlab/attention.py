"""Causal softmax attention, by backend: query-blocked with a hand-written backward pass on CPU, cuDNN on GPU.

All implementations compute softmax(q k^T / sqrt(K) + causal mask) v on q, k, v [B, L, H, K] and agree to float
tolerance (tests/test_attention.py). On XLA CPU the cost of attention is the element-wise passes over the [B, H, L, L]
scores, not the matmuls, so "blocked" does fewer of them:
  - query blocks: the queries are cut into NUM_BLOCKS blocks and block i scores only the keys it can see (the first
    (i + 1) / NUM_BLOCKS of them), 5/8 of the full square at four blocks;
  - a custom VJP in the flash-attention form: the forward pass saves the output and the row log-sum-exp, not the
    probabilities, and the backward pass recomputes them in one exp and uses rowsum(dO * O) for the softmax's
    Jacobian, about half the passes of autodiff through jax.nn.dot_product_attention's XLA path.
"auto" falls back to "xla" where cuDNN refuses the call (no cuDNN, or a shape or dtype it does not take). Measured
effect on the train step: BUILD_NOTES.md, "CPU step time".
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

IMPLEMENTATIONS = ("auto", "blocked", "xla", "cudnn")
NUM_BLOCKS = 4  # query blocks of "blocked" (the best of 2, 4, 8 at L = 256 on CPU)


def resolve(implementation: str, backend: str, dtype) -> str:
    """'auto' -> 'blocked' on CPU, 'cudnn' on GPU for 16-bit compute, else 'xla'; other names are kept."""
    if implementation != "auto":
        return implementation
    if backend == "cpu":
        return "blocked"
    if backend == "gpu" and jnp.dtype(dtype).itemsize == 2:
        return "cudnn"
    return "xla"


def causal_attention(q_BxLxHxK: jax.Array, k_BxLxHxK: jax.Array, v_BxLxHxK: jax.Array, implementation: str):
    """softmax(q k^T / sqrt(K), causal) v -> [B, L, H, K], with `implementation` one of IMPLEMENTATIONS."""
    impl = resolve(implementation, jax.default_backend(), q_BxLxHxK.dtype)
    if impl == "cudnn":
        try:
            return jax.nn.dot_product_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, is_causal=True, implementation=impl)
        except (ValueError, NotImplementedError, RuntimeError):  # no cuDNN, or a shape or version it does not take
            if implementation == "cudnn":
                raise
            impl = "xla"  # "auto" falls back
    if impl == "xla":
        return jax.nn.dot_product_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, is_causal=True, implementation=impl)
    if impl != "blocked":
        raise ValueError(f"attention implementation {implementation!r}: must be one of {IMPLEMENTATIONS}")
    L = q_BxLxHxK.shape[1]
    bounds = _block_bounds(L, NUM_BLOCKS)
    to_heads = functools.partial(jnp.swapaxes, axis1=1, axis2=2)  # [B, L, H, K] <-> [B, H, L, K]
    o_BxHxLxK = _blocked(bounds, to_heads(q_BxLxHxK), to_heads(k_BxLxHxK), to_heads(v_BxLxHxK))
    return to_heads(o_BxHxLxK)


def _block_bounds(L: int, num_blocks: int) -> tuple[tuple[int, int], ...]:
    size = math.ceil(L / num_blocks)
    return tuple((start, min(start + size, L)) for start in range(0, L, size))


def _scores(q_BxHxQxK: jax.Array, k_BxHxSxK: jax.Array, start: int) -> jax.Array:
    """Scaled scores of queries start.. against keys 0..S-1, -inf where the key is after the query; float32."""
    Q, S = q_BxHxQxK.shape[2], k_BxHxSxK.shape[2]
    s = jnp.einsum("bhqk,bhsk->bhqs", q_BxHxQxK, k_BxHxSxK, preferred_element_type=jnp.float32)
    visible_QxS = jnp.arange(S)[None, :] <= start + jnp.arange(Q)[:, None]
    return jnp.where(visible_QxS, s * (q_BxHxQxK.shape[-1] ** -0.5), -jnp.inf)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _blocked(bounds, q_BxHxLxK, k_BxHxLxK, v_BxHxLxK):
    return _blocked_fwd(bounds, q_BxHxLxK, k_BxHxLxK, v_BxHxLxK)[0]


def _blocked_fwd(bounds, q, k, v):
    outs, lses = [], []
    for start, stop in bounds:
        s = _scores(q[:, :, start:stop], k[:, :, :stop], start)
        m = jnp.max(s, axis=-1, keepdims=True)
        e = jnp.exp(s - m)
        total = jnp.sum(e, axis=-1, keepdims=True)
        pv = jnp.einsum("bhqs,bhsk->bhqk", e.astype(v.dtype), v[:, :, :stop], preferred_element_type=jnp.float32)
        outs.append((pv / total).astype(v.dtype))
        lses.append(m + jnp.log(total))
    o = jnp.concatenate(outs, axis=2)
    return o, (q, k, v, o, jnp.concatenate(lses, axis=2))


def _blocked_bwd(bounds, residuals, do):
    q, k, v, o, lse = residuals
    scale = q.shape[-1] ** -0.5
    delta = jnp.sum(do.astype(jnp.float32) * o.astype(jnp.float32), axis=-1, keepdims=True)
    dqs, dk, dv = [], jnp.zeros(k.shape, jnp.float32), jnp.zeros(v.shape, jnp.float32)
    for start, stop in bounds:
        rows = slice(start, stop)
        p = jnp.exp(_scores(q[:, :, rows], k[:, :, :stop], start) - lse[:, :, rows])
        do_i = do[:, :, rows]
        dv = dv.at[:, :, :stop].add(
            jnp.einsum("bhqs,bhqk->bhsk", p.astype(do.dtype), do_i, preferred_element_type=jnp.float32)
        )
        dp = jnp.einsum("bhqk,bhsk->bhqs", do_i, v[:, :, :stop], preferred_element_type=jnp.float32)
        ds = (p * (dp - delta[:, :, rows]) * scale).astype(q.dtype)
        dqs.append(jnp.einsum("bhqs,bhsk->bhqk", ds, k[:, :, :stop], preferred_element_type=jnp.float32))
        dk = dk.at[:, :, :stop].add(
            jnp.einsum("bhqs,bhqk->bhsk", ds, q[:, :, rows], preferred_element_type=jnp.float32)
        )
    dq = jnp.concatenate(dqs, axis=2)
    return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype)


_blocked.defvjp(_blocked_fwd, _blocked_bwd)

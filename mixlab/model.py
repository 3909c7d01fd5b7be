"""GPT-NeoX/Pythia decoder-only transformer in flax.nnx, with size presets and computed parameter counts.

Architecture (Pythia): rotary position embeddings on the first `rotary_dim` dims of each head (rotate-half, GPT-NeoX
style), parallel residual x + attn(ln1(x)) + mlp(ln2(x)) (configurable), GeLU MLP with F = 4D, LayerNorm with bias,
a final LayerNorm, untied input/output embeddings (configurable), causal attention by mixlab.attention (`attention`
picks the implementation; all compute the same function).
Parameters are float32; compute runs in `dtype`; logits are float32.

Every parameter carries logical axis names (flax `out_sharding` metadata, mapped to mesh axes by mixlab.sharding):
"vocab", "embed" (model width D), "heads" (H), "kv" (head dim K), "mlp" (F), "norm" (LayerNorm scale/bias), and
None for the fused q/k/v axis of size 3. Activations are annotated with "batch", "act_embed", "act_heads", "act_mlp"
and "act_vocab" through an optional `constrain` hook (mixlab.sharding.ActivationSharding); without it they are free.

Shape suffixes, used throughout mixlab/: an array named like logits_BxLxV has the dims B, L, V in that order, from one
alphabet: B batch rows, L sequence length, D model width, H attention heads, K head dim (D / H), F MLP width, V
vocabulary, R rotated dims per head (rotary_dim). A number is a literal size (packed_Bx4xL). Sizes outside the model
are named where they are defined (E eval items, Lp / Lv prompt / value widths in mixlab/evaluate.py; Bp rows of one
process in mixlab/mixture.py).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from mixlab import attention as attention_lib

# One table of size presets. Pythia sizes follow the published configs; "50m", "95m", "120m", "256m" are our
# Pythia-style shapes (head dim 64; names give the total count at V=50304). Tiny presets "t<N>" are named by their
# NON-EMBEDDING parameter count (vocab-independent); the 2-layer ones use head dim 16 so that rotary dims = 4.
SIZES: dict[str, dict[str, int]] = {
    # tiny CPU presets (name = non-embedding parameters)
    "t7k": dict(num_layers=2, D=16, H=1),
    "t20k": dict(num_layers=1, D=40, H=5),
    "t25k": dict(num_layers=2, D=32, H=2),
    "t57k": dict(num_layers=2, D=48, H=3),
    "t100k": dict(num_layers=2, D=64, H=4),
    "t156k": dict(num_layers=2, D=80, H=5),
    "t224k": dict(num_layers=2, D=96, H=6),
    "t400k": dict(num_layers=2, D=128, H=8),
    "t1m": dict(num_layers=2, D=208, H=13),
    "t3m": dict(num_layers=3, D=288, H=18),
    # Pythia (published shapes)
    "14m": dict(num_layers=6, D=128, H=4),
    "31m": dict(num_layers=6, D=256, H=8),
    "70m": dict(num_layers=6, D=512, H=8),
    "160m": dict(num_layers=12, D=768, H=12),
    "410m": dict(num_layers=24, D=1024, H=16),
    "1b": dict(num_layers=16, D=2048, H=8),
    # non-standard sizes in the Pythia style (our choice of shapes)
    "50m": dict(num_layers=6, D=384, H=6),
    "95m": dict(num_layers=6, D=640, H=10),
    "120m": dict(num_layers=6, D=768, H=12),
    "256m": dict(num_layers=12, D=1024, H=16),
}

# constrain(x, logical_axes) -> x with a sharding constraint; stored in the graphdef (must be hashable).
Constrain = Callable[[jax.Array, tuple[str | None, ...]], jax.Array]
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
OVERRIDABLE = ("num_layers", "D", "H", "F", "rotary_fraction", "parallel_residual", "tie_embeddings")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shape and options of a Transformer. F defaults to 4D."""

    vocab_size: int
    num_layers: int
    D: int
    H: int
    max_len: int
    F: int | None = None
    rotary_fraction: float = 0.25
    rotary_base: float = 10000.0
    parallel_residual: bool = True
    tie_embeddings: bool = False
    dtype: str = "float32"
    ln_eps: float = 1e-5
    attention: str = "auto"  # a mixlab.attention.IMPLEMENTATIONS name

    def __post_init__(self):
        if self.F is None:
            object.__setattr__(self, "F", 4 * self.D)
        for key in ("vocab_size", "num_layers", "D", "H", "max_len", "F"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"model.{key} must be a positive int, got {value!r}")
        if self.D % self.H:
            raise ValueError(f"model.D={self.D} is not divisible by model.H={self.H}")
        if not 0.0 <= self.rotary_fraction <= 1.0:
            raise ValueError(f"model.rotary_fraction must be in [0, 1], got {self.rotary_fraction}")
        if self.dtype not in DTYPES:
            raise ValueError(f"model.dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.attention not in attention_lib.IMPLEMENTATIONS:
            raise ValueError(f"model.attention must be one of {attention_lib.IMPLEMENTATIONS}, got {self.attention!r}")

    @property
    def K(self) -> int:
        """Head dimension."""
        return self.D // self.H

    @property
    def rotary_dim(self) -> int:
        """Rotated dims per head: int(K * rotary_fraction) (GPT-NeoX), rounded down to an even number."""
        return 2 * (int(self.K * self.rotary_fraction) // 2)

    @classmethod
    def from_config(cls, model_cfg: Mapping[str, Any], vocab_size: int, max_len: int) -> ModelConfig:
        """From config.model: `size` (a SIZES key), `dtype`, `attention`, and optional overrides (None = preset)."""
        known = {"size", "dtype", "attention", *OVERRIDABLE}
        for key in model_cfg:
            if key not in known:
                raise ValueError(f"unknown key model.{key}; known keys: {sorted(known)}")
        size = model_cfg["size"]
        if size not in SIZES:
            raise ValueError(f"model.size={size!r} is not a preset; choose one of {list(SIZES)}")
        fields = dict(SIZES[size])
        fields.update({k: model_cfg[k] for k in OVERRIDABLE if k in model_cfg and model_cfg[k] is not None})
        options = {k: model_cfg[k] for k in ("dtype", "attention") if k in model_cfg}
        return cls(vocab_size=vocab_size, max_len=max_len, **options, **fields)


def _param(init, key: jax.Array, shape: tuple[int, ...], names: tuple[str | None, ...]) -> nnx.Param:
    """A float32 parameter with logical axis names (sharding is applied by mixlab.sharding, not eagerly)."""
    return nnx.Param(init(key, shape, jnp.float32), out_sharding=names, eager_sharding=False)


def dense(x: jax.Array, w: jax.Array, in_dims: int = 1, **kwargs) -> jax.Array:
    """Contract the last `in_dims` dims of x with the first `in_dims` dims of w, as one 2-D matmul.

    Flattening the leading (batch, sequence) dims first matters on CPU: XLA turns the weight gradient of a 3-D
    einsum into a dot with two contracting dims fused with its producer, measured 3x slower on the logits layer
    than the same 2-D matmul (BUILD_NOTES.md, "CPU step time").
    """
    lead, contract, out = x.shape[: x.ndim - in_dims], math.prod(w.shape[:in_dims]), w.shape[in_dims:]
    y = jnp.dot(x.reshape(-1, contract), w.reshape(contract, -1), **kwargs)
    return y.reshape(*lead, *out)


def _constrain(constrain: Constrain | None, x: jax.Array, logical_axes: tuple[str | None, ...]) -> jax.Array:
    return x if constrain is None else constrain(x, logical_axes)


def _weight(constrain: Constrain | None, param: nnx.Param, dtype) -> jax.Array:
    """A parameter as used in compute: gathered over its "embed" (FSDP) axis, kept split on tensor axes, in dtype."""
    gathered = tuple("act_embed" if name == "embed" else name for name in param.get_metadata()["out_sharding"])
    return _constrain(constrain, param[...], gathered).astype(dtype)


class LayerNorm(nnx.Module):
    """LayerNorm with scale and bias, computed in float32, returned in `dtype`."""

    def __init__(self, D: int, eps: float, dtype):
        self.scale = nnx.Param(jnp.ones((D,), jnp.float32), out_sharding=("norm",), eager_sharding=False)
        self.bias = nnx.Param(jnp.zeros((D,), jnp.float32), out_sharding=("norm",), eager_sharding=False)
        self.eps = eps
        self.dtype = dtype

    def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
        x = x_BxLxD.astype(jnp.float32)
        mean = x.mean(-1, keepdims=True)
        var = jnp.square(x - mean).mean(-1, keepdims=True)
        y = (x - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...] + self.bias[...]
        return y.astype(self.dtype)


def gelu(x: jax.Array) -> jax.Array:
    """Exact GeLU, x * Phi(x), through erf: jax.nn.gelu(approximate=False) goes through erfc, whose exp and branch
    select cost ~2x on XLA CPU; the two differ by < 1e-6 (tests/test_model.py)."""
    return x * (0.5 + 0.5 * jax.lax.erf(x * (1.0 / math.sqrt(2.0))).astype(x.dtype))


def rotary(x_BxLxHxK: jax.Array, rotary_dim: int, base: float) -> jax.Array:
    """GPT-NeoX rotary embedding (rotate-half) on the first `rotary_dim` dims of each head; positions 0..L-1."""
    if rotary_dim == 0:
        return x_BxLxHxK
    L = x_BxLxHxK.shape[1]
    inv_freq = 1.0 / (base ** (jnp.arange(0, rotary_dim, 2, dtype=jnp.float32) / rotary_dim))
    angles_LxR = jnp.arange(L, dtype=jnp.float32)[:, None] * jnp.concatenate([inv_freq, inv_freq])[None, :]
    cos, sin = jnp.cos(angles_LxR)[None, :, None, :], jnp.sin(angles_LxR)[None, :, None, :]
    x_rot, x_pass = x_BxLxHxK[..., :rotary_dim].astype(jnp.float32), x_BxLxHxK[..., rotary_dim:]
    half = rotary_dim // 2
    rotated = jnp.concatenate([-x_rot[..., half:], x_rot[..., :half]], axis=-1)
    x_rot = (x_rot * cos + rotated * sin).astype(x_BxLxHxK.dtype)
    return jnp.concatenate([x_rot, x_pass], axis=-1)


class Block(nnx.Module):
    """One transformer layer: attention and MLP, parallel or sequential residual."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs, constrain: Constrain | None = None):
        D, H, K, F = cfg.D, cfg.H, cfg.K, cfg.F
        small = jax.nn.initializers.normal(math.sqrt(2.0 / (5.0 * D)))  # GPT-NeoX "small_init"
        wang = jax.nn.initializers.normal(2.0 / (cfg.num_layers * math.sqrt(D)))  # GPT-NeoX "wang_init"
        zeros = jax.nn.initializers.zeros
        self.cfg = cfg
        self.constrain = constrain
        self.ln1 = LayerNorm(D, cfg.ln_eps, DTYPES[cfg.dtype])
        self.ln2 = LayerNorm(D, cfg.ln_eps, DTYPES[cfg.dtype])
        self.qkv_w = _param(small, rngs.params(), (D, 3, H, K), ("embed", None, "heads", "kv"))
        self.qkv_b = _param(zeros, rngs.params(), (3, H, K), (None, "heads", "kv"))
        self.out_w = _param(wang, rngs.params(), (H, K, D), ("heads", "kv", "embed"))
        self.out_b = _param(zeros, rngs.params(), (D,), ("embed",))
        self.mlp_in_w = _param(small, rngs.params(), (D, F), ("embed", "mlp"))
        self.mlp_in_b = _param(zeros, rngs.params(), (F,), ("mlp",))
        self.mlp_out_w = _param(wang, rngs.params(), (F, D), ("mlp", "embed"))
        self.mlp_out_b = _param(zeros, rngs.params(), (D,), ("embed",))

    def _w(self, param: nnx.Param, dtype) -> jax.Array:
        return _weight(self.constrain, param, dtype)

    def attention(self, x_BxLxD: jax.Array) -> jax.Array:
        dt = x_BxLxD.dtype
        qkv = dense(x_BxLxD, self._w(self.qkv_w, dt)) + self._w(self.qkv_b, dt)
        qkv = _constrain(self.constrain, qkv, ("batch", None, None, "act_heads", None))
        q_BxLxHxK, k_BxLxHxK, v_BxLxHxK = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        q_BxLxHxK = rotary(q_BxLxHxK, self.cfg.rotary_dim, self.cfg.rotary_base)
        k_BxLxHxK = rotary(k_BxLxHxK, self.cfg.rotary_dim, self.cfg.rotary_base)
        o_BxLxHxK = attention_lib.causal_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, self.cfg.attention)
        return dense(o_BxLxHxK, self._w(self.out_w, dt), in_dims=2) + self._w(self.out_b, dt)

    def mlp(self, x_BxLxD: jax.Array) -> jax.Array:
        dt = x_BxLxD.dtype
        h_BxLxF = dense(x_BxLxD, self._w(self.mlp_in_w, dt)) + self._w(self.mlp_in_b, dt)
        h_BxLxF = _constrain(self.constrain, gelu(h_BxLxF), ("batch", None, "act_mlp"))
        return dense(h_BxLxF, self._w(self.mlp_out_w, dt)) + self._w(self.mlp_out_b, dt)

    def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
        if self.cfg.parallel_residual:
            x_BxLxD = x_BxLxD + self.attention(self.ln1(x_BxLxD)) + self.mlp(self.ln2(x_BxLxD))
        else:
            x_BxLxD = x_BxLxD + self.attention(self.ln1(x_BxLxD))
            x_BxLxD = x_BxLxD + self.mlp(self.ln2(x_BxLxD))
        return _constrain(self.constrain, x_BxLxD, ("batch", None, "act_embed"))


class Transformer(nnx.Module):
    """Decoder-only LM: __call__(tokens_BxL int) -> logits_BxLxV float32.

    `constrain` (optional, hashable) puts sharding constraints on activations; parameters are unaffected by it.
    """

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs, constrain: Constrain | None = None):
        small = jax.nn.initializers.normal(math.sqrt(2.0 / (5.0 * cfg.D)))
        self.cfg = cfg
        self.constrain = constrain
        self.embed = _param(small, rngs.params(), (cfg.vocab_size, cfg.D), ("vocab", "embed"))
        self.blocks = nnx.List([Block(cfg, rngs=rngs, constrain=constrain) for _ in range(cfg.num_layers)])
        self.final_norm = LayerNorm(cfg.D, cfg.ln_eps, DTYPES[cfg.dtype])
        if not cfg.tie_embeddings:
            self.head = _param(small, rngs.params(), (cfg.D, cfg.vocab_size), ("embed", "vocab"))

    def __call__(self, tokens_BxL: jax.Array) -> jax.Array:
        if tokens_BxL.ndim != 2:
            raise ValueError(f"tokens must have shape [B, L], got {tokens_BxL.shape}")
        if tokens_BxL.shape[1] > self.cfg.max_len:
            raise ValueError(f"sequence length {tokens_BxL.shape[1]} exceeds model.max_len={self.cfg.max_len}")
        dt = DTYPES[self.cfg.dtype]
        x_BxLxD = jnp.take(_weight(self.constrain, self.embed, dt), tokens_BxL, axis=0)
        x_BxLxD = _constrain(self.constrain, x_BxLxD, ("batch", None, "act_embed"))
        for block in self.blocks:
            x_BxLxD = block(x_BxLxD)
        x_BxLxD = self.final_norm(x_BxLxD)
        w_DxV = (
            _weight(self.constrain, self.embed, dt).T
            if self.cfg.tie_embeddings
            else _weight(self.constrain, self.head, dt)
        )
        logits_BxLxV = dense(x_BxLxD, w_DxV, preferred_element_type=jnp.float32)
        return _constrain(self.constrain, logits_BxLxV, ("batch", None, "act_vocab"))


def apply(graphdef: nnx.GraphDef, params: nnx.State, tokens_BxL: jax.Array) -> jax.Array:
    """Pure forward pass for `graphdef, params = nnx.split(model)`: returns logits_BxLxV (float32). Jittable."""
    return nnx.merge(graphdef, params)(tokens_BxL)


def abstract_model(cfg: ModelConfig, seed: int = 0) -> Transformer:
    """The model with ShapeDtypeStruct leaves (no memory, no compute)."""
    return nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(seed)))


@functools.cache
def param_counts(cfg: ModelConfig) -> tuple[int, int]:
    """(total, non_embedding) parameter counts, from the abstract model.

    Non-embedding (Kaplan/Pythia convention) excludes the input embedding and the untied output projection; it
    includes LayerNorms and biases. With tied embeddings only the single shared matrix is excluded.
    """
    params = nnx.state(abstract_model(cfg), nnx.Param)
    total = sum(math.prod(x.shape) for x in jax.tree.leaves(params))
    embedding = math.prod(params["embed"].shape)
    if not cfg.tie_embeddings:
        embedding += math.prod(params["head"].shape)
    return total, total - embedding

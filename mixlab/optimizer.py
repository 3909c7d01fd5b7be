"""AdamW with masked weight decay, global-norm clipping, WSD/cosine schedules, and gradient accumulation."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

SCHEDULES = ("wsd", "cosine", "constant")
_NO_DECAY_LEAF = re.compile(r"bias|scale|.*_b")
_NORM_MODULE = re.compile(r".*norm.*|ln\d*")


def decay_steps(optim: ml_collections.ConfigDict, num_steps: int) -> int:
    """Number of final steps over which the WSD schedule decays linearly to zero."""
    return int(round(optim.decay_fraction * num_steps))


def make_schedule(optim: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
    """Learning rate as a function of the (0-based) step.

    Warmup is linear, lr * (step + 1) / warmup_steps, so the first update already moves. 'wsd' then holds lr until
    the last `decay_fraction * num_steps` steps and decays linearly to 0 at step num_steps; 'cosine' decays from lr
    to 0 at step num_steps along a half cosine; 'constant' holds lr (continual pre-training, where a run may stop
    early at a target or a guardrail).
    """
    lr, warmup = float(optim.lr), int(optim.warmup_steps)
    tail = decay_steps(optim, num_steps)

    def warm(step: jax.Array) -> jax.Array:
        return jnp.minimum(1.0, (step + 1.0) / warmup) if warmup > 0 else jnp.ones_like(step)

    def wsd(step: jax.Array) -> jax.Array:
        step = jnp.asarray(step, jnp.float32)
        decay = jnp.clip((num_steps - step) / tail, 0.0, 1.0) if tail > 0 else 1.0
        return lr * warm(step) * decay

    def cosine(step: jax.Array) -> jax.Array:
        step = jnp.asarray(step, jnp.float32)
        progress = jnp.clip((step - warmup) / max(num_steps - warmup, 1), 0.0, 1.0)
        return lr * warm(step) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))

    def constant(step: jax.Array) -> jax.Array:
        return lr * warm(jnp.asarray(step, jnp.float32))

    return {"wsd": wsd, "cosine": cosine, "constant": constant}[optim.schedule]


def _path_names(path: tuple) -> list[str]:
    """Dict keys / attribute names along a pytree path, without nnx's trailing `.value`."""
    names = [str(getattr(p, "key", getattr(p, "name", getattr(p, "idx", p)))) for p in path]
    return names[:-1] if names and isinstance(path[-1], jax.tree_util.GetAttrKey) and names[-1] == "value" else names


def decay_mask(params: Any) -> Any:
    """True for weights that get weight decay; False for norm parameters and biases (decided by their path).

    No decay: a leaf named `bias`, `scale` or `*_b`, or anything under a module whose name contains `norm` or is
    `ln<k>`.
    """

    def decays(path: tuple, leaf: Any) -> bool:
        names = [n.lower() for n in _path_names(path)]
        if names and _NO_DECAY_LEAF.fullmatch(names[-1]):
            return False
        return not any(_NORM_MODULE.fullmatch(n) for n in names)

    return jax.tree_util.tree_map_with_path(decays, params)


def make_optimizer(optim: ml_collections.ConfigDict, num_steps: int) -> optax.GradientTransformation:
    """clip_by_global_norm(clip_norm) followed by AdamW(b1, b2) with masked decoupled weight decay."""
    return optax.chain(
        optax.clip_by_global_norm(optim.clip_norm),
        optax.adamw(
            make_schedule(optim, num_steps),
            b1=optim.b1,
            b2=optim.b2,
            eps=optim.eps,
            weight_decay=optim.weight_decay,
            mask=decay_mask,
        ),
    )


def accumulate_gradients(
    sum_loss_fn: Callable[[Any, dict], tuple[jax.Array, dict]], params: Any, batch: dict, num_micro: int
) -> tuple[Any, dict]:
    """Gradients of a summed loss over `num_micro` microbatches, plus the summed auxiliaries.

    `sum_loss_fn(params, batch) -> (sum_loss, aux)` must return sums (not means) so microbatch results add exactly;
    the caller divides by the token count. Microbatch i takes rows i, i + A, i + 2A, ... (A = num_micro), which keeps
    the batch's leading-axis sharding intact.
    """
    grad_fn = jax.grad(sum_loss_fn, has_aux=True)
    if num_micro == 1:
        grads, aux = grad_fn(params, batch)
        return grads, aux

    def split(x: jax.Array) -> jax.Array:
        return jnp.moveaxis(x.reshape(x.shape[0] // num_micro, num_micro, *x.shape[1:]), 1, 0)

    micro = jax.tree_util.tree_map(split, batch)

    def body(carry: tuple[Any, dict], mb: dict) -> tuple[tuple[Any, dict], None]:
        grads, aux = grad_fn(params, mb)
        return jax.tree_util.tree_map(jnp.add, carry, (grads, aux)), None

    first = jax.tree_util.tree_map(lambda x: x[0], micro)
    rest = jax.tree_util.tree_map(lambda x: x[1:], micro)
    (grads, aux), _ = jax.lax.scan(body, grad_fn(params, first), rest)
    return grads, aux

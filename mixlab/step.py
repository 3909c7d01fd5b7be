"""The train step and state: loss, AdamW update, sharded initialisation, packed batches.

Everything static about a step is one hashable StepSpec, so two runs with equal shapes in one process share their
compiled programs (jit caches by function identity and static arguments), and the seed enters the initializer as
data, so runs differing only in seed share one compiled initializer. The state is a dict of plain nested dicts of
arrays (params, opt_state, step, rng): flattening it at each dispatch is ~10x cheaper than nnx Variables.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from mixlab import optimizer, sharding
from mixlab.mixture import Batch, MixtureStream
from mixlab.model import ModelConfig, Transformer, apply

# Order of the per-step metric vector fetched (one step late) from the device.
STEP_METRICS = ("loss_sum", "knowledge_loss_sum", "web_loss_sum", "count", "knowledge_count", "grad_norm", "lr")


def loss_sums(graphdef: nnx.GraphDef, params: Any, batch: dict[str, jax.Array]) -> tuple[jax.Array, dict]:
    """Summed masked cross-entropy (nats) and the sums needed to split it into knowledge and web tokens."""
    logits_BxLxV = apply(graphdef, params, batch["tokens"])
    ce_BxL = optax.softmax_cross_entropy_with_integer_labels(logits_BxLxV, batch["targets"])
    mask_BxL = batch["loss_mask"]
    knowledge_BxL = mask_BxL * (batch["source"] == 1)
    total = jnp.sum(ce_BxL * mask_BxL)
    aux = {
        "loss_sum": total,
        "knowledge_loss_sum": jnp.sum(ce_BxL * knowledge_BxL),
        "web_loss_sum": total - jnp.sum(ce_BxL * knowledge_BxL),
        "count": jnp.sum(mask_BxL),
        "knowledge_count": jnp.sum(knowledge_BxL),
    }
    return total, aux


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """Everything static about the train step, hashable, so equal runs in one process share compiled programs."""

    model: ModelConfig
    optim: tuple[tuple[str, Any], ...]  # sorted items of config.optim
    num_steps: int
    constrain: sharding.ActivationSharding  # activation sharding constraints for this mesh

    @classmethod
    def create(cls, model_cfg: ModelConfig, optim: ml_collections.ConfigDict, num_steps: int, mesh, rules) -> StepSpec:
        items = tuple(sorted(optim.to_dict().items()))
        return cls(model_cfg, items, num_steps, sharding.activation_sharding(mesh, rules))

    def model_fn(self, rngs: nnx.Rngs) -> Transformer:
        return Transformer(self.model, rngs=rngs, constrain=self.constrain)

    @property
    def optim_config(self) -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(dict(self.optim))

    @property
    def tx(self) -> optax.GradientTransformation:
        return optimizer.make_optimizer(self.optim_config, self.num_steps)

    @functools.cached_property
    def graphdef(self) -> nnx.GraphDef:
        return nnx.split(nnx.eval_shape(lambda: self.model_fn(nnx.Rngs(0))))[0]


@dataclasses.dataclass(frozen=True)
class LogitsFn:
    """The model's evaluate.ForwardFn: hashable by value, so evaluate's jitted scorers are reused across runs.

    With `replicate_on` set (multi-process runs), logits are gathered to every device, so the scorer's per-item
    results are fully replicated and each process can read them (a batch-sharded result spans other hosts).
    """

    graphdef: nnx.GraphDef
    replicate_on: jax.sharding.Mesh | None = None

    def __call__(self, params: Any, tokens_BxL: jax.Array) -> jax.Array:
        logits_BxLxV = apply(self.graphdef, params, tokens_BxL)
        if self.replicate_on is None:
            return logits_BxLxV
        return jax.lax.with_sharding_constraint(logits_BxLxV, NamedSharding(self.replicate_on, PartitionSpec()))


def train_step(spec: StepSpec, state: dict, packed_Bx4xL: jax.Array) -> tuple[dict, jax.Array]:
    """One optimizer step on the global (packed) batch: (state, metrics [len(STEP_METRICS)] float32)."""
    batch = unpack(packed_Bx4xL)
    loss_fn = functools.partial(loss_sums, spec.graphdef)
    grads, aux = optimizer.accumulate_gradients(loss_fn, state["params"], batch, spec.optim_config.grad_accum)
    count = jnp.maximum(aux["count"], 1.0)
    grads = jax.tree_util.tree_map(lambda g: g / count, grads)
    updates, opt_state = spec.tx.update(grads, state["opt_state"], state["params"])
    new_state = {
        "params": optax.apply_updates(state["params"], updates),
        "opt_state": opt_state,
        "step": state["step"] + 1,
        "rng": jax.random.key_data(jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), state["step"])),
    }
    lr = optimizer.make_schedule(spec.optim_config, spec.num_steps)(state["step"])
    values = {**aux, "grad_norm": optax.tree.norm(grads), "lr": lr}
    return new_state, jnp.stack([jnp.asarray(values[k], jnp.float32) for k in STEP_METRICS])


# ---------------------------------------------------------------------------------------------------------- state


def _init(spec: StepSpec, key_data: jax.Array) -> dict:
    """The train state as plain nested dicts of arrays (cheap to flatten at every dispatch, unlike nnx Variables)."""
    key = jax.random.wrap_key_data(key_data)
    params = nnx.to_pure_dict(nnx.state(spec.model_fn(nnx.Rngs(key))))
    return {"params": params, "opt_state": spec.tx.init(params), "step": jnp.zeros((), jnp.int32), "rng": key_data}


def state_shardings(spec: StepSpec, mesh, rules) -> dict:
    """NamedShardings of the train state: parameters and optimizer moments by logical axes, the rest replicated."""
    replicated = NamedSharding(mesh, PartitionSpec())
    abstract_params = nnx.state(nnx.eval_shape(lambda: spec.model_fn(nnx.Rngs(0))))
    params = nnx.to_pure_dict(sharding.param_shardings(abstract_params, mesh, rules))
    abstract = jax.eval_shape(functools.partial(_init, spec), jax.random.key_data(jax.random.key(0)))
    opt_state = optax.tree_map_params(
        spec.tx, lambda _, s: s, abstract["opt_state"], params, transform_non_params=lambda _: replicated
    )
    return {"params": params, "opt_state": opt_state, "step": replicated, "rng": replicated}


def init_state(spec: StepSpec, mesh, rules, seed: int) -> tuple[dict, dict]:
    """(state, shardings): the train state created already sharded (eval_shape, then jit(init, out_shardings)).

    The seed enters as data, not as a constant, so every seed shares one compiled initializer.
    """
    shardings = state_shardings(spec, mesh, rules)
    init = jax.jit(_init, static_argnums=0, out_shardings=shardings)
    return init(spec, jax.random.key_data(jax.random.key(seed))), shardings


def pack(batch: Batch) -> np.ndarray:
    """[Bp, 4, L] int32 (tokens, targets, loss_mask, source): one host-to-device transfer per step instead of four."""
    mask = batch.loss_mask
    if not np.all((mask == 0) | (mask == 1)):
        raise ValueError("loss_mask must be 0/1 to be packed with the tokens")
    return np.stack([batch.tokens, batch.targets, mask.astype(np.int32), batch.source.astype(np.int32)], axis=1)


def unpack(packed_Bx4xL: jax.Array) -> dict[str, jax.Array]:
    return {
        "tokens": packed_Bx4xL[:, 0],
        "targets": packed_Bx4xL[:, 1],
        "loss_mask": packed_Bx4xL[:, 2].astype(jnp.float32),
        "source": packed_Bx4xL[:, 3],
    }


def device_batch(packed: np.ndarray, batch_sharding: NamedSharding, global_batch: int) -> jax.Array:
    """This process's packed rows -> one global array sharded over the batch axes (no host sync)."""
    return jax.make_array_from_process_local_data(batch_sharding, packed, (global_batch, *packed.shape[1:]))


class DeviceStream:
    """Wraps the MixtureStreams of K runs (K = 1: one run) so the prefetch thread also packs each step's batches and
    starts their transfer: one [Bp, 4, L] array for a single run, one [K, Bp, 4, L] array for an ensemble."""

    def __init__(self, streams: list[MixtureStream], batch_sharding: NamedSharding):
        self.streams, self.batch_sharding = streams, batch_sharding

    def batch(self, step: int, process_index: int = 0, process_count: int = 1) -> jax.Array:
        packed = [pack(s.batch(step, process_index, process_count)) for s in self.streams]
        global_batch = self.streams[0].global_batch
        if len(packed) == 1:
            return device_batch(packed[0], self.batch_sharding, global_batch)
        stacked = np.stack(packed)
        shape = (len(packed), global_batch, *stacked.shape[2:])
        return jax.make_array_from_process_local_data(self.batch_sharding, stacked, shape)


def jit_train_step(shardings: dict, batch_sharding: NamedSharding, mesh) -> Any:
    """train_step jitted with explicit in/out shardings and the state donated (spec is static)."""
    return jax.jit(
        train_step,
        static_argnums=0,
        in_shardings=(shardings, batch_sharding),
        out_shardings=(shardings, NamedSharding(mesh, PartitionSpec())),
        donate_argnums=1,
    )


# ------------------------------------------------------------------------------------------------------ ensembles
# K runs of one StepSpec in one program: every array of the state and the batch gains a leading member axis (K),
# unsharded, and the step is train_step of every member: vmapped on accelerators (one batched program fills the
# device), looped (lax.map) on CPU, where one core gains nothing from batching and vmap's batched matmuls ran 30-40%
# slower per token than separate runs at K = 8 (BUILD_NOTES.md "What ensembles buy on this CPU"). Each member has its
# own parameters, optimizer state, RNG and batches; nothing is shared across the member axis, so a member's numbers
# are those of its run alone (to float tolerance: batched matmuls may sum in another order).


def stack_sharding(s: NamedSharding) -> NamedSharding:
    """The sharding of K stacked copies of an array sharded as `s`: a leading unsharded member axis."""
    return NamedSharding(s.mesh, PartitionSpec(None, *s.spec))


def ensemble_train_step(
    spec: StepSpec, state_K: dict, packed_KxBx4xL: jax.Array, vectorize: bool | None = None
) -> tuple[dict, jax.Array]:
    """train_step of every member: (state_K, metrics [K, len(STEP_METRICS)]); vmapped if `vectorize` (default: on
    any backend but the CPU), else one member after another."""
    member_step = functools.partial(train_step, spec)
    if vectorize is None:
        vectorize = jax.default_backend() != "cpu"
    if vectorize:
        return jax.vmap(member_step)(state_K, packed_KxBx4xL)
    return jax.lax.map(lambda member: member_step(*member), (state_K, packed_KxBx4xL))


def _init_ensemble(spec: StepSpec, key_data_K: jax.Array) -> dict:
    return jax.vmap(functools.partial(_init, spec))(key_data_K)


def init_ensemble_state(spec: StepSpec, mesh, rules, seeds: list[int]) -> tuple[dict, dict]:
    """(state_K, member shardings): the stacked train states of seeds[0..K-1], created sharded in one program."""
    shardings = state_shardings(spec, mesh, rules)
    stacked = jax.tree_util.tree_map(stack_sharding, shardings)
    keys = jnp.stack([jax.random.key_data(jax.random.key(seed)) for seed in seeds])
    init = jax.jit(_init_ensemble, static_argnums=0, out_shardings=stacked)
    return init(spec, keys), shardings


def jit_ensemble_step(shardings: dict, batch_sharding: NamedSharding, mesh) -> Any:
    """ensemble_train_step jitted like jit_train_step, from the shardings of one member."""
    stacked = jax.tree_util.tree_map(stack_sharding, shardings)
    return jax.jit(
        ensemble_train_step,
        static_argnums=0,
        in_shardings=(stacked, stack_sharding(batch_sharding)),
        out_shardings=(stacked, NamedSharding(mesh, PartitionSpec())),
        donate_argnums=1,
    )


def member_state(state_K: Any, k: int) -> Any:
    """Member k's slice of a stacked state (or of any stacked pytree)."""
    return jax.tree_util.tree_map(lambda x: x[k], state_K)


def stack_states(states: list[Any], shardings: dict) -> Any:
    """K member states (each sharded by `shardings`) -> one stacked state, sharded by stack_sharding."""
    stacked = jax.tree_util.tree_map(stack_sharding, shardings)
    return jax.jit(lambda *xs: jax.tree_util.tree_map(lambda *a: jnp.stack(a), *xs), out_shardings=stacked)(*states)

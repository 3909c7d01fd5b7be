"""Golden one-step test: the trainer's first step on a fixed batch gives recorded loss and norms.

The t25k model at a fixed seed, one CPU device, one fixed batch, through the trainer's own code (StepSpec.create,
init_state, jit_train_step). Recorded: the loss and the gradient norm (from the step's metric vector), the global
parameter norm after the step, and the norm of the update (the parameter norm alone misses a 1% change of lr).
A failure prints the new values to paste.
"""

import jax
import numpy as np
import optax
import pytest

from mixlab import sharding, step
from mixlab.config import base_config
from mixlab.mixture import Batch
from mixlab.model import ModelConfig

V, L, B, SEED, NUM_STEPS = 256, 32, 8, 0, 100
RTOL = 1e-5  # float32 on CPU, one device
GOLDEN = {
    "loss": 5.687568455116422,
    "grad_norm": 0.7929236888885498,
    "param_norm": 29.342315673828125,
    "update_norm": 0.1972733587026596,
}
UPDATE_HELP = (
    "The trainer's first step no longer gives the golden values. Update GOLDEN in tests/test_golden_step.py ONLY for "
    "a deliberate change of the model, the loss, the initialisation or the optimizer, with a note in BUILD_NOTES.md "
    "saying what changed and why, in the same commit; otherwise the change is a bug. The new values, to paste:\n"
)


def fixed_batch() -> Batch:
    """A seeded [B, L] batch, 30% knowledge targets, with one junction slot out of the loss like the stream's."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, V, (B, L + 1), dtype=np.int32)
    source = (rng.random((B, L)) < 0.3).astype(np.int8)
    loss_mask = np.ones((B, L), np.float32)
    loss_mask[0, 5] = 0.0
    web_tokens = int(((source == 0) & (loss_mask == 1)).sum())
    return Batch(x[:, :-1], x[:, 1:], loss_mask, source, 0, int(source.sum()), web_tokens)


def one_step() -> dict[str, float]:
    config = base_config()
    config.model.size = "t25k"
    config.optim.warmup_steps = 0  # the first step moves at the full lr
    model_cfg = ModelConfig.from_config(config.model.to_dict(), vocab_size=V, max_len=L)
    mesh = sharding.make_mesh({"data": -1}, num_devices=1)
    rules = sharding.resolve_rules()
    spec = step.StepSpec.create(model_cfg, config.optim, NUM_STEPS, mesh, rules)
    state, shardings = step.init_state(spec, mesh, rules, SEED)
    before = jax.device_get(state["params"])
    batch_sharding = sharding.batch_sharding(mesh, rules)
    packed = step.device_batch(step.pack(fixed_batch()), batch_sharding, B)
    state, metrics = step.jit_train_step(shardings, batch_sharding, mesh)(spec, state, packed)
    m = dict(zip(step.STEP_METRICS, np.asarray(metrics, np.float64), strict=True))
    after = jax.device_get(state["params"])
    return {
        "loss": float(m["loss_sum"] / m["count"]),
        "grad_norm": float(m["grad_norm"]),
        "param_norm": float(optax.tree.norm(after)),
        "update_norm": float(optax.tree.norm(jax.tree.map(np.subtract, after, before))),
    }


def test_one_train_step_matches_golden_values():
    got = one_step()
    differ = [key for key, expected in GOLDEN.items() if got[key] != pytest.approx(expected, rel=RTOL)]
    paste = "GOLDEN = {\n" + "".join(f'    "{k}": {v!r},\n' for k, v in got.items()) + "}"
    assert not differ, f"{differ} differ by more than rel={RTOL}. {UPDATE_HELP}{paste}"

"""Sharding: mesh construction and errors, golden PartitionSpecs, sharded forward/grad == single device."""

import functools
import json
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from mixlab.config import base_config
from mixlab.model import SIZES, ModelConfig, abstract_model, apply
from mixlab.sharding import (
    batch_sharding,
    check_batch,
    logical_to_spec,
    make_mesh,
    param_shardings,
    partition_specs,
    resolve_rules,
)
from mixlab.step import StepSpec, init_state

GOLDEN_DIR = pathlib.Path(__file__).parent / "golden"
GOLDEN_MODEL = ModelConfig(vocab_size=1024, max_len=64, **SIZES["t100k"])
GOLDEN_MESHES = {"data8": {"data": 8}, "data2_fsdp2_tensor2": {"data": 2, "fsdp": 2, "tensor": 2}}
REGEN_ENV = "MIXLAB_REGEN_GOLDEN"
REGEN_HELP = (
    f"Golden PartitionSpecs differ. Regenerate ({REGEN_ENV}=1 pytest tests/test_sharding.py) ONLY when the model's "
    "parameters or the sharding RULES changed on purpose, and review the JSON diff in the commit; otherwise the "
    "sharding changed by accident."
)


def test_make_mesh_infers_remaining_devices():
    assert dict(make_mesh({"mesh": {"data": -1, "fsdp": 1, "tensor": 1}}).shape) == {"data": 8, "fsdp": 1, "tensor": 1}
    assert dict(make_mesh({"data": 2, "fsdp": -1, "tensor": 2}).shape) == {"data": 2, "fsdp": 2, "tensor": 2}
    assert dict(make_mesh({"tensor": -1}).shape) == {"data": 1, "fsdp": 1, "tensor": 8}
    mesh = make_mesh({"data": -1}, num_devices=1)
    assert mesh.devices.size == 1 and dict(mesh.shape) == {"data": 1, "fsdp": 1, "tensor": 1}


@pytest.mark.parametrize(
    ("sizes", "num_devices", "match"),
    [
        ({"data": -1, "fsdp": 3}, None, r"sharding\.mesh \(data=-1 x fsdp=3 x tensor=1\) does not divide the 8"),
        ({"data": 2, "fsdp": 2}, None, r"uses 4 of 8 devices"),
        ({"data": -1, "fsdp": -1}, None, r"only one mesh axis may be -1"),
        ({"data": -1, "model": 2}, None, r"sharding\.mesh\.model"),
        ({"data": 0}, None, r"sharding\.mesh\.data must be a positive int or -1"),
        ({"data": -1}, 9, r"num_devices=9"),
    ],
)
def test_bad_mesh(sizes, num_devices, match):
    with pytest.raises(ValueError, match=match):
        make_mesh({"mesh": sizes}, num_devices=num_devices)


def test_batch_must_divide_data_parallel_size():
    mesh = make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    check_batch(8, mesh)
    with pytest.raises(ValueError, match=r"data\.global_batch=6 is not divisible by the data-parallel size 4"):
        check_batch(6, mesh)
    check_batch(6, make_mesh({"data": 1, "fsdp": 1, "tensor": 8}))
    assert batch_sharding(mesh).spec == PartitionSpec(("data", "fsdp"))


def test_rules():
    assert logical_to_spec(("embed", None, "heads", "kv")) == PartitionSpec("fsdp", None, "tensor", None)
    assert resolve_rules({"embed": None, "kv": ["tensor"]})["kv"] == "tensor"
    with pytest.raises(ValueError, match=r"sharding\.rules\.emb"):
        resolve_rules({"emb": "fsdp"})
    with pytest.raises(ValueError, match=r"sharding\.rules\.embed='model'"):
        resolve_rules({"embed": "model"})
    with pytest.raises(ValueError, match="map mesh axis \\['tensor'\\] twice"):
        logical_to_spec(("heads", "mlp"))
    with pytest.raises(ValueError, match="'depth' has no sharding rule"):
        logical_to_spec(("depth",))


def test_indivisible_parameter_is_a_clear_error():
    cfg = ModelConfig(vocab_size=1024, max_len=64, **SIZES["t57k"])  # H = 3 heads
    params = nnx.state(abstract_model(cfg))
    with pytest.raises(
        ValueError, match=r"blocks\.0\.out_w: dim 0 of size 3 is not divisible by mesh axes \('tensor',\) \(2\)"
    ):
        param_shardings(params, make_mesh({"data": 2, "fsdp": 2, "tensor": 2}))


def _to_json(spec: PartitionSpec) -> list:
    return [list(entry) if isinstance(entry, tuple) else entry for entry in spec]


def _dump(golden: dict) -> str:
    """JSON with one line per parameter, so that a diff shows exactly which specs changed."""
    specs = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(golden["specs"].items()))
    head = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in golden.items() if k != "specs")
    return f'{{\n{head},\n "specs": {{\n{specs}\n }}\n}}\n'


@pytest.mark.parametrize("name", list(GOLDEN_MESHES))
def test_golden_partition_specs(name):
    mesh = make_mesh(GOLDEN_MESHES[name])
    specs = partition_specs(nnx.state(abstract_model(GOLDEN_MODEL)), mesh)
    current = {
        "model": "t100k, vocab_size=1024",
        "mesh": dict(mesh.shape),
        "specs": {path: _to_json(spec) for path, spec in specs.items()},
    }
    path = GOLDEN_DIR / f"sharding_{name}.json"
    if os.environ.get(REGEN_ENV) == "1":
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_text(_dump(current))
    golden = json.loads(path.read_text())
    assert current == golden, REGEN_HELP


@pytest.fixture(scope="module")
def models():
    """The same model (same seed) created sharded by step.init_state, the trainer's initializer, on 1 device and on
    a (data=2, fsdp=2, tensor=2) mesh: per mesh (mesh, spec, params, parameter shardings)."""
    cfg = ModelConfig(vocab_size=256, max_len=32, **SIZES["t25k"])
    rules = resolve_rules()
    out = []
    for mesh in (make_mesh({"data": -1}, num_devices=1), make_mesh({"data": 2, "fsdp": 2, "tensor": 2})):
        spec = StepSpec.create(cfg, base_config().optim, 100, mesh, rules)
        state, shardings = init_state(spec, mesh, rules, seed=3)
        out.append((mesh, spec, state["params"], shardings["params"]))
    return out


def test_params_created_sharded_and_independent_of_the_mesh(models):
    (_, _, params1, _), (_, _, params8, shardings8) = models
    for p1, p8, s in zip(jax.tree.leaves(params1), jax.tree.leaves(params8), jax.tree.leaves(shardings8), strict=True):
        assert p8.sharding == s
        assert len(p1.sharding.device_set) == 1
        np.testing.assert_array_equal(p1, p8)
    assert params8["blocks"][0]["qkv_w"].sharding.spec == PartitionSpec("fsdp", None, "tensor", None)


def _loss(graphdef, params, tokens_BxL):
    logits = apply(graphdef, params, tokens_BxL[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens_BxL[:, 1:]).mean(), logits


def _relative_error(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_sharded_forward_and_grad_equal_single_device(models):
    tokens = jax.random.randint(jax.random.key(0), (8, 17), 0, 256)
    results = []
    for mesh, spec, params, shardings in models:
        check_batch(tokens.shape[0], mesh)
        step = jax.jit(
            jax.value_and_grad(functools.partial(_loss, spec.graphdef), has_aux=True),
            in_shardings=(shardings, batch_sharding(mesh)),
            out_shardings=((NamedSharding(mesh, PartitionSpec()), batch_sharding(mesh)), shardings),
        )
        (loss, logits), grads = step(params, jax.device_put(tokens, batch_sharding(mesh)))
        assert len(logits.sharding.device_set) == mesh.devices.size
        results.append((loss, logits, grads))
    (loss1, logits1, grads1), (loss8, logits8, grads8) = results
    assert _relative_error(loss8, loss1) < 1e-5
    assert _relative_error(logits8, logits1) < 1e-5
    for (path, g1), g8 in zip(jax.tree_util.tree_leaves_with_path(grads1), jax.tree.leaves(grads8), strict=True):
        assert _relative_error(g8, g1) < 1e-5, jax.tree_util.keystr(path)


def test_activation_batch_must_divide(models):
    """A constrained model refuses a batch that does not split over ('data', 'fsdp'), while tracing."""
    _, (_, spec8, params8, _) = models
    match = r"activation \('batch', None, 'act_embed'\): dim 0 of size 6 is not divisible"
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(functools.partial(apply, spec8.graphdef), params8, jax.ShapeDtypeStruct((6, 8), jnp.int32))

"""Device mesh ('data', 'fsdp', 'tensor'), logical-axis rules, and the NamedShardings they give parameters.

Mesh axes are `AxisType.Auto` (GSPMD propagation): the trainer jits with explicit in/out NamedShardings
(mixlab.step.init_state creates the train state already sharded with them).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")
MeshAxes = str | tuple[str, ...] | None

# Logical axis -> mesh axis (or axes, or None = replicated). Parameters: FSDP shards the model width, tensor
# parallelism shards heads, MLP width and vocabulary. Activations: the batch is split over data and fsdp, the model
# width is whole on each device (FSDP gathers weights, not activations), heads / MLP / vocab follow tensor.
RULES: dict[str, MeshAxes] = {
    "vocab": "tensor",
    "embed": "fsdp",
    "heads": "tensor",
    "kv": None,
    "mlp": "tensor",
    "norm": None,
    "batch": ("data", "fsdp"),
    "act_embed": None,
    "act_heads": "tensor",
    "act_mlp": "tensor",
    "act_vocab": "tensor",
}


def resolve_rules(overrides: Mapping[str, Any] | None = None) -> dict[str, MeshAxes]:
    """RULES updated with config.sharding.rules (logical axis -> mesh axis name, list of names, or None)."""
    rules = dict(RULES)
    for logical, target in (overrides or {}).items():
        if logical not in RULES:
            raise ValueError(f"unknown logical axis sharding.rules.{logical}; known: {sorted(RULES)}")
        names = (target,) if isinstance(target, str) else tuple(target) if target is not None else ()
        for name in names:
            if name not in MESH_AXES:
                raise ValueError(f"sharding.rules.{logical}={target!r}: {name!r} is not a mesh axis {MESH_AXES}")
        rules[logical] = None if not names else names[0] if len(names) == 1 else names
    return rules


@dataclasses.dataclass(frozen=True)
class ActivationSharding:
    """The model's `constrain` hook: with_sharding_constraint from logical activation axes (hashable, static)."""

    mesh: Mesh
    rules: tuple[tuple[str, MeshAxes], ...]

    def __call__(self, x: jax.Array, logical_axes: tuple[str | None, ...]) -> jax.Array:
        spec = logical_to_spec(logical_axes, dict(self.rules))
        return jax.lax.with_sharding_constraint(x, _sharding(f"activation {logical_axes}", x.shape, spec, self.mesh))


def activation_sharding(mesh: Mesh, rules: Mapping[str, MeshAxes] | None = None) -> ActivationSharding:
    """The `constrain` hook to pass to Transformer(..., constrain=...) for this mesh and rules."""
    rules = RULES if rules is None else rules
    return ActivationSharding(mesh, tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in rules.items()))


def make_mesh(sharding_cfg: Mapping[str, Any], num_devices: int | None = None) -> Mesh:
    """Mesh from config.sharding (its `mesh` sizes, or the sizes themselves); -1 = all remaining devices.

    Uses the first `num_devices` devices (default: all). The product of the sizes must equal that count.
    """
    sizes = sharding_cfg["mesh"] if "mesh" in sharding_cfg else sharding_cfg
    devices = jax.devices()
    n = len(devices) if num_devices is None else num_devices
    if not 1 <= n <= len(devices):
        raise ValueError(f"num_devices={num_devices} but {len(devices)} devices are available")
    for key in sizes:
        if key not in MESH_AXES:
            raise ValueError(f"unknown mesh axis sharding.mesh.{key}; axes are {MESH_AXES}")
    shape = {axis: sizes[axis] if axis in sizes else 1 for axis in MESH_AXES}
    for axis, size in shape.items():
        if not isinstance(size, int) or isinstance(size, bool) or (size < 1 and size != -1):
            raise ValueError(f"sharding.mesh.{axis} must be a positive int or -1, got {size!r}")
    inferred = [axis for axis, size in shape.items() if size == -1]
    if len(inferred) > 1:
        raise ValueError(f"only one mesh axis may be -1, got {inferred} (sharding.mesh)")
    fixed = math.prod(size for size in shape.values() if size != -1)
    described = " x ".join(f"{axis}={size}" for axis, size in shape.items())
    if n % fixed:
        raise ValueError(f"sharding.mesh ({described}) does not divide the {n} devices")
    if inferred:
        shape[inferred[0]] = n // fixed
    elif fixed != n:
        raise ValueError(f"sharding.mesh ({described}) uses {fixed} of {n} devices; set one axis to -1")
    return jax.make_mesh(
        tuple(shape.values()), MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES), devices=devices[:n]
    )


def logical_to_spec(logical_axes: Sequence[str | None], rules: Mapping[str, MeshAxes] | None = None) -> PartitionSpec:
    """PartitionSpec for a tuple of logical axis names (None = replicated dim)."""
    rules = RULES if rules is None else rules
    spec, used = [], set()
    for logical in logical_axes:
        if logical is None:
            spec.append(None)
            continue
        if logical not in rules:
            raise ValueError(f"logical axis {logical!r} has no sharding rule; rules cover {sorted(rules)}")
        target = rules[logical]
        names = _mesh_names(target)
        if used & set(names):
            raise ValueError(f"logical axes {tuple(logical_axes)} map mesh axis {sorted(used & set(names))} twice")
        used |= set(names)
        spec.append(target)
    return PartitionSpec(*spec)


def _mesh_names(target: MeshAxes) -> tuple[str, ...]:
    return () if target is None else (target,) if isinstance(target, str) else tuple(target)


def _sharding(path: str, shape: tuple[int, ...], spec: PartitionSpec, mesh: Mesh) -> NamedSharding:
    """NamedSharding for `spec` without mesh axes of size 1; checks that every sharded dim divides evenly."""
    entries = []
    for dim, (size, target) in enumerate(zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec)), strict=True)):
        names = tuple(name for name in _mesh_names(target) if mesh.shape[name] > 1)
        parts = math.prod(mesh.shape[name] for name in names)
        if size % parts:
            raise ValueError(f"{path}: dim {dim} of size {size} is not divisible by mesh axes {names} ({parts})")
        entries.append(None if not names else names[0] if len(names) == 1 else names)
    return NamedSharding(mesh, PartitionSpec(*entries))


def _path_str(path: Sequence[Any]) -> str:
    """'blocks.0.qkv_w' for a pytree key path."""
    return ".".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def param_shardings(tree: Any, mesh: Mesh, rules: Mapping[str, MeshAxes] | None = None) -> Any:
    """NamedShardings matching `tree` (an nnx State, or any pytree holding nnx Variables, e.g. optax state).

    Variables with logical names (`out_sharding` metadata) follow the rules; any other array leaf is replicated.
    Mesh axes of size 1 are left out of the specs. A dim that does not divide its mesh axes is a clear error,
    raised before any compile.
    """

    def leaf_sharding(path, x):
        where = _path_str(path)
        if isinstance(x, nnx.Variable):
            names = x.get_metadata().get("out_sharding")
            spec = logical_to_spec(names, rules) if names else PartitionSpec()
            return x.replace(_sharding(where, x.shape, spec, mesh))
        return NamedSharding(mesh, PartitionSpec())

    return jax.tree_util.tree_map_with_path(leaf_sharding, tree, is_leaf=lambda x: isinstance(x, nnx.Variable))


def partition_specs(tree: Any, mesh: Mesh, rules: Mapping[str, MeshAxes] | None = None) -> dict[str, PartitionSpec]:
    """{'path.to.param': PartitionSpec} for every array in `tree` (used by the golden-sharding test)."""
    shardings = jax.tree_util.tree_leaves_with_path(param_shardings(tree, mesh, rules))
    return {_path_str(path[:-1]): sharding.spec for path, sharding in shardings}


def batch_sharding(mesh: Mesh, rules: Mapping[str, MeshAxes] | None = None) -> NamedSharding:
    """Sharding for [B, ...] arrays: the batch dim follows the "batch" rule (default ('data', 'fsdp'))."""
    return NamedSharding(mesh, logical_to_spec(("batch",), rules))


def check_batch(
    batch_size: int, mesh: Mesh, rules: Mapping[str, MeshAxes] | None = None, key: str = "data.global_batch"
) -> None:
    """Raise (before any compile) unless `batch_size` divides evenly over the batch's mesh axes."""
    names = _mesh_names(logical_to_spec(("batch",), rules)[0])
    parts = math.prod(mesh.shape[name] for name in names)
    if batch_size % parts:
        described = " x ".join(f"{name}={mesh.shape[name]}" for name in names)
        raise ValueError(f"{key}={batch_size} is not divisible by the data-parallel size {parts} ({described})")

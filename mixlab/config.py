"""The training config: every key with its default, the run-length rule, and `validate`, the one validator.

Config files (experiments/configs/*.py) start from `base_config()`. `validate(config)` checks the whole resolved
config (keys, data, model, optimizer, train, eval, sharding) before any data is built or compiled; the trainer, the
sweep (every point, before the first run starts) and the GPU check call it. Every error is a ConfigError naming the
key, its value and what is allowed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jax
import ml_collections
from ml_collections.config_dict import placeholder

from data_gen.synbio_fields import resolve_pool_sizes
from data_gen.synthetic_web import SyntheticWeb
from data_gen.tasks import KNOWLEDGE_SETS, universe_size
from mixlab import optimizer, sharding
from mixlab.model import ModelConfig

# Exactly one of these gives the run length; setting one zeroes the other two (`with_run_length`).
STEP_KEYS = ("train.num_steps", "train.tokens", "train.exposures")
# Keys that may change between a checkpoint and its resumption: how the run is laid out and monitored, not what it
# computes. Entries ending in "." are prefixes.
RUNTIME_KEYS = (
    "sharding.",
    "model.attention",
    "train.log_every",
    "train.eval_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.milestone_every",
    "train.tensorboard",
    "eval.batch_size",
    "data.dir",
    "derived.",
)
# Keys in which the members of an ensemble (mixlab.train.train_ensemble) may differ: what a run learns from and is
# evaluated on, not the shape of its step.
MEMBER_KEYS = (
    "seed",
    "data.ratio",
    "data.subsample",
    "data.synbio_seed",
    "data.num_people",
    "data.power_law_groups",
    "data.power_law_beta",
    "data.ckm_tau",
    "data.max_n",
    "data.task_eval_items",
    "data.task_seed",
    "eval.num_people",
    "eval.seed",
)
WEB_KEYWORDS = ("default", "debian-docs", "synthetic", "none")
TFDS_PREFIX = "tfds:"


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key, the value and what is allowed."""


class ConfigMismatchError(ValueError):
    """The config of a run folder or checkpoint differs from the config of the run trying to use it."""


@contextlib.contextmanager
def loading(what: str) -> Iterator[None]:
    """Whatever loading a config or sweep file raises inside (it is missing, does not import, its get_config fails)
    as one ConfigError line naming `what`, e.g. "--config=x.py: FileNotFoundError: ..." (the cause is chained)."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(f"{what}: {type(e).__name__}: {e}".splitlines()[0]) from e


def load_module(spec: str, kind: str) -> tuple[Any, str, str]:
    """Import the Python file of "path.py[:arg]"; returns (module, path, arg)."""
    path, _, arg = spec.partition(":")
    if not Path(path).is_file():
        raise FileNotFoundError(f"{kind} file {path!r} does not exist")
    module_spec = importlib.util.spec_from_file_location(f"_{kind}_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module, path, arg


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Load a training config file "path.py[:arg]" the way config_flags does (get_config(arg) or get_config())."""
    module, _, arg = load_module(spec, "config")
    return module.get_config(arg) if arg else module.get_config()


def base_config() -> ml_collections.ConfigDict:
    """Defaults for every key (a tiny CPU run). Exactly one of train.num_steps/tokens/exposures must be > 0."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.data = dict(
        dir="data",
        web="default",
        tokenizer="",
        vocab_size=1024,
        knowledge="synbio",  # data_gen.tasks.KNOWLEDGE_SETS: SynBio, or a task ("slope", "max_of_n")
        max_n=30,  # numbers per question of Max-over-N
        task_eval_items=1000,  # held-out questions of a task (never trained on)
        task_seed=0,  # which held-out set
        num_people=1000,
        synbio_seed=0,
        subsample=1.0,
        power_law_groups=0,
        power_law_beta=1.5,
        ckm_tau=0.0,  # compact knowledge mixing: tuples worth tau x the biographies' tokens, inside data.ratio
        ratio=0.2,
        seq_len=64,
        global_batch=32,
        pool_sizes=resolve_pool_sizes(None),  # SynBio name and attribute pools (defaults: the full lists)
        synthetic={f.name: f.default for f in dataclasses.fields(SyntheticWeb)},  # used when web == "synthetic"
    )
    c.model = dict(
        size="t57k",
        dtype="float32",
        attention="auto",  # mixlab.attention.IMPLEMENTATIONS: how attention is computed, not what
        num_layers=placeholder(int),
        D=placeholder(int),
        H=placeholder(int),
        F=placeholder(int),
        rotary_fraction=placeholder(float),
        parallel_residual=placeholder(bool),
        tie_embeddings=placeholder(bool),
    )
    c.optim = dict(
        lr=1e-3,
        schedule="wsd",
        warmup_steps=20,
        decay_fraction=0.1,
        weight_decay=0.1,
        b1=0.9,
        b2=0.95,
        eps=1e-8,
        clip_norm=1.0,
        grad_accum=1,
    )
    c.train = dict(
        num_steps=0,
        tokens=0,
        exposures=0.0,
        log_every=50,
        eval_every=250,
        checkpoint_every=500,
        keep_checkpoints=2,
        milestone_every=0,
        tensorboard=True,
        eval_per_decade=0,  # > 0: also evaluate at this many log-spaced steps per decade (tokens-to-target)
        stop_at_acc=placeholder(float),  # stop once an eval's acc reaches this (None = run to the budget)
        init_from="",  # warm start: a complete run folder, or one checkpoint folder <run>/checkpoints/<step>
        guard_web_loss_rise=placeholder(float),  # stop once the web loss exceeds its step-0 value by this much
    )
    c.eval = dict(num_people=200, seed=0, batch_size=256, web_batches=4)
    c.sharding = dict(
        num_devices=-1,  # use the first n devices (-1 = all); e.g. 1 for a tiny model on a multi-device host
        mesh=dict(data=-1, fsdp=1, tensor=1),
        # mixlab.sharding.RULES, the one table of defaults; a rule that is None (replicated) is an unset placeholder
        rules={k: placeholder(str) if v is None else v for k, v in sharding.RULES.items()},
    )
    return c


def as_dict(config: ml_collections.ConfigDict | Mapping[str, Any]) -> dict[str, Any]:
    """A plain nested dict (placeholders resolved to their values)."""
    return config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists stay leaves."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def with_run_length(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The run-length rule: overrides that set one of STEP_KEYS also set the other two to 0 (in front of them)."""
    if not any(key in overrides for key in STEP_KEYS):
        return dict(overrides)
    return {**{key: 0 for key in STEP_KEYS if key not in overrides}, **overrides}


def override(config: ml_collections.ConfigDict, overrides: Mapping[str, Any], where: str = "override") -> None:
    """Set dotted keys of `config` in place, with the run-length rule; ConfigError for an unknown key or a value of
    the wrong type (ml_collections' type check)."""
    for key, value in with_run_length(overrides).items():
        parent_key, _, leaf = key.rpartition(".")
        parent = config
        for part in parent_key.split(".") if parent_key else []:
            parent = parent.get(part) if isinstance(parent, ml_collections.ConfigDict) else None
        if not isinstance(parent, ml_collections.ConfigDict) or leaf not in parent:
            raise ConfigError(f"{where}: unknown config key {key!r}")
        try:
            setattr(parent, leaf, value)
        except TypeError as e:
            raise ConfigError(f"{where}: {key}={value!r} does not fit the config: {e}") from None


# ------------------------------------------------------------------------------------------------- same run


def config_diff(saved: Mapping[str, Any], current: Mapping[str, Any], ignore: tuple[str, ...] = RUNTIME_KEYS) -> list:
    """Dotted keys whose values differ (or exist on one side only), skipping the keys (or prefixes) in `ignore`."""
    a, b = flatten(saved), flatten(current)

    def ignored(key: str) -> bool:
        return any(key.startswith(k) if k.endswith(".") else key == k for k in ignore)

    return sorted(k for k in a.keys() | b.keys() if not ignored(k) and a.get(k, "<missing>") != b.get(k, "<missing>"))


def check_same_run(saved: Mapping[str, Any], current: Mapping[str, Any], where: str) -> None:
    """Raise ConfigMismatchError unless `saved` (a run folder's or checkpoint's config) is the run `current` asks for.

    RUNTIME_KEYS may differ. train.num_steps is compared only where `current` sets it (> 0): a run given in tokens
    or exposures records the number of steps it resolved to.
    """
    ignore = RUNTIME_KEYS + (() if flatten(current).get("train.num_steps", 0) > 0 else ("train.num_steps",))
    diff = config_diff(saved, current, ignore)
    if diff:
        a, b = flatten(saved), flatten(current)
        lines = "; ".join(f"{k}: saved={a.get(k, '<missing>')!r} now={b.get(k, '<missing>')!r}" for k in diff)
        raise ConfigMismatchError(f"{where} holds a run with a different config ({len(diff)} keys differ): {lines}")


def ensemble_key(config: ml_collections.ConfigDict | Mapping[str, Any]) -> str:
    """What the members of an ensemble must share: the config without MEMBER_KEYS, as canonical JSON."""
    shared = {k: v for k, v in flatten(as_dict(config)).items() if k not in MEMBER_KEYS}
    return json.dumps(shared, sort_keys=True, default=str)


def check_ensemble(configs: list[ml_collections.ConfigDict]) -> None:
    """ConfigError unless the configs differ only in MEMBER_KEYS (a run length in exposures must also resolve to
    the same number of steps, which mixlab.train checks once the data are built)."""
    first = flatten(as_dict(configs[0]))
    for i, config in enumerate(configs[1:], start=1):
        diff = [k for k in config_diff(as_dict(configs[0]), as_dict(config), ()) if k not in MEMBER_KEYS]
        if diff:
            now = flatten(as_dict(config))
            shown = "; ".join(f"{k}: member 0 {first.get(k)!r}, member {i} {now.get(k)!r}" for k in diff[:3])
            raise ConfigError(f"ensemble members may differ only in {MEMBER_KEYS}: {shown}")


# ----------------------------------------------------------------------------------------------- validation


def _need(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r}: {allowed}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_keys(config: ml_collections.ConfigDict | Mapping[str, Any]) -> None:
    have, known = set(flatten(as_dict(config))), set(flatten(base_config().to_dict()))
    unknown, missing = sorted(have - known), sorted(known - have)
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown}; see mixlab/config.py:base_config for the known keys")
    if missing:
        raise ConfigError(f"config lacks key(s) {missing}; start config files from mixlab.config.base_config()")


def check_data(d: ml_collections.ConfigDict, files: bool) -> None:
    """ConfigError unless config.data can work; files=True also checks that data.web and data.tokenizer exist."""
    _need(0.0 <= d.ratio <= 1.0, "data.ratio", d.ratio, "the mixing ratio must be in [0, 1]")
    for key in ("seq_len", "global_batch", "num_people"):
        _need(_is_int(d[key]) and d[key] >= 1, f"data.{key}", d[key], "must be an int >= 1")
    _need(_is_int(d.vocab_size) and d.vocab_size >= 258, "data.vocab_size", d.vocab_size, "must be an int >= 258")
    _need(d.synbio_seed >= 0, "data.synbio_seed", d.synbio_seed, "must be >= 0")
    _need(0.0 < d.subsample <= 1.0, "data.subsample", d.subsample, "the kept fraction of people must be in (0, 1]")
    _check_knowledge(d)
    groups = d.power_law_groups
    _need(groups >= 0, "data.power_law_groups", groups, "must be >= 0 (0 = uniform SynBio)")
    if groups > 0:
        _need(d.subsample == 1.0, "data.subsample", d.subsample, "must be 1.0 when data.power_law_groups > 0")
        _need(
            d.num_people % groups == 0, "data.power_law_groups", groups, f"must divide data.num_people={d.num_people}"
        )
        _need(math.isfinite(d.power_law_beta), "data.power_law_beta", d.power_law_beta, "must be finite")
    tau = d.ckm_tau
    _need(0.0 <= tau < math.inf, "data.ckm_tau", tau, "the compact tuples' share must be >= 0 (0 = no CKM)")
    if tau > 0:
        _need(d.ratio > 0, "data.ckm_tau", tau, "needs knowledge in the mixture (data.ratio > 0)")
        _need(groups == 0, "data.ckm_tau", tau, "works on uniform SynBio only (data.power_law_groups = 0)")
    web = str(d.web)
    if web == "none":
        _need(d.ratio == 1.0, "data.ratio", d.ratio, "must be 1 with data.web='none' (no web text to mix)")
    elif files and web not in WEB_KEYWORDS and not web.startswith(TFDS_PREFIX):
        _need(Path(web).expanduser().exists(), "data.web", web, f"not a file or folder; or one of {WEB_KEYWORDS}")
    tokenizer = str(d.tokenizer)
    if files:
        _need(not tokenizer or Path(tokenizer).expanduser().is_file(), "data.tokenizer", tokenizer, "no such file")
    try:
        resolve_pool_sizes(dict(d.pool_sizes))
        SyntheticWeb.from_config(d.synthetic.to_dict())
    except (ValueError, TypeError) as e:
        raise ConfigError(f"data: {e}") from None


def _check_knowledge(d: ml_collections.ConfigDict) -> None:
    """data.knowledge and the task keys; the SynBio variants (subsample, power law, CKM) only with SynBio."""
    _need(d.knowledge in KNOWLEDGE_SETS, "data.knowledge", d.knowledge, f"must be one of {KNOWLEDGE_SETS}")
    _need(_is_int(d.max_n) and d.max_n >= 2, "data.max_n", d.max_n, "Max-over-N needs an int >= 2 numbers")
    _need(_is_int(d.task_seed) and d.task_seed >= 0, "data.task_seed", d.task_seed, "must be an int >= 0")
    items = d.task_eval_items
    _need(_is_int(items) and items >= 1, "data.task_eval_items", items, "must be an int >= 1")
    if d.knowledge == "synbio":
        return
    for key, plain in (("subsample", 1.0), ("power_law_groups", 0), ("ckm_tau", 0.0)):
        _need(d[key] == plain, f"data.{key}", d[key], f"is a SynBio variant: must be {plain} with a task")
    universe = universe_size(d)
    _need(items <= universe // 2, "data.task_eval_items", items, f"must be <= half the {universe} questions")


def _check_optim(o: ml_collections.ConfigDict, global_batch: int) -> None:
    _need(o.schedule in optimizer.SCHEDULES, "optim.schedule", o.schedule, f"must be one of {optimizer.SCHEDULES}")
    _need(o.lr > 0 and math.isfinite(o.lr), "optim.lr", o.lr, "the peak learning rate must be > 0")
    _need(o.warmup_steps >= 0, "optim.warmup_steps", o.warmup_steps, "must be >= 0")
    _need(0.0 <= o.decay_fraction <= 1.0, "optim.decay_fraction", o.decay_fraction, "must be in [0, 1]")
    _need(0.0 <= o.weight_decay < math.inf, "optim.weight_decay", o.weight_decay, "must be >= 0")
    _need(0.0 <= o.b1 < 1.0, "optim.b1", o.b1, "must be in [0, 1)")
    _need(0.0 <= o.b2 < 1.0, "optim.b2", o.b2, "must be in [0, 1)")
    _need(0.0 < o.eps < math.inf, "optim.eps", o.eps, "must be > 0")
    _need(0.0 < o.clip_norm < math.inf, "optim.clip_norm", o.clip_norm, "the gradient-norm clip must be > 0")
    _need(
        _is_int(o.grad_accum) and o.grad_accum >= 1 and global_batch % o.grad_accum == 0,
        "optim.grad_accum",
        o.grad_accum,
        f"must be an int >= 1 that divides data.global_batch={global_batch}",
    )


def check_schedule(o: ml_collections.ConfigDict, num_steps: int) -> None:
    """Warmup plus the WSD decay must fit in the run (called once train.num_steps is known)."""
    tail = optimizer.decay_steps(o, num_steps) if o.schedule == "wsd" else 0
    _need(
        o.warmup_steps + tail <= num_steps,
        "optim.warmup_steps",
        o.warmup_steps,
        f"warmup plus the {tail} decay steps must fit in the run's {num_steps} steps",
    )


def _check_train(t: ml_collections.ConfigDict) -> None:
    given = [k for k in STEP_KEYS if t[k.split(".")[1]] > 0]
    if len(given) != 1:
        raise ConfigError(f"exactly one of {STEP_KEYS} must be > 0 (the run length), got {given or 'none'}")
    _need(t.log_every >= 1, "train.log_every", t.log_every, "must be >= 1")
    for key in ("eval_every", "checkpoint_every", "milestone_every"):
        _need(t[key] >= 0, f"train.{key}", t[key], "must be >= 0 (0 = only at the end)")
    _need(t.keep_checkpoints >= 1, "train.keep_checkpoints", t.keep_checkpoints, "must be >= 1")
    _need(
        _is_int(t.eval_per_decade) and 0 <= t.eval_per_decade <= 100,
        "train.eval_per_decade",
        t.eval_per_decade,
        "must be an int in [0, 100] (0 = only every train.eval_every steps)",
    )
    target = t.stop_at_acc
    _need(target is None or 0.0 < target <= 1.0, "train.stop_at_acc", target, "must be None (off) or in (0, 1]")
    rise = t.guard_web_loss_rise
    _need(
        rise is None or 0.0 < rise < math.inf,
        "train.guard_web_loss_rise",
        rise,
        "the allowed rise of the web loss (nats/token) must be None (off) or > 0",
    )


def _check_eval(e: ml_collections.ConfigDict, num_people: int) -> None:
    _need(
        e.num_people == -1 or 1 <= e.num_people <= num_people,
        "eval.num_people",
        e.num_people,
        f"must be -1 (everyone) or in [1, data.num_people={num_people}]",
    )
    _need(e.batch_size >= 1, "eval.batch_size", e.batch_size, "must be >= 1")
    _need(e.web_batches >= 1, "eval.web_batches", e.web_batches, "must be >= 1")
    _need(e.seed >= 0, "eval.seed", e.seed, "must be >= 0")


def mesh_and_rules(config: ml_collections.ConfigDict) -> tuple[jax.sharding.Mesh, dict]:
    """The device mesh and logical-axis rules of config.sharding, checked against the batch sizes."""
    n, d = config.sharding.num_devices, config.data
    count = jax.device_count()
    _need(n == -1 or 1 <= n <= count, "sharding.num_devices", n, f"must be -1 (all) or in [1, {count}]")
    if jax.process_count() > 1:
        _need(n in (-1, count), "sharding.num_devices", n, f"a multi-process run must use all {count} devices")
        _need(
            d.global_batch % jax.process_count() == 0,
            "data.global_batch",
            d.global_batch,
            f"must divide over the {jax.process_count()} processes",
        )
    try:
        mesh = sharding.make_mesh(config.sharding.mesh.to_dict(), None if n == -1 else n)
        rules = sharding.resolve_rules(config.sharding.rules.to_dict())
        sharding.check_batch(d.global_batch, mesh, rules, key="data.global_batch")
        micro = d.global_batch // config.optim.grad_accum
        sharding.check_batch(micro, mesh, rules, key="data.global_batch / optim.grad_accum")
        sharding.check_batch(config.eval.batch_size, mesh, rules, key="eval.batch_size")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return mesh, rules


def static_num_steps(config: ml_collections.ConfigDict) -> int | None:
    """train.num_steps when the config alone gives it (num_steps or tokens); None for exposures (needs the data)."""
    t = config.train
    if t.num_steps > 0:
        return int(t.num_steps)
    if t.tokens > 0:
        return math.ceil(t.tokens / (config.data.global_batch * config.data.seq_len))
    return None


def validate(config: ml_collections.ConfigDict, *, here: bool = True) -> tuple[jax.sharding.Mesh, dict] | None:
    """Check the whole config before anything is built; returns the mesh and rules. Raises ConfigError.

    here=False leaves out what depends on this machine (the data files and the device mesh), e.g. to check and
    price a pod's sweep on a laptop; it returns None.
    """
    _check_keys(config)
    d = config.data
    check_data(d, files=here)
    try:
        ModelConfig.from_config(config.model.to_dict(), d.vocab_size, d.seq_len)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    _check_optim(config.optim, d.global_batch)
    _check_train(config.train)
    _need(
        config.train.exposures == 0 or d.knowledge == "synbio",
        "train.exposures",
        config.train.exposures,
        f"counts passes over SynBio's people; give a data.knowledge={d.knowledge!r} run train.num_steps or tokens",
    )
    num_steps = static_num_steps(config)
    if num_steps is not None:
        check_schedule(config.optim, num_steps)
    _check_eval(config.eval, d.num_people)
    rise = config.train.guard_web_loss_rise
    _need(rise is None or d.web != "none", "train.guard_web_loss_rise", rise, "needs web text (data.web)")
    if not here:
        return None
    from mixlab import warm_start  # imports this module

    warm_start.resolve(config)  # the source exists and holds a model of this shape and vocabulary
    return mesh_and_rules(config)


def resolve_num_steps(
    config: ml_collections.ConfigDict, knowledge_tokens_per_step: int, tokens_per_exposure: float, num_people: int
) -> int:
    """train.num_steps from exactly one of train.num_steps / train.tokens / train.exposures, schedule checked.

    tokens: ceil(tokens / (B * L)). exposures (per person): ceil(exposures * num_people * tokens_per_exposure /
    knowledge_tokens_per_step), where tokens_per_exposure is the knowledge set's mean document length plus its EOS.
    """
    num_steps = static_num_steps(config)
    if num_steps is None:
        t = config.train
        _need(knowledge_tokens_per_step > 0, "train.exposures", t.exposures, "needs data.ratio > 0")
        num_steps = math.ceil(t.exposures * num_people * tokens_per_exposure / knowledge_tokens_per_step)
    check_schedule(config.optim, num_steps)
    return num_steps

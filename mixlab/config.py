"""The training config: every key with its default, and the checks that run before any data is built or compiled.

Config files (experiments/configs/*.py) start from `base_config()`; the trainer rejects a config holding any key that
is not here, so a typo is an error rather than a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import ml_collections
from ml_collections.config_dict import placeholder

from data_gen.synbio_fields import resolve_pool_sizes
from data_gen.synthetic_web import SyntheticWeb
from mixlab.checkpoint import flatten

STEP_KEYS = ("train.num_steps", "train.tokens", "train.exposures")


def base_config() -> ml_collections.ConfigDict:
    """Defaults for every key (a tiny CPU run). Exactly one of train.num_steps/tokens/exposures must be > 0."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.data = dict(
        dir="data",
        web="default",
        tokenizer="",
        vocab_size=1024,
        num_people=1000,
        synbio_seed=0,
        subsample=1.0,
        power_law_groups=0,
        power_law_beta=1.5,
        ratio=0.2,
        seq_len=64,
        global_batch=32,
        pool_sizes=resolve_pool_sizes(None),  # SynBio name and attribute pools (defaults: the full lists)
        synthetic={f.name: f.default for f in dataclasses.fields(SyntheticWeb)},  # used when web == "synthetic"
    )
    c.model = dict(
        size="t57k",
        dtype="float32",
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
    )
    c.eval = dict(num_people=200, seed=0, batch_size=256, web_batches=4)
    c.sharding = dict(
        num_devices=-1,  # use the first n devices (-1 = all); e.g. 1 for a tiny model on a multi-device host
        mesh=dict(data=-1, fsdp=1, tensor=1),
        rules=dict(
            batch=("data", "fsdp"),
            vocab="tensor",
            embed="fsdp",
            heads="tensor",
            kv=placeholder(str),
            mlp="tensor",
            norm=placeholder(str),
        ),
    )
    return c


def as_dict(config: ml_collections.ConfigDict | Mapping[str, Any]) -> dict[str, Any]:
    """A plain nested dict (placeholders resolved to their values)."""
    return config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)


def check_keys(config: ml_collections.ConfigDict | Mapping[str, Any]) -> None:
    """Raise KeyError naming every key that base_config() does not have, or that the config lacks."""
    have, known = set(flatten(as_dict(config))), set(flatten(base_config().to_dict()))
    unknown, missing = sorted(have - known), sorted(known - have)
    if unknown:
        raise KeyError(f"unknown config key(s) {unknown}; see mixlab/config.py:base_config for the known keys")
    if missing:
        raise KeyError(f"config lacks key(s) {missing}; start config files from mixlab.config.base_config()")


def check_values(config: ml_collections.ConfigDict) -> None:
    """Static value checks (each error names its key); mesh and batch divisibility are checked against the mesh."""
    d, t = config.data, config.train
    if not 0.0 <= d.ratio <= 1.0:
        raise ValueError(f"data.ratio={d.ratio}: the mixing ratio must be in [0, 1]")
    for key in ("data.seq_len", "data.global_batch", "data.num_people", "eval.batch_size", "eval.web_batches"):
        section, name = key.split(".")
        if config[section][name] < 1:
            raise ValueError(f"{key}={config[section][name]}: must be >= 1")
    if not 0.0 < d.subsample <= 1.0:
        raise ValueError(f"data.subsample={d.subsample}: must be in (0, 1]")
    given = [k for k in STEP_KEYS if config[k.split(".")[0]][k.split(".")[1]] > 0]
    if len(given) != 1:
        raise ValueError(f"exactly one of {STEP_KEYS} must be > 0, got {given or 'none'}")
    for key in ("log_every", "eval_every", "checkpoint_every", "milestone_every"):
        if t[key] < 0:
            raise ValueError(f"train.{key}={t[key]}: must be >= 0 (0 = only at the end)")
    if t.log_every < 1:
        raise ValueError(f"train.log_every={t.log_every}: must be >= 1")
    if config.eval.num_people != -1 and config.eval.num_people < 1:
        raise ValueError(f"eval.num_people={config.eval.num_people}: must be -1 (everyone) or >= 1")


def resolve_num_steps(
    config: ml_collections.ConfigDict, knowledge_tokens_per_step: int, tokens_per_exposure: float, num_people: int
) -> int:
    """train.num_steps from exactly one of train.num_steps / train.tokens / train.exposures.

    tokens: ceil(tokens / (B * L)). exposures (per person): ceil(exposures * num_people * tokens_per_exposure /
    knowledge_tokens_per_step), where tokens_per_exposure is the knowledge set's mean document length plus its EOS.
    """
    t = config.train
    if t.num_steps > 0:
        return int(t.num_steps)
    if t.tokens > 0:
        return math.ceil(t.tokens / (config.data.global_batch * config.data.seq_len))
    if knowledge_tokens_per_step == 0:
        raise ValueError(
            f"train.exposures={t.exposures} needs knowledge in the mixture, but data.ratio={config.data.ratio}"
        )
    return math.ceil(t.exposures * num_people * tokens_per_exposure / knowledge_tokens_per_step)

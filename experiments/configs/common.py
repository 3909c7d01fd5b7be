"""Helpers for config files: the arg-string parser, overrides, and the cost estimate printed for docstrings.

Every training config file builds on `mixlab.config.base_config()`, so every run has every key (the trainer rejects
unknown keys). `parse_arg("size=t57k,ratio=0.4,seed=1,runlocal")` reads the short arg strings of config files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ml_collections

from mixlab.config import base_config, override

__all__ = ["ARG_KEYS", "apply_overrides", "apply_runlocal", "base_config", "cost_summary", "parse_arg", "print_costs"]

# Short arg-string names -> dotted config keys.
ARG_KEYS = {
    "size": "model.size",
    "dtype": "model.dtype",
    "ratio": "data.ratio",
    "people": "data.num_people",
    "seed": "seed",
    "steps": "train.num_steps",
    "tokens": "train.tokens",
    "exposures": "train.exposures",
    "lr": "optim.lr",
    "schedule": "optim.schedule",
    "accum": "optim.grad_accum",
    "batch": "data.global_batch",
    "seq": "data.seq_len",
    "web": "data.web",
    "knowledge": "data.knowledge",
    "max_n": "data.max_n",
}
FLAGS = ("runlocal",)


def parse_arg(arg: str) -> tuple[dict[str, str], set[str]]:
    """ "size=t57k,ratio=0.4,runlocal" -> ({"model.size": "t57k", "data.ratio": "0.4"}, {"runlocal"})."""
    values, flags = {}, set()
    for item in filter(None, (s.strip() for s in (arg or "").split(","))):
        if "=" not in item:
            if item not in FLAGS:
                raise ValueError(f"config arg {item!r}: unknown flag; flags are {FLAGS}, keys are {sorted(ARG_KEYS)}")
            flags.add(item)
            continue
        key, value = item.split("=", 1)
        if key not in ARG_KEYS:
            raise ValueError(f"config arg {key!r}: unknown key; known keys are {sorted(ARG_KEYS)}")
        values[ARG_KEYS[key]] = value
    return values, flags


def apply_overrides(config: ml_collections.ConfigDict, overrides: Mapping[str, str]) -> None:
    """Set dotted keys from strings, converted to the type of the existing field.

    steps / tokens / exposures choose how the run length is given: setting one zeroes the other two
    (mixlab.config.with_run_length).
    """
    converted = {}
    for dotted, text in overrides.items():
        node = config
        for part in dotted.split("."):
            node = node[part]
        converted[dotted] = _convert(text, type(node), dotted)
    override(config, converted, "config arg")


def apply_runlocal(config: ml_collections.ConfigDict) -> None:
    """The `runlocal` arg of every config file: a CPU smoke run of under a minute (synthetic web, t25k, 30 steps)."""
    config.data.update(web="synthetic", tokenizer="", vocab_size=512, num_people=100, seq_len=256, global_batch=8)
    config.data.synthetic.update(num_docs=2000, num_patterns=20_000)
    config.model.update(size="t25k", dtype="float32")
    config.optim.update(warmup_steps=5)
    config.train.update(tokens=0, exposures=0.0, num_steps=30, log_every=5, eval_every=15, checkpoint_every=15)
    config.train.milestone_every = 0
    config.eval.update(num_people=50, batch_size=128, web_batches=2)


def _convert(text: str, kind: type, key: str) -> Any:
    try:
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        if kind is int:
            return int(float(text)) if "e" in text.lower() else int(text)
        return kind(text)
    except ValueError:
        raise ValueError(f"config arg for {key}: {text!r} is not a valid {kind.__name__}") from None


def cost_summary(config: ml_collections.ConfigDict) -> dict[str, float]:
    """Parameter counts, tokens, and compute of a config (tokens from train.num_steps or train.tokens).

    model_flops uses mixlab.metrics.flops_per_token (6 x matmul params + attention), the quantity MFU counts;
    six_nd is 6 x total params x tokens. Hours assume 40% MFU of one H100/H200 (989 TFLOP/s dense bf16).
    """
    from mixlab.metrics import flops_per_token, table_peak_flops
    from mixlab.model import ModelConfig, param_counts

    d, t = config.data, config.train
    mcfg = ModelConfig.from_config(config.model.to_dict(), d.vocab_size, d.seq_len)
    total, non_embedding = param_counts(mcfg)
    tokens_per_step = d.global_batch * d.seq_len
    if t.num_steps > 0:
        tokens = t.num_steps * tokens_per_step
    elif t.tokens > 0:
        tokens = -(-t.tokens // tokens_per_step) * tokens_per_step
    else:
        raise ValueError("cost_summary needs train.num_steps or train.tokens (train.exposures needs the data)")
    model_flops = flops_per_token(non_embedding, mcfg.vocab_size, mcfg.D, mcfg.num_layers, d.seq_len) * tokens
    peak = table_peak_flops("NVIDIA H100 80GB HBM3", "bfloat16")
    return {
        "params_total": total,
        "params_non_embedding": non_embedding,
        "tokens": tokens,
        "six_nd": 6.0 * total * tokens,
        "model_flops": model_flops,
        "h100_hours_at_40pct_mfu": model_flops / (0.4 * peak) / 3600.0,
    }


def print_costs(get_config, args: list[str]) -> None:
    """Print cost_summary for each arg string (used by each config file's __main__)."""
    for arg in args:
        s = cost_summary(get_config(arg))
        print(
            f"{arg or '(default)'}: params {s['params_total']:,} total / {s['params_non_embedding']:,} non-embedding;"
            f" {s['tokens']:,} tokens; 6ND {s['six_nd']:.3g} FLOPs; model FLOPs {s['model_flops']:.3g};"
            f" {s['h100_hours_at_40pct_mfu']:.3g} h on one H100/H200 at 40% MFU"
        )

"""The paper's main setup: Pythia models trained from scratch on FineWeb-Edu mixed with SynBio at ratio r.

Sequences of 2048 tokens, batches of 512 (1,048,576 tokens per step), AdamW (0.9, 0.95), weight decay 0.1,
clipping 1.0, warmup-stable-decay at peak 1e-3 with 160 warmup steps and a final 10% linear cooldown, 32B tokens
(30,518 steps), bfloat16 compute with float32 parameters. The batch is split into `accum` micro-batches (default 16).

Needs local data (no downloads at run time): FineWeb-Edu as .parquet/.jsonl files in data/fineweb-edu and the
GPT-NeoX-20B tokenizer.json in data/gpt-neox-20b/ (or set --config.data.web / --config.data.tokenizer).

Command (one GPU or TPU host; more hosts: add --coordinator_address/--num_processes/--process_id per process):
    python -m mixlab.main --config=experiments/configs/pythia.py:size=70m,ratio=0.3,people=320000 \\
        --workdir=runs/pythia70m_r0.3
    python -m mixlab.main --config=experiments/configs/pythia.py:runlocal --workdir=runs/pythia_local  # CPU, < 1 min

Expected result (the paper's, not yet reproduced here): 70M on SynBio-320k stays under 1% accuracy up to r = 0.25 and
rises steeply above; 410M on SynBio-1.28M is ~0 up to r = 0.3 and ~80% at r = 0.4.

Cost (`python experiments/configs/pythia.py` prints it from the parameter counts in code, V = 50304; model FLOPs =
6 x matmul params + attention, as MFU counts them; hours at 40% MFU of one H100/H200, 989 TFLOP/s dense bf16):
    size=14m: params 14,067,712 total / 1,189,888 non-embedding; 32,000,442,368 tokens;
        6ND 2.7e+18 FLOPs; model FLOPs 2.07e+18; 1.45 h on one H100/H200 at 40% MFU
    size=70m: params 70,426,624 total / 18,915,328 non-embedding; 32,000,442,368 tokens;
        6ND 1.35e+19 FLOPs; model FLOPs 1.1e+19; 7.72 h on one H100/H200 at 40% MFU
    size=160m: params 162,322,944 total / 85,056,000 non-embedding; 32,000,442,368 tokens;
        6ND 3.12e+19 FLOPs; model FLOPs 3.1e+19; 21.8 h on one H100/H200 at 40% MFU
    size=410m: params 405,334,016 total / 302,311,424 non-embedding; 32,000,442,368 tokens;
        6ND 7.78e+19 FLOPs; model FLOPs 8.73e+19; 61.3 h on one H100/H200 at 40% MFU
    size=1b: params 1,011,781,632 total / 805,736,448 non-embedding; 32,000,442,368 tokens;
        6ND 1.94e+20 FLOPs; model FLOPs 2e+20; 141 h on one H100/H200 at 40% MFU
    runlocal: params 58,240 total / 25,472 non-embedding; 61,440 tokens;
        6ND 2.15e+10 FLOPs; model FLOPs 2.75e+10; 1.93e-08 h on one H100/H200 at 40% MFU
"""

from __future__ import annotations

import ml_collections

from experiments.configs.common import apply_overrides, apply_runlocal, base_config, parse_arg, print_costs

TOKENS = 32_000_000_000


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    values, flags = parse_arg(arg)
    c = base_config()
    c.data.update(
        web="data/fineweb-edu",
        tokenizer="data/gpt-neox-20b/tokenizer.json",
        vocab_size=50304,
        num_people=320_000,
        ratio=0.2,
        seq_len=2048,
        global_batch=512,
    )
    c.model.update(size="70m", dtype="bfloat16")
    c.optim.update(lr=1e-3, schedule="wsd", warmup_steps=160, decay_fraction=0.1, grad_accum=16)
    c.train.update(
        tokens=TOKENS, log_every=50, eval_every=1000, checkpoint_every=1000, keep_checkpoints=2, milestone_every=5000
    )
    c.eval.update(num_people=2000, batch_size=256, web_batches=16)
    if "runlocal" in flags:
        apply_runlocal(c)
        c.optim.grad_accum = 2
    apply_overrides(c, values)
    return c


if __name__ == "__main__":
    print_costs(get_config, [f"size={s}" for s in ("14m", "70m", "160m", "410m", "1b")] + ["runlocal"])

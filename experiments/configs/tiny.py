"""Tiny CPU run: a 2-layer transformer on SynBio mixed with web text at ratio r.

Command (defaults: size t57k, r = 0.2, 200 people, 2.1M tokens, the default Debian-documentation web corpus):
    python -m mixlab.main --config=experiments/configs/tiny.py:size=t57k,ratio=0.4,seed=1 --workdir=runs/tiny
    python -m mixlab.main --config=experiments/configs/tiny.py:runlocal --workdir=runs/tiny_local   # < 1 min

Arguments (comma-separated, see experiments/configs/common.py): size, ratio, people, seed, steps | tokens |
exposures, lr, schedule, accum, batch, seq, web, dtype; `runlocal` shrinks everything to a CPU smoke run on the
synthetic web. Any key can also be set with --config.<section>.<key>=<value>.

Sequences are 256 tokens: with the 1024-entry BPE a biography is ~135 tokens on average and up to ~191, and the
mixture stream needs seq_len >= the longest document.

Expected result (measured on the shared 2-core machine, load average ~7):
    default (r = 0.2): 1024 steps, 15.3 exposures per person, final loss 4.13 (knowledge 3.08, web 4.40), eval acc 0
        over 5000 items, value loss 3.74 nats/token, web loss 4.31; 278 s wall, eval 3.4% of it.
    ratio=0.8: 61 exposures, knowledge loss 1.75, value loss 2.59, acc still 0 — this model and token budget are
        below memorization for 200 people; sweeps need more exposures (tokens, ratio) or fewer people.
    runlocal: 30 steps, loss 6.31 -> 4.75, acc 0; ~18 s wall with warm caches, ~50 s cold (data and compile).

Cost (`python experiments/configs/tiny.py` prints it from the parameter counts in code):
    (default): params 154,944 total / 56,640 non-embedding; 2,097,152 tokens;
        6ND 1.95e+12 FLOPs; model FLOPs 1.95e+12; 1.37e-06 h on one H100/H200 at 40% MFU
    runlocal: params 58,240 total / 25,472 non-embedding; 61,440 tokens;
        6ND 2.15e+10 FLOPs; model FLOPs 2.75e+10; 1.93e-08 h on one H100/H200 at 40% MFU
CPU time: BUILD_NOTES.md (measured tokens/s on this 2-core machine).
"""

from __future__ import annotations

import ml_collections

from experiments.configs.common import apply_overrides, apply_runlocal, base_config, parse_arg, print_costs


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    values, flags = parse_arg(arg)
    c = base_config()
    c.data.update(web="default", vocab_size=1024, num_people=200, ratio=0.2, seq_len=256, global_batch=8)
    c.model.update(size="t57k", dtype="float32")
    c.optim.update(lr=1e-3, schedule="wsd", warmup_steps=20)
    c.train.update(tokens=2_097_152, log_every=64, eval_every=512, checkpoint_every=512, keep_checkpoints=2)
    c.eval.update(num_people=-1, batch_size=256, web_batches=4)
    if "runlocal" in flags:
        apply_runlocal(c)
    apply_overrides(c, values)
    return c


if __name__ == "__main__":
    print_costs(get_config, ["", "runlocal"])

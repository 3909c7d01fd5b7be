"""The paper's main grids (Gu et al. 2025, Figs. 2-3), for a GPU cluster: Pythia sizes x mixing ratio at 32B tokens.

    get_sweep("320k"):  sizes 14M, 31M, 70M, 160M, 410M x r in {0.1, 0.15, ..., 0.45} on FineWeb-Edu + SynBio-320k
                        (40 runs; sweep "paper_grid_320k")
    get_sweep("1.28m"): 410M x r in {0.1, 0.15, ..., 0.45} on FineWeb-Edu + SynBio-1.28M (8 runs; "paper_grid_1.28m")

Every run trains 32B tokens with the Pythia recipe of experiments/configs/pythia.py (sequence 2048, batch 512,
WSD at peak LR 1e-3, GPT-NeoX tokenizer); run ids read "size=70m,ratio=0.25". The paper's result: at 70M on
SynBio-320k accuracy stays under 1% up to r = 0.25, then rises steeply; at 410M on SynBio-1.28M it is about 0 up to
r = 0.3 and about 80% at r = 0.4; the critical r falls as the model grows.

Cost, computed from the configs (parameters, tokens, 6ND FLOPs, model FLOPs, hours of one H100/H200 at 40% MFU):
    python -m experiments.sweep --sweep=experiments/configs/paper_grid.py:320k --plan
    python -m experiments.sweep --sweep=experiments/configs/paper_grid.py:1.28m --plan

Run: FineWeb-Edu as .parquet/.jsonl files in data/fineweb-edu (or give the path: "320k:/path/to/fineweb-edu") and
the GPT-NeoX tokenizer as pythia.py says; one shard per GPU, e.g. a SLURM array of 8 tasks (--array=0-7):
    python -m experiments.sweep --sweep=experiments/configs/paper_grid.py:320k --runs_dir=runs \\
        --shard_index=$SLURM_ARRAY_TASK_ID --num_shards=$SLURM_ARRAY_TASK_COUNT
"""

from experiments.sweep import Sweep, grid

SIZES = ("14m", "31m", "70m", "160m", "410m")
RATIOS = tuple(round(0.1 + 0.05 * i, 2) for i in range(8))  # 0.1, 0.15, ..., 0.45
GRIDS = {"320k": (SIZES, 320_000), "1.28m": (("410m",), 1_280_000)}


def get_sweep(arg: str = "320k") -> Sweep:
    name, _, web = arg.partition(":")
    if name not in GRIDS:
        raise ValueError(f"paper_grid arg {name!r}: expected one of {sorted(GRIDS)} (optionally :<fineweb-edu path>)")
    sizes, num_people = GRIDS[name]
    config_arg = f"people={num_people}" + (f",web={web}" if web else "")
    return Sweep(
        name=f"paper_grid_{name}",
        config=f"experiments/configs/pythia.py:{config_arg}",
        points=grid({"model.size": list(sizes), "data.ratio": list(RATIOS)}),
    )

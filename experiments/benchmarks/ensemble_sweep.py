"""Runs per hour with and without ensembles: 8 demo-sized runs (t57k, 4 ratios x 2 seeds, 0.3M tokens each).

    for K in 1 2 4 8; do
      taskset -c 1 python -m experiments.sweep --sweep=experiments/benchmarks/ensemble_sweep.py \\
          --runs_dir=/tmp/ens$K --workers=1 --ensemble=$K --trainer="python -m mixlab.main --jax_cache_dir="
    done

Each command's wall time (data prepared beforehand, compile cache off) gives runs per hour on one core. Measured:
BUILD_NOTES.md, "Ensembles".
"""

from experiments.sweep import Sweep, grid


def get_sweep(arg: str = "") -> Sweep:
    points = grid({"data.ratio": [0.2, 0.4, 0.6, 0.8], "seed": [0, 1]})
    common = {"model.size": "t57k", "train.tokens": 300_000, "eval.num_people": -1}
    return Sweep(
        name="ensemble_runs",
        config="experiments/configs/tiny.py:lr=0.01,people=30",
        points=[{**p, **common} for p in points],
    )

"""The main job's sweeps (`make demo`): the phase transition on a 2-core CPU, and its calibration.

    get_sweep("main"):      the demo grid: sizes x ratios at a fixed token budget, plus equal-exposure runs
    get_sweep("calibrate"): r = 1 (knowledge only) and r = 0 (web only) runs of each size, to choose the grid
    get_sweep("capacity"):  the longer preset, N near the models' capacity, 100 exposures per person (not run by
                            `make demo`; `--plan` prints its cost: 2.6e9 tokens in all: about 6 days of 2 CPU
                            cores at the demo's ~5k tokens/s per core; minutes of one GPU)

    python -m experiments.sweep --sweep=experiments/configs/demo.py:main --runs_dir=runs --workers=2

Every point trains the tiny config (experiments/configs/tiny.py): 2-layer GPT-NeoX-style models, BPE vocabulary
1024, sequences of 256, batch 8, WSD schedule at peak LR 1e-2, on the default web corpus (Debian documentation)
mixed with SynBio. Measured grid, wall time and calibration: BUILD_NOTES.md, "The main job".
"""

from experiments.sweep import Sweep, grid

SIZES = ["t57k", "t100k"]
RATIOS = [0.2, 0.4, 0.6, 0.8]
PEOPLE = 30
BASE = f"experiments/configs/tiny.py:lr=0.01,people={PEOPLE}"
TOKENS = 600_000
# Equal exposures: r = 0.2 trained 4x longer than the grid gets the exposures per person of r = 0.8 in the grid.
EQUAL_EXPOSURE = {"model.size": "t57k", "data.ratio": 0.2, "train.tokens": 4 * TOKENS}
COMMON = {"eval.num_people": -1}  # evaluate everyone
# The capacity preset: 2000 people hold 93 kbit, about one bit per non-embedding parameter of t100k, so the facts
# compete for capacity as in the theory (the demo's 30 people hold 1.4 kbit, far below every model's capacity).
CAPACITY_PEOPLE = 2000
CAPACITY_SIZES = ["t57k", "t100k", "t224k", "t400k"]
CAPACITY_RATIOS = [0.1, 0.2, 0.3, 0.4, 0.6, 0.8]
CAPACITY_EXPOSURES = 100
TOKENS_PER_BIO = 137.3  # mean biography tokens + EOS with the 1024-entry BPE (`make demo` prints the mean)


def _points(axes: dict, **fixed) -> list[dict]:
    return [{**p, **COMMON, **fixed} for p in grid(axes)]


def get_sweep(arg: str = "main") -> Sweep:
    if arg == "main":
        longest_first = [{**EQUAL_EXPOSURE, **COMMON}]
        points = longest_first + _points({"model.size": SIZES, "data.ratio": RATIOS}, **{"train.tokens": TOKENS})
        return Sweep(name="demo", config=BASE, points=points)
    if arg == "calibrate":
        points = _points({"model.size": [*SIZES, "t224k"], "data.ratio": [1.0, 0.0]}, **{"train.tokens": TOKENS})
        return Sweep(name="demo_calibrate", config=BASE, points=points)
    if arg == "capacity":
        base = f"experiments/configs/tiny.py:lr=0.01,people={CAPACITY_PEOPLE}"
        points = [
            {
                **p,
                **COMMON,
                "train.tokens": round(CAPACITY_EXPOSURES * CAPACITY_PEOPLE * TOKENS_PER_BIO / p["data.ratio"]),
            }
            for p in grid({"model.size": CAPACITY_SIZES, "data.ratio": CAPACITY_RATIOS})
        ]
        return Sweep(name="demo_capacity", config=base, points=points)
    raise ValueError(f"demo sweep arg {arg!r}: expected main, calibrate or capacity")

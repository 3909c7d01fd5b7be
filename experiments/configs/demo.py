"""The main job's sweeps (`make demo`): the phase transition on a 2-core CPU, and its calibration.

    get_sweep("main"):      the demo grid: sizes x ratios at a fixed token budget, plus equal-exposure runs
    get_sweep("calibrate"): r = 1 (knowledge only) and r = 0 (web only) runs of each size, to choose the grid
    get_sweep("capacity"):  the longer preset, N near the models' capacity (not run by `make demo`)

    python -m experiments.sweep --sweep=experiments/configs/demo.py:main --runs_dir=runs --workers=2

Every point trains the tiny config (experiments/configs/tiny.py): 2-layer GPT-NeoX-style models, BPE vocabulary
1024, sequences of 256, batch 8, WSD schedule at peak LR 1e-2, on the default web corpus (Debian documentation)
mixed with SynBio. Measured grid, wall time and calibration: BUILD_NOTES.md, "The main job".
"""

from experiments.sweep import Sweep, grid

SIZES = ["t57k", "t100k"]
RATIOS = [0.2, 0.4, 0.6, 0.8]
PEOPLE = 50
BASE = f"experiments/configs/tiny.py:lr=0.01,people={PEOPLE}"
TOKENS = 1_000_000
# Equal exposures: r = 0.2 trained 4x longer than the grid gets the exposures per person of r = 0.8 in the grid.
EQUAL_EXPOSURE = {"model.size": "t100k", "data.ratio": 0.2, "train.tokens": 4 * TOKENS}
COMMON = {"eval.num_people": -1}  # evaluate everyone


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
    raise ValueError(f"demo sweep arg {arg!r}: expected main or calibrate")

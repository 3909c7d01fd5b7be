"""The main job's sweeps (`make demo`): calibration first, then the mixtures, all in one sweep folder.

    get_sweep("calibrate"):          web-only (r = 0) and knowledge-only (r = 1) runs of every size, evaluated at
                                     the end: the theory's inputs, fitted before any mixture runs (experiments/demo.py)
    get_sweep("main"):               sizes x ratios, 2 seeds at the two ratios that bracket each size's r*, and the
                                     equal-exposure control (r = 0.2 trained 4x longer), all evaluated log-spaced
    get_sweep("science_calibrate"), get_sweep("science"): the longer preset (3 seeds everywhere, 7 sizes, N = 120
                                     people and 4x the tokens, so that the small models are capacity-limited)

    make demo        # = python -m experiments.demo: calibrate, predict, mix, analyse
    make science     # = python -m experiments.demo --calibration=...:science_calibrate --sweep=...:science
    python -m experiments.sweep --sweep=experiments/configs/demo.py:main --plan     # runs and their cost

Every point trains the tiny config (experiments/configs/tiny.py): 2-layer GPT-NeoX-style models, BPE vocabulary
1024, sequences of 256, batch 8, WSD schedule at peak LR 1e-2, on the default web corpus mixed with SynBio-30
(1.4 kbit), 0.6M tokens per run (146 exposures per person at r = 1), everyone evaluated; the mixtures also at 3
log-spaced steps per decade (tokens-to-target).

Why this grid (fixed here, before any prediction; BUILD_NOTES.md "The main job" has the measured results):
- 6 sizes (t7k ... t224k, 34x in non-embedding parameters): the r* and M* power laws get >= 4 points and the
  jump test in M its 6 sizes (analysis.jump.MIN_POINTS); t7k sits below the transition at every r
  (capacity-limited), so a column of the phase diagram rises from ~0. Every size has head dim 16: a D = 40 model
  with head dim 8 tried between t25k and t57k memorized less at r = 1 than t25k (0.21 vs 0.76; BUILD_NOTES.md).
- r = 0.3 ... 0.8 in steps of 0.1: even in r, so denser in log r (the fits' axis) at the high ratios where these
  sizes rise, 6 points per size; r = 0.1 and 0.2 (0 at every size in the v2 and v3 grids) are left out.
- 2 seeds at the pair of ratios around each size's expected r* (BRACKET, from the v2 grid), so that seed scatter
  enters the intervals where it matters; t7k, which rose at no ratio in v2 or v3, has no r* to bracket.
- r = 0 and r = 1 at every size, same budget: the web-loss law and the stored bits per parameter (their CIs from
  the spread over the 6 sizes).
- Expected (the v3 grid, BUILD_NOTES.md "The main job"): accuracy ~0 at r = 0.3 for every size and at every r for
  t7k; r* = 0.63 / 0.52 / 0.48 / 0.45 / 0.41 for t25k ... t224k; the long r = 0.2 run (118 exposures per person,
  those of r = 0.8 in the grid) 0.28 against 0.85 at r = 0.8.
- Cost: 14.0 minutes for `make demo` from a fresh clone on the 2-core machine, the venv installed (BUILD_NOTES.md
  "The main job", v4); `--plan` prints FLOPs.
"""

from experiments.sweep import Sweep, grid

PEOPLE = 30
BASE = f"experiments/configs/tiny.py:lr=0.01,people={PEOPLE}"
TOKENS = 600_000
SIZES = ["t7k", "t25k", "t57k", "t100k", "t156k", "t224k"]
RATIOS = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
SEEDS = [0, 1]
# The two grid ratios around each size's expected r*: the v2 grid's r* (0.63 t25k, 0.52 t57k, 0.48 t100k, 0.45 t156k,
# 0.41 t224k); t7k did not rise.
BRACKET = {"t25k": (0.6, 0.7), "t57k": (0.5, 0.6), "t100k": (0.4, 0.5), "t156k": (0.4, 0.5), "t224k": (0.3, 0.4)}
# Equal exposures: r = 0.2 trained 4x longer gets the exposures per person of r = 0.8 in the grid.
EQUAL_EXPOSURE = {"model.size": "t57k", "data.ratio": 0.2, "train.tokens": 4 * TOKENS}
FIXED = {"eval.num_people": -1}  # every point; kept out of the run ids
LOG_EVALS = {"train.eval_per_decade": 3}  # the mixtures' (tokens-to-target); the calibration needs the last eval only

# The science preset: N near the small models' capacity at 146 exposures per person, 3 seeds, 7 sizes.
SCIENCE_PEOPLE = 120
SCIENCE_BASE = f"experiments/configs/tiny.py:lr=0.01,people={SCIENCE_PEOPLE}"
SCIENCE_TOKENS = TOKENS * SCIENCE_PEOPLE // PEOPLE
SCIENCE_SIZES = [*SIZES, "t400k"]
SCIENCE_SEEDS = [0, 1, 2]


def _calibration(sizes: list[str], seeds: list[int]) -> list[dict]:
    """r = 0 and r = 1 at each seed, the largest size first (the costliest ensemble starts first: less idle time at
    the end)."""
    return [
        p for size in reversed(sizes) for p in grid({"model.size": [size], "data.ratio": [0.0, 1.0], "seed": seeds})
    ]


def _mixtures() -> list[dict]:
    """Each size's ratios and bracket seeds (one ensemble with --ensemble=10), the costliest size first, then the
    long equal-exposure run, which trains alone beside the first ensembles."""
    per_size = [
        grid({"model.size": [size], "data.ratio": RATIOS, "seed": SEEDS[:1]})
        + (
            grid({"model.size": [size], "data.ratio": list(BRACKET[size]), "seed": SEEDS[1:]})
            if size in BRACKET
            else []
        )
        for size in reversed(SIZES)
    ]
    return [*per_size[0], EQUAL_EXPOSURE, *(p for points in per_size[1:] for p in points)]


def _sweep(name: str, base: str, points: list[dict], tokens: int, fixed: dict) -> Sweep:
    return Sweep(name=name, config=base, points=points, fixed={**FIXED, **fixed, "train.tokens": tokens})


def get_sweep(arg: str = "main") -> Sweep:
    if arg == "calibrate":
        return _sweep("demo", BASE, _calibration(SIZES, SEEDS[:1]), TOKENS, {})
    if arg == "main":
        return _sweep("demo", BASE, _mixtures(), TOKENS, LOG_EVALS)
    if arg == "science_calibrate":
        points = _calibration(SCIENCE_SIZES, SCIENCE_SEEDS)
        return _sweep("science", SCIENCE_BASE, points, SCIENCE_TOKENS, {})
    if arg == "science":
        points = grid({"model.size": SCIENCE_SIZES, "data.ratio": RATIOS, "seed": SCIENCE_SEEDS})
        return _sweep("science", SCIENCE_BASE, points, SCIENCE_TOKENS, LOG_EVALS)
    raise ValueError(f"demo sweep arg {arg!r}: expected calibrate, main, science_calibrate or science")

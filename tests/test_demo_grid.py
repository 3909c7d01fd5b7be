"""The demo's sweeps (experiments/configs/demo.py) can test every claim the report lists: run through the sweep
CLI's --plan, and checked point by point against what each verdict needs (analysis/verdicts.py)."""

import collections
from pathlib import Path

import pytest

from analysis.jump import MIN_POINTS
from analysis.verdicts import MIN_POWER_LAW_SIZES
from experiments.configs import demo
from experiments.sweep import load_sweep, point_configs

ROOT = Path(__file__).resolve().parents[1]
SPEC = "experiments/configs/demo.py"


@pytest.mark.parametrize("arg", ["calibrate", "main"])
def test_the_sweep_cli_plans_each_phase(cli, arg):
    out = cli.run("experiments.sweep", f"--sweep={SPEC}:{arg}", "--plan")
    assert out.returncode == 0, out.stderr[-2000:]
    sweep = load_sweep(f"{SPEC}:{arg}")
    assert all(rid in out.stdout for rid in sweep.run_ids())
    assert f"total of {len(sweep.points)} runs" in out.stdout


def _runs(arg: str) -> list[dict]:
    sweep = load_sweep(f"{SPEC}:{arg}")
    return [
        {"size": c.model.size, "ratio": c.data.ratio, "seed": c.seed, "tokens": c.train.tokens,
         "people": c.data.num_people, "evals_per_decade": c.train.eval_per_decade, "eval_people": c.eval.num_people}
        for c in point_configs(sweep, check=None)
    ]  # fmt: skip


def test_the_grid_can_test_every_claim():
    calibration, mixtures = _runs("calibrate"), _runs("main")
    assert load_sweep(f"{SPEC}:calibrate").name == load_sweep(f"{SPEC}:main").name  # one folder, one table
    grid = [r for r in mixtures if r["tokens"] == demo.TOKENS]
    sizes = sorted({r["size"] for r in grid})
    # r* vs M and M* vs r as power-law verdicts; the jump test in M needs MIN_POINTS sizes at one ratio
    assert len(sizes) >= max(MIN_POWER_LAW_SIZES, MIN_POINTS)
    by_ratio = collections.defaultdict(set)
    for r in grid:
        by_ratio[r["ratio"]].add(r["size"])
    assert sum(len(s) >= MIN_POINTS for s in by_ratio.values()) >= MIN_POWER_LAW_SIZES
    for size in sizes:
        ratios = sorted({r["ratio"] for r in grid if r["size"] == size})
        assert len(ratios) >= MIN_POINTS and 0 < ratios[0] and ratios[-1] < 1, (size, ratios)
    # seed scatter where r* lies, at every size but the smallest (t7k: no r* in the v2 and v3 grids)
    assert set(demo.BRACKET) == set(sizes) - {"t7k"}
    for size, (low, high) in demo.BRACKET.items():
        seeds = {(r["ratio"], r["seed"]) for r in grid if r["size"] == size}
        assert {(low, 0), (low, 1), (high, 0), (high, 1)} <= seeds, size
    for size in sizes:  # the theory's inputs at every size: r = 0 and r = 1, same budget
        assert {r["ratio"] for r in calibration if r["size"] == size} == {0.0, 1.0}, size
    assert all(r["tokens"] == demo.TOKENS for r in calibration)
    long = [r for r in mixtures if r["tokens"] > demo.TOKENS]  # the equal-exposure control and its partner
    assert len(long) == 1
    partner = long[0]["ratio"] * long[0]["tokens"] / demo.TOKENS
    assert any(r["size"] == long[0]["size"] and r["ratio"] == pytest.approx(partner) for r in grid)
    everyone = [*calibration, *mixtures]
    assert all(r["evals_per_decade"] >= 3 for r in mixtures)  # tokens to target; the calibration: its last eval
    assert all(r["eval_people"] == -1 for r in everyone)
    assert len({r["people"] for r in everyone}) == 1

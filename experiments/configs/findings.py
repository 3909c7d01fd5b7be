"""The paper's other findings at tiny scale: one sweep per finding, each under 30 minutes on a 2-core CPU.

    get_sweep("subsample"):  at a sub-critical r, train on a seeded fraction rho of the people, evaluate on all
    get_sweep("ckm"):        compact knowledge mixing at tau = 0, 0.1, 0.3 at a sub-critical r
    get_sweep("frequency"):  power-law groups (8 groups, beta = 1.5) at 4 sizes: the threshold frequency f* vs M
    get_sweep("tasks"):      Slope and Max-over-N over r (the task's knowledge source in place of SynBio)
    get_sweep("continual_source"): the web-only runs that continual pre-training starts from
    get_sweep("continual"):  from the web-only run, knowledge at (r, rho) with a constant LR and the guardrail
    get_sweep("tokens"):     tokens-to-target over 5 ratios: log-spaced evals, stopping at the target

    python -m experiments.findings --runs_dir=runs            # all of them, in order, then the report
    python -m experiments.sweep --sweep=experiments/configs/findings.py:ckm --runs_dir=runs   # one

The driver (experiments/findings.py) runs "continual_source" before "continual" and writes one report section per
finding (analysis/findings.py). Every run uses the demo's tiny config (experiments/configs/tiny.py at lr 1e-2) on
the default web corpus; seeds are listed per sweep. Measured figures and wall times: BUILD_NOTES.md, "Findings".
"""

from __future__ import annotations

import os

from experiments.sweep import Sweep, grid

PEOPLE = 60
BASE = f"experiments/configs/tiny.py:lr=0.01,people={PEOPLE}"
COMMON = {"eval.num_people": -1, "train.tokens": 600_000}
SUB_CRITICAL = {"model.size": "t57k", "data.ratio": 0.3}  # below t57k's threshold at this budget (demo grid)
SEEDS = [0, 1]
RHOS = [1.0, 0.5, 0.25, 0.125]
TAUS = [0.0, 0.1, 0.3]
# CKM at the demo's 30 people and r = 0.4, just below t57k's rise (SUB_CRITICAL learns nothing at all, with or
# without tuples: measured, BUILD_NOTES.md "Findings")
CKM_BASE = "experiments/configs/tiny.py:lr=0.01,people=30"
CKM = {"model.size": "t57k", "data.ratio": 0.4}
FREQUENCY_SIZES = ["t25k", "t57k", "t100k", "t224k"]
# 8 groups of 10 people, 1.2M tokens at r = 0.5: from ~10 exposures per person (group 7) to ~220 (group 0)
FREQUENCY = {"data.power_law_groups": 8, "data.power_law_beta": 1.5, "data.num_people": 80, "train.tokens": 1_200_000}
FREQUENCY_RATIO = 0.5
TASK_RATIOS = [0.05, 0.1, 0.2, 0.4, 0.6, 0.8]  # >= 6 ratios: the jump test's minimum
TASK_TOKENS = 2_400_000
TASKS = ["slope", "max_of_n"]
CONTINUAL_SOURCE = {"model.size": "t57k", "data.ratio": 0.0, "train.tokens": 600_000}
CONTINUAL_RATIOS = [0.1, 0.2, 0.4]
CONTINUAL = {  # a third of the pre-training's peak LR, held after a short warmup: the LR itself does not trip the guard
    "optim.schedule": "constant",
    "optim.warmup_steps": 20,
    "optim.lr": 0.003,
    "train.guard_web_loss_rise": 0.1,
    "train.eval_every": 16,
    "train.tokens": 900_000,
}
TOKEN_RATIOS = [0.4, 0.5, 0.6, 0.8, 1.0]
TOKENS = {
    "model.size": "t57k",
    "train.stop_at_acc": 0.5,
    "train.eval_per_decade": 10,
    "train.eval_every": 0,
    "train.tokens": 1_800_000,
}


def _points(axes: dict, **fixed) -> list[dict]:
    return [{**p, **COMMON, **fixed} for p in grid(axes)]


def continual_source_dir(runs_dir: str = "runs") -> str:
    """The run folder of the web-only source of get_sweep("continual")."""
    sweep = get_sweep("continual_source")
    return os.path.join(runs_dir, sweep.name, sweep.run_ids()[0])


def get_sweep(arg: str = "subsample") -> Sweep:
    name, _, option = arg.partition("=")  # "<name>=<runs_dir>": continual's source lies under that runs folder
    if name == "subsample":
        points = _points({"seed": SEEDS, "data.subsample": RHOS}, **SUB_CRITICAL)
        return Sweep(name="findings_subsample", config=BASE, points=points)
    if name == "ckm":
        points = _points({"seed": SEEDS, "data.ckm_tau": TAUS}, **CKM)
        return Sweep(name="findings_ckm", config=CKM_BASE, points=points)
    if name == "frequency":  # plus web-only runs of each size: alpha of the theory's -(alpha + 1)
        axes = {"model.size": FREQUENCY_SIZES, "data.ratio": [FREQUENCY_RATIO, 0.0]}
        return Sweep(name="findings_frequency", config=BASE, points=_points(axes, **FREQUENCY))
    if name == "tasks":
        axes = {"data.knowledge": TASKS, "data.ratio": TASK_RATIOS}
        points = _points(axes, **{"model.size": "t57k", "train.tokens": TASK_TOKENS})
        return Sweep(name="findings_tasks", config=BASE, points=points)
    if name == "continual_source":
        return Sweep(name="findings_continual_source", config=BASE, points=[{**COMMON, **CONTINUAL_SOURCE}])
    if name == "continual":
        source = continual_source_dir(option or "runs")
        axes = {"data.ratio": CONTINUAL_RATIOS, "data.subsample": [1.0, 0.25]}
        points = _points(axes, **{"model.size": "t57k", **CONTINUAL})
        return Sweep(name="findings_continual", config=BASE, points=points, fixed={"train.init_from": source})
    if name == "tokens":
        axes = {"seed": SEEDS, "data.ratio": TOKEN_RATIOS}
        return Sweep(name="findings_tokens", config=BASE, points=_points(axes, **TOKENS))
    raise ValueError(f"findings sweep arg {arg!r}: expected one of {SWEEPS}")


SWEEPS = ("subsample", "ckm", "frequency", "tasks", "continual_source", "continual", "tokens")
ORDER = ("subsample", "ckm", "frequency", "tasks", "continual", "tokens")  # the findings of the report, in order
STAGES = {"continual": ("continual_source",)}  # sweeps a finding starts from

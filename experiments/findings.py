"""The paper's other findings at tiny scale: run each preset of experiments/configs/findings.py, then the report.

    python -m experiments.findings [--runs_dir=runs] [--workers=0] [--only=subsample,ckm,...]

Each finding's sweep is idempotent (a second call re-uses every complete run); continual pre-training first trains
its web-only source. `--only` picks the findings to train; the report (<runs_dir>/findings_report/report.md, figures
beside it) has a section for every finding whose sweep has a results table, with the wall time of the latest
invocation that trained some of its runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from absl import app, flags

from analysis import findings as sections
from analysis.io import load_results
from experiments import sweep as sweep_lib
from experiments.configs import findings as presets
from mixlab.cli import flags_parser, no_arguments, one_line_errors
from mixlab.config import ConfigError

_RUNS_DIR = flags.DEFINE_string("runs_dir", "runs", "where sweeps write their run folders")
_WORKERS = flags.DEFINE_integer("workers", 0, "local worker processes (0 = one per core)")
_ONLY = flags.DEFINE_list("only", [], f"findings to run (default: all of {list(presets.ORDER)})")

SectionFn = Callable[[pd.DataFrame], sections.Section]
WALL_FILE = "wall_times.json"  # seconds of each finding's latest sweep


def _section_fns() -> dict[str, SectionFn]:
    return {
        "subsample": sections.subsample_section,
        "ckm": sections.ckm_section,
        "tasks": sections.tasks_section,
        "continual": lambda df: sections.continual_section(df, presets.CONTINUAL["train.guard_web_loss_rise"]),
        "frequency": lambda df: sections.frequency_section(df, presets.FREQUENCY_RATIO),
        "tokens": lambda df: sections.tokens_section(df, presets.TOKENS["train.stop_at_acc"]),
    }


def run_finding(name: str, runs_dir: str, workers: int) -> float | None:
    """Train the finding's sweep (and the sweeps it starts from); its wall seconds, None if every run was complete."""
    t0 = time.perf_counter()
    outcomes: dict[str, str] = {}
    for arg in (*presets.STAGES.get(name, ()), f"{name}={runs_dir}"):
        outcomes |= sweep_lib.run_sweep(presets.get_sweep(arg), runs_dir, workers=workers)
    failed = sorted(rid for rid, outcome in outcomes.items() if outcome == "failed")
    if failed:
        raise SystemExit(f"{name}: {len(failed)} run(s) failed: {failed}; see their train.log, then rerun")
    trained = any(outcome != "skipped" for outcome in outcomes.values())
    return time.perf_counter() - t0 if trained else None


PROGRAM = "experiments.findings"


def main(argv: list[str]) -> None:
    with one_line_errors(PROGRAM):
        no_arguments(argv)
        _main()


def _main() -> None:
    names = _ONLY.value or list(presets.ORDER)
    unknown = sorted(set(names) - set(presets.ORDER))
    if unknown:
        raise ConfigError(f"--only={','.join(names)}: unknown findings {unknown}; known: {list(presets.ORDER)}")
    for name in names:  # every point of every sweep to train checked before anything is built
        for arg in (*presets.STAGES.get(name, ()), f"{name}={_RUNS_DIR.value}"):
            if not arg.startswith("continual="):  # its source is trained first
                sweep_lib.point_configs(presets.get_sweep(arg))
    runs_dir = Path(_RUNS_DIR.value)
    out = runs_dir / "findings_report"
    out.mkdir(parents=True, exist_ok=True)
    walls = {} if not (out / WALL_FILE).exists() else json.loads((out / WALL_FILE).read_text())
    for name in names:
        print(f"\n=== finding: {name}", flush=True)
        seconds = run_finding(name, _RUNS_DIR.value, _WORKERS.value)
        if seconds is not None:  # the wall time of the invocation that trained the runs, kept across re-runs
            walls[name] = seconds
            (out / WALL_FILE).write_text(json.dumps(walls, indent=1))
    lines = ["# Findings at tiny scale", "", "Presets: experiments/configs/findings.py; runs on this machine.", ""]
    fns = _section_fns()
    for name in presets.ORDER:  # every finding whose sweep has a table, trained now or before
        table = runs_dir / presets.get_sweep(f"{name}={runs_dir}").name / "results.csv"
        if not table.exists() or name not in fns:
            continue
        df = load_results(table)
        md, figures = fns[name](df)
        wall = f"sweep wall time {walls[name]:.0f} s" if name in walls else "wall time not recorded"
        lines += md + [f"_{len(df['run_id'].unique())} runs; {wall}._", ""]
        for file, fig in figures.items():
            fig.savefig(out / file, dpi=120, bbox_inches="tight")
    (out / "report.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"report: {out / 'report.md'}")


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(PROGRAM))

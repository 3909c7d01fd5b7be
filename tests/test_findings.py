"""Report sections of the findings (analysis/findings.py) on tables whose truth is known, and the presets' grids."""

import numpy as np
import pandas as pd
import pytest

from analysis import findings
from analysis.io import validate_results
from data_gen.synbio_fields import ATTRIBUTES
from experiments.configs import findings as presets


def _row(run_id: str, step: int, final: bool, n_correct: int, n_eval: int = 1000, **extra) -> dict:
    row = {
        "sweep": "s", "run_id": run_id, "size": "t57k", "params_total": 1.5e5, "params_non_embedding": 5.7e4,
        "ratio": 0.3, "num_people": 60, "seed": 0, "step": step, "final": final, "tokens": step * 2048.0,
        "knowledge_tokens": 0.0, "web_tokens": 0.0, "exposures": 1.0, "acc": n_correct / n_eval, "acc_se": 0.01,
        "n_eval": n_eval, "n_correct": n_correct, "n_people": 60, "value_loss": 1.0, "bits_stored": 0.0,
        "bits_per_param": 0.0, "web_loss": 4.0, "wall_time_s": 1.0, "people_learned": 0,
    }  # fmt: skip
    row.update({f"acc_{a}": row["acc"] for a in ATTRIBUTES})
    row.update(extra)
    return row


def _table(rows: list[dict]) -> pd.DataFrame:
    return validate_results(pd.DataFrame(rows))


def test_subsampling_claim_needs_every_seed():
    rows = []
    for seed, learned in ((0, {1.0: 2, 0.5: 9, 0.25: 5}), (1, {1.0: 3, 0.5: 8, 0.25: 6})):
        for rho, k in learned.items():
            rows.append(
                _row(f"{seed}-{rho}", 10, True, 10 * k, seed=seed, people_learned=k, **{"data.subsample": rho},
                     acc_kept=0.5, web_loss=4.0 + (1 - rho) / 10)
            )  # fmt: skip
    lines, figures = findings.subsample_section(_table(rows))
    text = "\n".join(lines)
    assert "Best rho = 0.5: 8.5 people learned against 2.5; **supported (every seed)**" in text
    assert "| 0.5 | 2 | 0.085 ± 0.007 | 0.500 ± 0.000 | 8.5 ± 0.7 | +0.050 |" in text
    assert set(figures) == {"subsample.png"}
    rows[4]["people_learned"] = rows[5]["people_learned"] = 1  # seed 1 at rho < 1 now learns fewer than rho = 1
    assert "not supported (1 of 2 seeds)" in "\n".join(findings.subsample_section(_table(rows))[0])


def test_ckm_gain_is_relative_to_tau_zero():
    rows = [
        _row(f"{s}-{t}", 10, True, k, seed=s, **{"data.ckm_tau": t})
        for s in (0, 1)
        for t, k in ((0.0, 10), (0.1, 40), (0.3, 200 + s))
    ]
    text = "\n".join(findings.ckm_section(_table(rows))[0])
    assert "| 0.1 | 2 | 0.040 ± 0.000 | 40 ± 0 | 4.0 |" in text
    assert "tau = 0.1: supported (every seed); tau = 0.3: supported (every seed)" in text


def test_tasks_section_reports_a_jump_and_no_rise():
    ratios = [0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8]
    rows = []
    for r in ratios:
        jump = 950 if r >= 0.2 else 5
        rows.append(_row(f"slope-{r}", 10, True, jump, ratio=r, **{"data.knowledge": "slope"}))
        rows.append(_row(f"max-{r}", 10, True, 3, ratio=r, **{"data.knowledge": "max_of_n"}))
    text = "\n".join(findings.tasks_section(_table(rows))[0])
    assert "### slope" in text and "Finding: a jump: LR =" in text
    assert "### max_of_n" in text and "no transition within the grid" in text


def test_continual_section_says_where_the_guardrail_stopped():
    rows = []
    for r, stop in ((0.1, None), (0.6, 3)):
        steps = range(0, (stop or 5) + 1)
        for step in steps:
            last = step == steps[-1]
            extra = {"stopped": "guardrail: web loss ..."} if last and stop else {}
            rows.append(_row(f"r{r}", step, last, 0, ratio=r, web_loss=4.0 + 0.05 * step * r, **extra))
    lines, _ = findings.continual_section(_table(rows), guard=0.1)
    text = "\n".join(lines)
    assert "| 0.6 | 1.0 | step 3 (6k tokens): guardrail |" in text and "+0.090" in text
    assert "| 0.1 | 1.0 | ran the budget (10k tokens) |" in text


@pytest.mark.parametrize("name", presets.SWEEPS)
def test_presets_build_and_differ_in_what_they_study(name):
    sweep = presets.get_sweep(name)
    keys = set().union(*sweep.points)
    studied = {"subsample": "data.subsample", "ckm": "data.ckm_tau", "tasks": "data.knowledge"}
    assert studied.get(name, "data.ratio" if name in ("continual", "tokens") else "model.size") in keys
    if name == "frequency":
        assert len({p["model.size"] for p in sweep.points}) >= 3
    if name == "tokens":
        assert len({p["data.ratio"] for p in sweep.points}) >= 4
    if name == "continual":
        assert sweep.fixed["train.init_from"] == presets.continual_source_dir("runs")
        assert np.all([p["train.init_from"] == sweep.fixed["train.init_from"] for p in sweep.points])


def test_the_driver_refuses_an_unknown_finding_in_one_line(cli, tmp_path):
    out = cli.run("experiments.findings", "--only=subsample,bogus", f"--runs_dir={tmp_path}", timeout_s=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "experiments.findings: --only=subsample,bogus: unknown findings ['bogus']; known: "
        "['subsample', 'ckm', 'frequency', 'tasks', 'continual', 'tokens']"
    ]
    assert not any(tmp_path.iterdir())


def test_frequency_and_tokens_sections_on_simulated_sweeps():
    from analysis.calibration import FREQ_SIZES, GROWTH_TRUTH, growth_runs, power_law_groups_table

    rng = np.random.default_rng(0)
    groups = power_law_groups_table(FREQ_SIZES, lambda m: 100 * (m / 1e6) ** -1.3, rng, groups=30)
    lines, figures = findings.frequency_section(groups, ratio=0.1)
    text = "\n".join(lines)
    assert "## Threshold frequency f* vs model size" in text and "Not fitted" not in text
    assert set(figures) == {"accuracy_vs_frequency.png", "threshold_frequency.png"}
    runs = growth_runs("exponential", GROWTH_TRUTH["exponential"], rng).assign(size="8M")
    lines, figures = findings.tokens_section(runs, target=0.4)
    assert lines[0] == "## Tokens to reach accuracy 0.4" and set(figures) == {"tokens_to_target.png"}

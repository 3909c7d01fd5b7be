"""Report sections for the paper's other findings (experiments/configs/findings.py): subsampling, compact knowledge
mixing, threshold frequency, other knowledge sets, continual pre-training, tokens-to-target. Each `*_section(df)`
takes a sweep's results table (analysis.io.load_results) and returns (markdown lines, {file name: figure}); numbers
are means ± sd over seeds, with the number of seeds stated, and every treatment's web-loss cost is shown beside its
gain.

Rules (analysis/FORMAT.md, "Findings"): a person counts as learned with at least half of their items correct
(mixlab.evaluate.LEARNED_SHARE); people learned in the population = people learned among the evaluated / evaluated
people x data.num_people. A claim is "supported" only when it holds in every seed, otherwise "not supported"; with one
seed it is "inconclusive".
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from analysis import plots, report
from analysis.curves import Curve
from analysis.frequency import fit_frequency
from analysis.growth import growth_by_size, tokens_to_target
from analysis.io import final_rows, param_column
from analysis.jump import jump_test
from analysis.scaling import fit_web_loss

Section = tuple[list[str], dict[str, Figure]]
NO_RISE = 0.05  # a knowledge set whose best accuracy stays below this has not started to learn


def _mean_sd(values: pd.Series, fmt: str = ".3f") -> str:
    v = values.dropna().to_numpy(float)
    if not len(v):
        return "n/a"
    return f"{v.mean():{fmt}}" if len(v) == 1 else f"{v.mean():{fmt}} ± {v.std(ddof=1):{fmt}}"


def _md_table(rows: list[dict]) -> list[str]:
    if not rows:
        return ["(no runs)"]
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    return lines + ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]


def _every_seed(better: pd.Series) -> str:
    """ "supported" if True in every seed (≥ 2 seeds), "inconclusive" with one seed, else "not supported"."""
    if len(better) < 2:
        return "inconclusive (one seed)"
    return "supported (every seed)" if better.all() else f"not supported ({int(better.sum())} of {len(better)} seeds)"


def _web_cost(d: pd.DataFrame, base: pd.DataFrame) -> str:
    return f"{d['web_loss'].mean() - base['web_loss'].mean():+.3f}"


def _people_learned_total(d: pd.DataFrame) -> pd.Series:
    return d["people_learned"] / d["n_people"] * d["num_people"]


def subsample_section(df: pd.DataFrame) -> Section:
    """Random subsampling at a fixed sub-critical r: accuracy over everyone and over the kept people, and the number
    of people learned, per kept fraction rho; claim: some rho < 1 learns more people than rho = 1."""
    final = final_rows(df).assign(rho=lambda d: d["data.subsample"], learned=_people_learned_total)
    base = final[final["rho"] == 1.0]
    rows = []
    for rho, d in final.groupby("rho", sort=False):
        rows.append(
            {
                "rho": rho,
                "seeds": len(d),
                "acc (everyone)": _mean_sd(d["acc"]),
                "acc (kept)": _mean_sd(d["acc_kept"]) if "acc_kept" in d and rho < 1 else _mean_sd(d["acc"]),
                "people learned (of the population)": _mean_sd(d["learned"], ".1f"),
                "web loss cost": _web_cost(d, base),
            }
        )
    rows.sort(key=lambda r: -r["rho"])
    by_rho = final.pivot_table(index="seed", columns="rho", values="learned")
    best = max((r for r in by_rho.columns if r < 1), key=lambda r: by_rho[r].mean())
    verdict = _every_seed(by_rho[best] > by_rho[1.0])
    r, size = final["ratio"].iloc[0], final["size"].iloc[0]
    lines = [
        "## Mitigation: random subsampling",
        "",
        f"{size} at r = {r}: the model trains on a seeded fraction rho of the {int(final['num_people'].iloc[0])} "
        "people and is evaluated on all of them.",
        "",
        *_md_table(rows),
        "",
        f"Claim: subsampling to rho < 1 learns more people in absolute number than rho = 1. Best rho = {best}: "
        f"{by_rho[best].mean():.1f} people learned against {by_rho[1.0].mean():.1f}; **{verdict}**.",
        "",
    ]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for seed, d in final.sort_values("rho").groupby("seed"):
        ax.plot(d["rho"], d["learned"], "o-", label=f"seed {seed}")
    ax.set(xscale="log", xlabel="kept fraction rho", ylabel="people learned (population)", title=f"{size}, r = {r}")
    ax.legend()
    return lines + ["![subsampling](subsample.png)", ""], {"subsample.png": fig}


def ckm_section(df: pd.DataFrame) -> Section:
    """Compact knowledge mixing at a fixed sub-critical r: facts learned per tau against tau = 0."""
    final = final_rows(df).assign(tau=lambda d: d["data.ckm_tau"])
    base = final[final["tau"] == 0.0]
    rows = []
    for tau, d in sorted(final.groupby("tau"), key=lambda kv: kv[0]):
        gain = d["n_correct"].mean() / max(base["n_correct"].mean(), 0.5)
        rows.append(
            {
                "tau": tau,
                "seeds": len(d),
                "acc": _mean_sd(d["acc"]),
                "facts learned": _mean_sd(d["n_correct"], ".0f"),
                "x tau = 0": f"{gain:.1f}"
                + (" (tau = 0 learned none; 0.5 used)" if base["n_correct"].mean() == 0 else ""),
                "web loss cost": _web_cost(d, base),
            }
        )
    by_tau = final.pivot_table(index="seed", columns="tau", values="n_correct")
    claims = [f"tau = {t}: {_every_seed(by_tau[t] > by_tau[0.0])}" for t in by_tau.columns if t > 0]
    r, size = final["ratio"].iloc[0], final["size"].iloc[0]
    lines = [
        "## Mitigation: compact knowledge mixing (CKM)",
        "",
        f"{size} at r = {r}: compact tuples worth tau x the biographies' tokens, inside the same knowledge budget; "
        "evaluation on the natural-language prompts.",
        "",
        *_md_table(rows),
        "",
        "Claim: CKM raises accuracy at a sub-critical r. " + "; ".join(claims) + ".",
        "",
    ]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for seed, d in final.sort_values("tau").groupby("seed"):
        ax.plot(d["tau"], d["acc"], "o-", label=f"seed {seed}")
    ax.set(xlabel="tau", ylabel="accuracy", title=f"{size}, r = {r}")
    ax.legend()
    return lines + ["![CKM](ckm.png)", ""], {"ckm.png": fig}


def tasks_section(df: pd.DataFrame) -> Section:
    """Other knowledge sets (data.knowledge) over r at one size: the accuracy curve and the jump test per set."""
    final = final_rows(df)
    lines = ["## Other knowledge sets: Slope and Max-over-N", ""]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, d in final.groupby("data.knowledge"):
        d = d.sort_values("ratio")
        rows = [{"r": r, "acc": _mean_sd(g["acc"]), "web loss": _mean_sd(g["web_loss"])} for r, g in d.groupby("ratio")]
        test = jump_test(Curve.from_frame(d, "ratio"))
        top = d.groupby("ratio")["acc"].mean()
        on_rise = int(((top > 0.1 * top.max()) & (top < 0.9 * top.max())).sum())
        floor = max(NO_RISE, float(d["acc_chance"].max()) if "acc_chance" in d else 0.0)
        if d["acc"].max() < floor + NO_RISE:
            finding = (
                f"no transition within the grid: accuracy stays within {NO_RISE} of {floor:.3f} (the larger of "
                f"{NO_RISE} and the accuracy of always giving the most likely answer) at every r"
            )
        elif test.rejects:
            finding = "a jump: " + test.describe()
        elif test.tested:
            finding = "a rise no steeper than the smooth bound allows (no jump): " + test.describe()
        else:
            finding = "the rise cannot be tested: " + test.describe()
        if d["acc"].max() >= floor + NO_RISE:
            finding += f"; {on_rise} ratio(s) on the rise (between 10% and 90% of the top accuracy)"
            if not on_rise:
                finding += ", so the grid brackets the rise without resolving its shape"
        lines += [f"### {name} ({d['size'].iloc[0]})", "", *_md_table(rows), "", f"Finding: {finding}.", ""]
        ax.plot(d["ratio"], d["acc"], "o-", label=name)
    ax.set(xscale="log", xlabel="mixing ratio r", ylabel="exact-match accuracy (held out)")
    ax.legend()
    return lines + ["![knowledge sets](tasks.png)", ""], {"tasks.png": fig}


def continual_section(df: pd.DataFrame, guard: float) -> Section:
    """Continual pre-training from a web-only run over (r, rho): where the web-loss guardrail (train.guard_web_loss_rise
    = `guard`) stopped each run."""
    rows, fig = [], plt.figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    for _, d in df.sort_values("step").groupby("run_id", sort=False):
        start, last = d.iloc[0], d.iloc[-1]
        stopped = last.get("stopped") if isinstance(last.get("stopped"), str) else ""
        rows.append(
            {
                "r": last["ratio"],
                "rho": last.get("data.subsample", 1.0),
                "stopped": f"step {int(last['step'])} ({last['tokens'] / 1e3:.0f}k tokens): guardrail"
                if stopped.startswith("guardrail")
                else f"ran the budget ({last['tokens'] / 1e3:.0f}k tokens)",
                "acc": f"{last['acc']:.3f}",
                "people learned": int(last["people_learned"]),
                "web loss rise": f"{last['web_loss'] - start['web_loss']:+.3f}",
            }
        )
        ax.plot(d["tokens"], d["web_loss"] - start["web_loss"], label=f"r={last['ratio']}, rho={rows[-1]['rho']}")
    rows.sort(key=lambda r: (r["rho"], r["r"]))
    ax.axhline(guard, color="k", ls=":", label="guardrail")
    ax.set(xlabel="tokens of continual training", ylabel="web loss - its step-0 value")
    ax.legend(fontsize=7)
    lines = [
        "## Continual pre-training",
        "",
        "From a web-only run, knowledge mixed in at (r, rho) with a constant LR; the guardrail stops a run once the "
        f"web loss exceeds its starting value by {guard}.",
        "",
        *_md_table(rows),
        "",
    ]
    return lines + ["![continual](continual.png)", ""], {"continual.png": fig}


def frequency_section(df: pd.DataFrame, ratio: float) -> Section:
    """Power-law groups at `ratio` over sizes: f* per size, its power law in M, and its slope against the theory's
    -(alpha + 1), alpha from the web-loss fit of the sweep's web-only (r = 0) runs (analysis/frequency.py)."""
    final = final_rows(df)
    web_only = final[final["ratio"] == 0]
    pcol = param_column(final)
    web = fit_web_loss(web_only[pcol], web_only["web_loss"]) if web_only[pcol].nunique() >= 4 else None
    fs = fit_frequency(df, web=web, ratio=ratio)
    lines = report.frequency_section(fs)
    if web is not None:
        ci = f" [{web.ci['alpha'][0]:.3g}, {web.ci['alpha'][1]:.3g}]" if web.ok else ""
        alpha = f"alpha = {web.alpha:.3g}{ci}"
        lines += [f"Web-loss fit over the {len(web_only)} web-only runs: {alpha} ({web.reason or 'ok'}).", ""]
    figures = {f"{stem}.png": fig for stem, (_, fig) in report.frequency_figures(fs).items()}
    return lines + [f"![{stem}]({stem})" for stem in figures] + [""], figures


def tokens_section(df: pd.DataFrame, target: float) -> Section:
    """Tokens-to-target over r (runs evaluated at log-spaced steps, stopping at `target`): per-run T with its
    censoring, and exponential against power-law growth in 1/r (analysis/growth.py)."""
    tokens = tokens_to_target(df, target)
    growth = growth_by_size(tokens)
    figure = plots.tokens_to_target_vs_ratio(tokens, growth)
    return report.growth_section(tokens, growth) + ["![tokens to target](tokens_to_target.png)", ""], {
        "tokens_to_target.png": figure
    }

"""Write report.md with figures, threshold tables and a verdict per claim, computed from a results table.

    python -m analysis.report --results=runs/results.csv --out=runs/report
    python -m analysis.report --results=paper_table.csv --external --n_eval=2500 --out=report_paper

The fits and verdicts come from analysis/verdicts.py; this module renders them as markdown, figures and CSVs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from analysis import plots
from analysis.forecast import FORECAST_FILE, Forecast, format_forecast, misses
from analysis.frequency import UNITS, FrequencyScaling, power_law_rows
from analysis.growth import CENSORED_AS, FEATURE
from analysis.io import final_rows, ingest_external, load_results
from analysis.thresholds import ThresholdSet, format_ci
from analysis.verdicts import Analysis, analyze, main_budget, verdicts

METHOD_MD = [
    "## Method",
    "",
    "Sigmoid in log x by binomial maximum likelihood; bootstrap over seeds (runs at each x drawn with "
    "replacement) and over evaluated items (n_correct* ~ Binomial(n_eval, acc)); see analysis/curves.py. "
    "Crossings: isotonic fit, linear interpolation in log x. Sharpness: sigmoid vs smooth power law / "
    "linear-in-log alternatives by BIC, plus the 10→90% span. Power laws: Huber in log-log with the "
    "thresholds' bootstrap draws propagated. Theory: analysis/theory.py (assumptions in its docstring).",
    "",
]


def _table_md(df: pd.DataFrame) -> str:
    if df is None or df.empty:
        return "(none)\n"
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in r]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _threshold_md(t: ThresholdSet, targets) -> str:
    tab = t.table
    rows = []
    for _, r in tab.iterrows():
        row = {t.by: r[t.by], "M": r["M"], "ok": r["ok"]}
        if r["ok"]:
            row[f"{t.x}* [95% CI]"] = f"{r['x_star']:.4g} {format_ci(r['x_star_lo'], r['x_star_hi'])}"
            row["w [CI]"] = f"{r['w']:.3g} {format_ci(r['w_lo'], r['w_hi'])}"
            row["10→90% span ×"] = f"{r['span_factor']:.3g} {format_ci(r['span_factor_lo'], r['span_factor_hi'])}"
            row[f"{t.x} at level [CI]"] = (
                f"{r['x_level']:.4g} {format_ci(r['x_level_lo'], r['x_level_hi'])} (acc {r['level']:.3g})"
            )
            row["fit p"] = f"{r['gof_p']:.2g}"
            row["φ"] = f"{r['dispersion']:.2f}"
        row["jump p"] = f"{r['jump_p']:.3f} ± {r['jump_p_se']:.3f}" if r["jump_tested"] else "not run (< 6 points)"
        for tg in targets:
            tag = f"cross{round(100 * tg):d}"
            row[f"{t.x} at {tg:g} [CI]"] = (
                f"{r[tag]:.4g} {format_ci(r[tag + '_lo'], r[tag + '_hi'])}" if r[tag + "_ok"] else "—"
            )
        row["note"] = r["reason"] or ("" if r["resolved"] else "bracketed by grid")
        rows.append(row)
    return _table_md(pd.DataFrame(rows))


def _figures(a: Analysis) -> dict[str, tuple[str, object]]:
    """{file stem: (caption, figure)} for every figure the analysis supports, in report order.

    Every figure draws the rows its fit was made on: the grid figures the main-budget mixture runs, never the
    power-law runs (analysis.frequency.power_law_rows), which get their own.
    """
    df = a.df[~power_law_rows(a.df)]
    figs: dict[str, tuple[str, object]] = {}
    fin = final_rows(df)
    mix = main_budget(fin[(fin["ratio"] > 0) & (fin["ratio"] < 1)])  # the runs the thresholds were fitted on
    if a.r_thresholds is not None:
        figs["phase_diagram"] = (
            "Phase diagram (accuracy over size × ratio, white: fitted r*)",
            plots.phase_diagram(mix, a.r_thresholds),
        )
        figs["accuracy_vs_ratio"] = (
            "Accuracy vs r per size, sigmoid fit and its bootstrap band",
            plots.accuracy_curves(mix, "ratio", "size", a.r_thresholds),
        )
        figs["threshold_scaling"] = (
            "r* vs M (log-log): points with CI, power law, theory",
            plots.threshold_scaling(a.r_thresholds, a.r_power, a.theory_r),
        )
        figs["width_vs_size"] = (
            "Width w of each size's sigmoid vs M with its CI, and the power law of the sizes whose rise the grid "
            "resolves (>= 2 sampled ratios on it)",
            plots.plot_width_vs_size(_widths(a.r_thresholds), a.width_power, ylabel="width w (log-r units)"),
        )
        for size, test in a.r_thresholds.jumps.items():
            if test.tested:
                figs[f"jump_test_{size}"] = (
                    f"Jump test, size {size}: {test.describe()}",
                    plots.plot_jump_test(a.r_thresholds.curves[size], test, label=f"size {size}"),
                )
    if a.m_thresholds is not None:
        figs["accuracy_vs_size"] = (
            "Accuracy vs M per ratio, sigmoid fit and its bootstrap band",
            plots.accuracy_curves(mix, a.param_col, "ratio", a.m_thresholds),
        )
    if (df["exposures"] > 0).any():
        figs["accuracy_vs_exposures"] = ("Accuracy vs exposures, coloured by r", plots.accuracy_vs_exposures(df))
    figs["per_attribute"] = ("Per-attribute accuracy (main-budget runs)", plots.per_attribute(mix))
    if a.control_fit is not None:
        figs["knowledge_control"] = (
            "Control: knowledge-only (r = 1) accuracy vs M",
            plots.accuracy_curves(fin[fin["ratio"] == 1.0], a.param_col, None, a.control_fit),
        )
    if a.web is not None and a.web.ok:
        figs["web_loss"] = ("Web loss vs M (r = 0 runs) with fit", plots.web_loss(fin[fin["ratio"] == 0], a.web))
    if a.tokens is not None:
        figs["tokens_to_target"] = (
            "Tokens to reach the target vs 1/r per size: censored runs as arrows, both growth laws",
            plots.tokens_to_target_vs_ratio(a.tokens, a.growth),
        )
    if a.frequency is not None:
        figs.update(frequency_figures(a.frequency))
    return figs


def frequency_figures(fs: FrequencyScaling) -> dict[str, tuple[str, object]]:
    """{file stem: (caption, figure)} of the power-law groups: accuracy vs frequency per size (the groups of the
    final evaluations that the sigmoids were fitted on) and f* vs M."""
    figs = {}
    if fs.thresholds is not None:
        figs["accuracy_vs_frequency"] = (
            "Accuracy of each power-law group vs its frequency, per size, sigmoid fit and its bootstrap band",
            plots.accuracy_curves(fs.points, "frequency", "size", fs.thresholds),
        )
    figs["threshold_frequency"] = (
        "Threshold frequency f* vs M (log-log): points with CI, power law, the theory's slope -(alpha+1)",
        plots.threshold_frequency_vs_size(fs),
    )
    return figs


def _widths(tset: ThresholdSet) -> pd.DataFrame:
    """The fitted sizes' widths w in the columns plots.plot_width_vs_size reads."""
    t = tset.table[tset.table["ok"]]
    cols = {tset.by: "size", "M": "params", "w": "width", "w_lo": "width_lo", "w_hi": "width_hi"}
    return t[list(cols)].rename(columns=cols)


def _write_tables(a: Analysis, out: Path) -> None:
    """The threshold and theory-comparison tables, as CSV beside the report."""
    for table, name in (
        (a.r_thresholds.table if a.r_thresholds is not None else None, "thresholds_ratio"),
        (a.m_thresholds.table if a.m_thresholds is not None else None, "thresholds_size"),
        (a.theory_cmp, "theory_comparison"),
        (a.theory_m_cmp, "theory_comparison_size"),
        (a.tokens, "tokens_to_target"),
        (a.frequency.table if a.frequency is not None else None, "threshold_frequency"),
    ):
        if table is not None:
            table.to_csv(out / f"{name}.csv", index=False)


def _header_md(a: Analysis, source: str) -> list[str]:
    """Title, what the table holds, and the verdicts."""
    df = a.df
    sizes = ", ".join(map(str, plots.size_order(df)))
    ratios = ", ".join(f"{r:g}" for r in sorted(df["ratio"].unique()))
    lines = [
        "# mixlab analysis report",
        "",
        f"Source: `{source}` — {len(df)} rows, {df['run_id'].nunique()} runs, {len(final_rows(df))} final rows; "
        f"sizes {sizes}; ratios {ratios}. Model size M = `{a.param_col}`. CIs: {a.level:.0%} percentile bootstrap.",
        "",
    ]
    notes = df.attrs.get("ingest_notes")
    if notes:
        lines += ["Ingested as an external table: " + "; ".join(notes) + ".", ""]
    lines += ["## Verdicts", ""]
    lines += [f"- **{v.claim}** — *{v.status}*. {v.text}" + (f" *Rests on:* {v.basis}." if v.basis else "")
              for v in verdicts(a)]  # fmt: skip
    return [*lines, ""]


def _thresholds_and_power_laws_md(a: Analysis, targets) -> list[str]:
    """Threshold tables in r and in M, then the power laws fitted to them (and the theory's exponents)."""
    lines = []
    if a.r_thresholds is not None:
        lines += ["## Thresholds in r (per size)", "", _threshold_md(a.r_thresholds, targets)]
    if a.m_thresholds is not None:
        lines += ["## Critical size M* (per ratio)", "", _threshold_md(a.m_thresholds, targets)]
    if a.r_thresholds is not None and len(a.r_thresholds.table):
        kinds = "; ".join(sorted(set(a.r_thresholds.table["level_kind"].dropna())))
        lines += [
            f"The r* that feeds the power law is the ratio where a size's sigmoid reaches {kinds}: a fixed fraction "
            "of what that size can learn at all, so r* keeps one meaning where a ceiling is not reached in the "
            "mixtures (the fitted midpoint would sit lower on the curve there). `fit p` is the sigmoid's "
            "goodness of fit (Pearson / φ); φ the dispersion (analysis/dispersion.py), which for a fit p below "
            "0.01 is the sigmoid's lack of fit (the threshold enters the power law with that wider interval).",
            "",
        ]
    lines += ["## Power laws", ""]
    for label, pl in (
        ("r* vs M", a.r_power),
        ("M* vs r", a.m_power),
        ("f* vs M", a.frequency.power if a.frequency is not None else None),
        ("width w vs M", a.width_power),
    ):
        if pl is None:
            continue
        if pl.ok:
            lines.append(
                f"- {label}: k = {pl.k:.3f} {format_ci(*pl.ci['k'])}, C = {pl.C:.3g} {format_ci(*pl.ci['C'])} "
                f"({pl.n_points} points, Huber in log-log, bootstrap {pl.method})"
            )
        else:
            lines.append(f"- {label}: not fitted ({pl.reason})")
    if a.theory_r is not None:
        t = a.theory_r
        lines.append(
            f"- theory: slope of the predicted r* over the same sizes {t.local_exponent:.3f} "
            f"{format_ci(*t.local_exponent_ci)}; asymptotically r* ∝ M^-(alpha+1), exponent {t.exponent:.3f} "
            f"{format_ci(*t.exponent_ci)}"
        )
    return [*lines, ""]


def _theory_inputs_md(a: Analysis) -> list[str]:
    """The web-loss law, the capacity c, L_bio, p and H_tot."""
    lines = ["## Web-loss scaling and theory inputs", ""]
    if a.web is not None and a.web.ok:
        w = a.web
        lines.append(
            f"- L(M) = E + A (M/{w.scale:.0e})^-alpha: E = {w.E:.4g} {format_ci(*w.ci['E'])}, "
            f"A = {w.A:.4g} {format_ci(*w.ci['A'])}, alpha = {w.alpha:.4g} {format_ci(*w.ci['alpha'])} "
            f"(bootstrap over {w.method})"
        )
    else:
        lines.append(f"- web-loss fit: not available ({a.missing.get('web', '')})")
    if a.capacity is not None:
        cap = a.capacity
        lines.append(
            f"- capacity c = {cap.c:.4g} bits/param {format_ci(*cap.ci)} ({cap.source or cap.reason})"
            if cap.ok
            else f"- capacity: not available ({cap.reason})"
        )
    lines.append(
        f"- tokens per biography L_bio = {a.tokens_per_bio:.4g} (knowledge_tokens / (exposures × "
        f"num_people)); p = ln2 / (N L_bio) = {a.p:.4g} nats per token per bit; H_tot = {a.total_bits:.4g} "
        "bits"
    )
    return [*lines, ""]


def _comparisons_md(a: Analysis, targets) -> list[str]:
    """Observed vs predicted thresholds, equal-exposure pairs and tokens to target, where available."""
    lines = []
    if a.theory_cmp is not None:
        title = "### Observed vs predicted r* (prediction: half of the facts stored)"
        lines += [title, "", _table_md(a.theory_cmp), ""]
    if a.theory_m_cmp is not None:
        lines += ["### Observed vs predicted M* per ratio", "", _table_md(a.theory_m_cmp), ""]
    if a.exposure_pairs is not None and not a.exposure_pairs.empty:
        lines += ["## Equal-exposure comparisons", "", _table_md(a.exposure_pairs), ""]
    if a.tokens is not None:
        lines += growth_section(a.tokens, a.growth)
    if a.frequency is not None:
        lines += frequency_section(a.frequency)
    return lines


def _with_ci(v: float, lo: float, hi: float, fmt: str = ".3g") -> str:
    return f"{v:{fmt}} {format_ci(lo, hi, fmt)}" if pd.notna(v) else "—"


def growth_section(tokens: pd.DataFrame, growth: dict) -> list[str]:
    """Markdown of tokens to target vs 1/r: one row per size (both laws' slopes, dAIC, the verdict's form, the
    censoring), then one per run (T, its bracket, its censoring)."""
    target = float(tokens["target"].iloc[0])
    lines = [
        f"## Tokens to reach accuracy {target:g}",
        "",
        "Per run, T is where the monotone (isotonic) fit of accuracy along training crosses the target, "
        "interpolated in log tokens between the two evaluations around it (the bracket); a run that never gets "
        "there is right-censored at its last evaluation. Per size, log T = a + b g(r) + σ z with g = 1/r "
        "(exponential) or log(1/r) (power law), by a Tobit likelihood (censored runs as survival terms); b's CI is "
        "its profile likelihood; dAIC = AIC_exp − AIC_power, |dAIC| < 2 inconclusive (analysis/growth.py).",
        "",
    ]
    rows = []
    for size, fit in growth.items():
        row = {"size": size, "runs": fit.n_runs, "ratios": fit.n_ratios}
        for form, law in fit.laws.items():
            row[f"{form}: b on {FEATURE[form]} [CI]"] = _with_ci(law.b, *law.b_ci)
            row[f"{form} σ"] = f"{law.sigma:.2g}"
        if fit.ok:
            row.update({"dAIC": f"{fit.delta_aic:+.2f}", "preferred": fit.preferred})
            row.update({CENSORED_AS[k]: v for k, v in fit.censored.items()})
        rows.append({**row, "note": fit.reason})
    columns = list(dict.fromkeys(c for r in sorted(rows, key=len, reverse=True) for c in r))
    lines += [_table_md(pd.DataFrame(rows, columns=columns).astype(object).fillna("—")), ""]
    runs = pd.DataFrame(
        {
            "run": tokens["run_id"],
            "size": tokens["size"],
            "r": tokens["ratio"],
            "seed": tokens["seed"],
            "T": tokens["tokens_to_target"].map(lambda v: f"{v:.3g}" if pd.notna(v) else "—"),
            "bracket": [
                f"({lo:.3g}, {hi:.3g}]" for lo, hi in zip(tokens["tokens_lo"], tokens["tokens_hi"], strict=True)
            ],
            "censoring": tokens["censoring"],
            "note": tokens["reason"],
        }
    )
    return [*lines, _table_md(runs), ""]


def frequency_section(fs: FrequencyScaling) -> list[str]:
    """Markdown of the threshold frequency vs size: f* per size with its CI, its power law in M and the comparison
    with the theory's -(alpha+1)."""
    lines = ["## Threshold frequency f* vs model size (power-law groups)", ""]
    if fs.thresholds is None:
        return [*lines, f"Not fitted: {fs.reason}.", ""]
    lines += [
        f"f* is the frequency ({UNITS[fs.unit]}) at which a size's sigmoid in log frequency, fitted to its groups' "
        f"final accuracies (r = {fs.ratio:g}), reaches {fs.level_kind}.",
        "",
    ]
    t = fs.table
    rows = [
        {
            "size": r["size"],
            "M": r["M"],
            "groups": r["groups"],
            "seeds": r["seeds"],
            "f* [CI]": _with_ci(r["f_star"], r["f_star_lo"], r["f_star_hi"]) if r["ok"] else "—",
            "level": f"{r['level']:.3g}",
            "fit p": f"{r['gof_p']:.2g}",
            "resampling": r["unit"],
            "note": r["reason"],
        }
        for _, r in t.iterrows()
    ]
    lines += [_table_md(pd.DataFrame(rows)), ""]
    pl, th = fs.power, fs.theory
    if pl.ok:
        lines.append(f"- f* ∝ M^k: k = {_with_ci(pl.k, *pl.ci['k'])} over {pl.n_points} sizes (bootstrap {pl.method})")
    else:
        lines.append(f"- f* vs M: not fitted ({pl.reason})")
    if th.ok:
        lines.append(
            f"- theory: -(alpha+1) = {_with_ci(th.predicted, *th.predicted_ci)} ({th.alpha_source}); k minus it: "
            f"{_with_ci(th.diff, *th.diff_ci)}"
        )
    else:
        lines.append(f"- theory: not compared ({th.reason})")
    lines += [f"- {n}" for n in fs.notes]
    return [*lines, ""]


def _figures_and_warnings_md(a: Analysis, figs: dict[str, tuple[str, object]]) -> list[str]:
    """The figures with their captions, then every distinct fit warning."""
    lines = ["## Figures", ""]
    for name, (caption, _) in figs.items():
        lines += [f"### {caption}", "", f"![{caption}]({name}.png)", ""]
    lines += ["## Fit warnings", ""]
    lines += [f"- {w}" for w in dict.fromkeys(a.warnings)] or ["- none"]
    return [*lines, ""]


def forecast_md(forecast: Forecast, a: Analysis) -> list[str]:
    """The prediction made before the mixtures (analysis/forecast.py) against the thresholds observed after them."""
    lines = [
        "## The theory's prediction, made before the mixtures",
        "",
        f"Written to `{FORECAST_FILE}` at {forecast.made_at}, from the {len(forecast.calibration_runs)} calibration "
        "runs alone (r = 0 and r = 1), before the first mixture run started:",
        "",
        *[f"- {line.strip()}" for line in format_forecast(forecast)],
        "",
        "Observed against predicted (observed / predicted > 1: the mixtures needed more knowledge than the theory "
        "said):",
        "",
    ]
    table = misses(forecast, a)
    if not table["same_as_report"].all():
        lines += ["**The analysis below predicts other values than this record** (different calibration rows).", ""]
    return [*lines, _table_md(table.drop(columns="same_as_report")), ""]


def write_report(
    a: Analysis, out: str | Path, *, source: str = "", targets=(0.4, 0.8), forecast: Forecast | None = None
) -> Path:
    """Write report.md, figures (PNG) and threshold CSVs into `out`; returns the report path. With `forecast`, the
    prediction made before the mixtures and its misses come right after the verdicts."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figs = _figures(a)
    for name, (_, fig) in figs.items():
        fig.savefig(out / f"{name}.png", dpi=110)
    _write_tables(a, out)
    lines = [
        *_header_md(a, source),
        *(forecast_md(forecast, a) if forecast is not None else []),
        *_thresholds_and_power_laws_md(a, targets),
        *_theory_inputs_md(a),
        *_comparisons_md(a, targets),
        *_figures_and_warnings_md(a, figs),
        *METHOD_MD,
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description="Write report.md (figures, thresholds, verdicts) from a table.")
    parser.add_argument("--results", required=True, help="results table (.csv or .parquet)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--external", action="store_true", help="table from outside mixlab (minimal columns)")
    parser.add_argument("--n_eval", type=int, default=None, help="items per row, for external tables without counts")
    parser.add_argument("--n_boot", type=int, default=1000)
    parser.add_argument("--targets", default="0.4,0.8", help="accuracy targets for crossing thresholds")
    parser.add_argument("--bits_per_param", type=float, default=None, help="capacity c, if not measured")
    parser.add_argument("--bits_per_person", type=float, default=None, help="default: paper's pools, 46.6")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    df = ingest_external(args.results, n_eval=args.n_eval) if args.external else load_results(args.results)
    targets = tuple(float(t) for t in args.targets.split(",") if t)
    a = analyze(
        df,
        n_boot=args.n_boot,
        targets=targets,
        seed=args.seed,
        bits_per_param=args.bits_per_param,
        person_bits=args.bits_per_person,
    )
    path = write_report(a, args.out, source=str(args.results), targets=targets)
    print(f"wrote {path}")
    for v in verdicts(a):
        print(f"[{v.status}] {v.claim}")
    return path


if __name__ == "__main__":
    main()

"""Every analysis a results table allows, and a verdict per claim of the paper computed from it.

`analyze` runs the fits (thresholds in r and in M, power laws, the knowledge-only control, web-loss scaling, the
capacity, the theory's prediction, equal-exposure pairs, tokens to target, the power-law groups' threshold
frequency); `verdicts`
turns them into one plain-language verdict per claim. A claim the data cannot address gets "not testable: <what is
missing>". analysis/report.py renders both as markdown.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.curves import Curve
from analysis.fitting import FitWarning, percentile_ci
from analysis.frequency import UNITS, FrequencyScaling, fit_frequency, power_law_rows
from analysis.growth import growth_by_size, tokens_to_target
from analysis.io import final_rows, param_column
from analysis.jump import MIN_POINTS, JumpTest, jump_test
from analysis.scaling import (
    PowerLawFit,
    WebLossFit,
    fit_power_law,
    fit_web_loss,
    threshold_power_law,
)
from analysis.theory import (
    PAPER_POOLS,
    CapacityEstimate,
    TheoryPrediction,
    compare,
    fact_value,
    given_capacity,
    measure_capacity,
    measured_tokens_per_bio,
    predict,
)
from analysis.thresholds import (
    MIN_FIT_P,
    SigmoidFit,
    ThresholdSet,
    fit_sigmoid,
    fit_thresholds,
    format_ci,
    steepness,
)
from data_gen.synbio_fields import bits_per_person

STATUSES = ("supported", "not supported", "contradicted", "inconclusive", "not testable")
MIN_POWER_LAW_SIZES = 4  # a power-law verdict; 3 sizes give the direction only, 2 none
LEVEL = 0.05  # of every test behind a verdict
BUDGET_COLUMNS = ("budget", "train.exposures")
RUN_LENGTH_COLUMNS = ("budget", "train.exposures", "train.tokens", "train.num_steps")


def main_budget(final: pd.DataFrame) -> pd.DataFrame:
    """The final runs at the table's main run length.

    Where a run-length column varies between final runs, only the value most runs share is kept, so that a longer
    run added for an equal-exposure comparison does not pool with the grid as if it were another seed.
    """
    for col in RUN_LENGTH_COLUMNS:
        if col in final.columns and final[col].nunique() > 1:
            final = final[final[col] == final[col].mode().iloc[0]]
    return final


@dataclass
class Verdict:
    """One claim of the paper, its status (one of STATUSES), the evidence in words and what it rests on."""

    claim: str
    status: str
    text: str
    basis: str = ""


@dataclass
class Analysis:
    """Everything the report shows; None where the data did not allow it (with the reason in `missing`)."""

    df: pd.DataFrame
    param_col: str
    level: float
    r_thresholds: ThresholdSet | None = None
    m_thresholds: ThresholdSet | None = None
    r_power: PowerLawFit | None = None
    m_power: PowerLawFit | None = None
    control_fit: SigmoidFit | None = None
    control_jump: JumpTest | None = None
    width_power: PowerLawFit | None = None
    control_ratio: pd.DataFrame | None = None
    web: WebLossFit | None = None
    capacity: CapacityEstimate | None = None
    p: float = math.nan
    tokens_per_bio: float = math.nan
    total_bits: float = math.nan
    theory_r: TheoryPrediction | None = None
    theory_cmp: pd.DataFrame | None = None
    theory_m_cmp: pd.DataFrame | None = None
    exposure_pairs: pd.DataFrame | None = None
    tokens: pd.DataFrame | None = None  # analysis.growth.tokens_to_target of every mixture run
    growth: dict = field(default_factory=dict)  # size -> analysis.growth.GrowthFit
    frequency: FrequencyScaling | None = None  # None without power-law runs
    missing: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _with_min_points(d: pd.DataFrame, x: str, by: str, k: int = 3) -> pd.DataFrame:
    counts = d.groupby(by)[x].nunique()
    return d[d[by].isin(counts[counts >= k].index)]


def exposure_pairs(final: pd.DataFrame, *, rel_tol: float = 0.1) -> pd.DataFrame:
    """Final runs of one size trained to equal exposures at different ratios.

    Runs are matched by a `budget` or `train.exposures` column (equal positive values) when present, otherwise by
    the `exposures` column agreeing within rel_tol. Each pair compares the lowest and the highest ratio of a match:
    difference in accuracy, its SE (clustered from acc_se when every run has one, else binomial), z, and the tokens
    each side trained on (the runs differ in length by design).
    """
    d = final[(final["ratio"] > 0) & (final["ratio"] < 1)]
    budget = next((c for c in BUDGET_COLUMNS if c in d.columns), None)
    groups = []
    if budget is not None:
        b = d[pd.to_numeric(d[budget], errors="coerce") > 0]
        groups = [(f"{budget}={key[1]:g}", g) for key, g in b.groupby(["size", budget])]
    if not groups:
        for _, g in d[d["exposures"] > 0].groupby("size"):
            g = g.sort_values("exposures")
            le = np.log(g["exposures"].to_numpy())
            cluster = np.concatenate([[0], np.cumsum(np.diff(le) > np.log1p(rel_tol))])
            groups += [(f"exposures~{cg['exposures'].median():.3g}", cg) for _, cg in g.groupby(cluster)]
    rows = []
    for label, g in groups:
        if g["ratio"].nunique() < 2:
            continue
        lo_r, hi_r = g["ratio"].min(), g["ratio"].max()
        (pa, va, kind_a, ta), (pb, vb, kind_b, tb) = (_pair_side(g[g["ratio"] == r]) for r in (lo_r, hi_r))
        se = math.sqrt(max(va + vb, 1e-12))
        rows.append(
            {
                "size": g["size"].iloc[0],
                "match": label,
                "exposures": float(g["exposures"].median()),
                "ratio_low": lo_r,
                "acc_low": pa,
                "tokens_low": ta,
                "ratio_high": hi_r,
                "acc_high": pb,
                "tokens_high": tb,
                "diff": pb - pa,
                "se": se,
                "se_kind": "clustered" if kind_a == kind_b == "clustered" else "binomial",
                "z": (pb - pa) / se,
            }
        )
    return pd.DataFrame(rows)


def _pair_side(runs: pd.DataFrame) -> tuple[float, float, str, float]:
    """(accuracy, its variance, "clustered" when every run has acc_se (people as clusters) else "binomial", tokens)
    of the runs on one side of an equal-exposure pair, pooled over their items."""
    k, n = runs["n_correct"].sum(), runs["n_eval"].sum()
    p = k / n
    tokens = float(runs["tokens"].median()) if "tokens" in runs else math.nan
    se = pd.to_numeric(runs["acc_se"], errors="coerce") if "acc_se" in runs else pd.Series(dtype=float)
    if len(se) and se.notna().all() and (se > 0).all():
        weights = runs["n_eval"] / n
        return p, float(np.sum((weights * se) ** 2)), "clustered", tokens
    return p, p * (1 - p) / n, "binomial", tokens


def analyze(
    df: pd.DataFrame,
    *,
    n_boot: int = 1000,
    targets: tuple[float, ...] = (0.4, 0.8),
    level: float = 0.95,
    seed: int = 0,
    bits_per_param: float | None = None,
    person_bits: float | None = None,
) -> Analysis:
    """Run every analysis the table allows."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FitWarning)
        out = _analyze(df, n_boot, targets, level, seed, bits_per_param, person_bits)
    out.warnings = [str(w.message) for w in caught if issubclass(w.category, FitWarning)]
    for w in caught:
        if not issubclass(w.category, FitWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return out


def _analyze(df, n_boot, targets, level, seed, bits_per_param, person_bits) -> Analysis:
    power_law = power_law_rows(df)
    main = df[~power_law]
    a = Analysis(df=df, param_col=param_column(df), level=level)
    final = final_rows(main)
    mix = main_budget(final[(final["ratio"] > 0) & (final["ratio"] < 1)])
    _fit_mixture_thresholds(a, final, mix, targets, n_boot, seed)
    _fit_control(a, final, n_boot, seed)
    _fit_theory_inputs(a, final, mix, bits_per_param, person_bits, n_boot, seed)
    _predict_thresholds(a, n_boot, seed)
    a.exposure_pairs = exposure_pairs(final)
    _fit_tokens_to_target(a, main, targets)
    if power_law.any():
        levels = knowledge_only_levels(final)
        a.frequency = fit_frequency(df, levels=levels, web=a.web, n_boot=n_boot, level=a.level, seed=seed)
    return a


def knowledge_only_levels(final: pd.DataFrame, fraction: float = 0.5) -> dict:
    """size -> `fraction` of the pooled accuracy of that size's knowledge-only (r = 1) final runs."""
    know = final[final["ratio"] == 1.0]
    sums = know.groupby("size")[["n_correct", "n_eval"]].sum()
    return (fraction * sums["n_correct"] / sums["n_eval"]).to_dict()


def _fit_mixture_thresholds(a: Analysis, final: pd.DataFrame, mix: pd.DataFrame, targets, n_boot: int, seed: int):
    """r* per size (at half the size's knowledge-only accuracy where it has r = 1 runs) and M* per ratio (at the
    fitted midpoint), each with its power law; the width of the transition in r against M."""
    kw = dict(n_boot=n_boot, level=a.level, seed=seed)
    pcol = a.param_col
    mr = _with_min_points(mix, "ratio", "size")
    if mr.empty:
        a.missing["r"] = "no model size has final mixture runs (0 < ratio < 1) at >= 3 ratios"
    else:
        levels = knowledge_only_levels(final)
        a.r_thresholds = fit_thresholds(mr, "ratio", "size", group_x=pcol, targets=targets, levels=levels, **kw)
        a.r_power = threshold_power_law(a.r_thresholds, n_boot=n_boot, seed=seed)
        a.width_power = width_power_law(a.r_thresholds, n_boot, seed)
    mm = _with_min_points(mix, pcol, "ratio")
    if mm.empty:
        a.missing["M"] = "no ratio has final mixture runs at >= 3 model sizes"
    else:
        a.m_thresholds = fit_thresholds(mm, pcol, "ratio", targets=targets, **kw)
        a.m_power = threshold_power_law(a.m_thresholds, n_boot=n_boot, seed=seed)


def width_power_law(tset: ThresholdSet, n_boot: int, seed: int) -> PowerLawFit:
    """Finite-size scaling: the sigmoid width w of each size (log-x units) as a power law of M, over the sizes whose
    width the data resolve (>= 2 sampled x on the 10%->90% rise: with fewer, w is set by the grid, not the data)."""
    t = tset.table
    ok = t[t["ok"] & (t["points_on_rise"] >= 2) & ~(t["gof_p"] < MIN_FIT_P)]
    rng = np.random.default_rng(seed)
    draws = np.column_stack([rng.choice(tset.fits[key].boot[:, 1], n_boot) for key in ok[tset.by]]) if len(ok) else None
    return fit_power_law(ok["M"], ok["w"], y_boot=draws, n_boot=n_boot, seed=seed, x_name="M", y_name="width w")


def _fit_control(a: Analysis, final: pd.DataFrame, n_boot: int, seed: int) -> None:
    """The knowledge-only (r = 1) control: accuracy vs M, its jump test, and the mixtures' rise in M against it."""
    pcol = a.param_col
    know = final[final["ratio"] == 1.0]
    if know[pcol].nunique() < 3:
        a.missing["control"] = f"knowledge-only (ratio = 1) final runs at {know[pcol].nunique()} sizes; need >= 3"
        return
    curve = Curve.from_frame(know, pcol)
    a.control_fit = fit_sigmoid(curve, n_boot=n_boot, level=a.level, seed=seed)
    a.control_jump = jump_test(curve, dispersion=a.control_fit.dispersion.phi, seed=seed)
    if a.m_thresholds is not None and a.control_fit.ok:
        a.control_ratio = _rise_against_control(a.m_thresholds, a.control_fit, a.level, seed)


def _rise_against_control(tset: ThresholdSet, control: SigmoidFit, level: float, seed: int) -> pd.DataFrame:
    """Per ratio: the 10%->90% rise factor in M of the mixture over that of the r = 1 control, with a CI from
    independent draws of the two fits' widths (< 1: the mixture rises more sharply in M)."""
    rng = np.random.default_rng(seed)
    rows = []
    for key, fit in tset.fits.items():
        if not fit.ok:
            continue
        n = min(len(fit.boot), len(control.boot))
        w_mix, w_ctl = rng.choice(fit.boot[:, 1], n), rng.choice(control.boot[:, 1], n)
        ratio_b = np.exp(2 * np.log(9.0) * (w_mix - w_ctl))
        lo, hi = percentile_ci(ratio_b, level)
        point = fit.span_factor / control.span_factor
        rows.append({"ratio": key, "rise_mix": fit.span_factor, "rise_control": control.span_factor,
                     "rise_over_control": point, "lo": lo, "hi": hi})  # fmt: skip
    return pd.DataFrame(rows)


def _fit_theory_inputs(
    a: Analysis, final: pd.DataFrame, mix: pd.DataFrame, bits_per_param, person_bits, n_boot: int, seed: int
) -> None:
    """What the theory is made of: the web-loss law (r = 0 runs), the capacity c, H_tot and p.

    N is the mixtures' (the knowledge-only runs' in a table of calibration runs alone); the tokens per biography
    are measured on the knowledge-only runs where there are any, so that a prediction from the calibration runs
    alone (experiments/demo.py, before the mixtures) is the one this analysis makes after them."""
    pcol = a.param_col
    web = final[(final["ratio"] == 0.0) & final["web_loss"].notna()]
    a.web = fit_web_loss(web[pcol], web["web_loss"], n_boot=n_boot, seed=seed, level=a.level)
    if not a.web.ok:
        a.missing["web"] = f"web-only (ratio = 0) runs: {a.web.reason}"
    knowledge_only = final[final["ratio"] == 1.0]
    people = mix if len(mix) else knowledge_only
    num_people = float(people["num_people"].median()) if people["num_people"].notna().any() else math.nan
    a.total_bits = num_people * (person_bits or bits_per_person(PAPER_POOLS))
    if bits_per_param is not None:
        a.capacity = given_capacity(bits_per_param)
    elif math.isfinite(a.total_bits):
        a.capacity = measure_capacity(final, pcol, total_bits=a.total_bits, n_boot=n_boot, seed=seed, level=a.level)
    else:
        a.capacity = CapacityEstimate(False, "num_people is missing, so the knowledge set's size is unknown")
    try:
        a.tokens_per_bio = measured_tokens_per_bio(knowledge_only if len(knowledge_only) else mix)
        a.p = fact_value(num_people, a.tokens_per_bio)
    except (KeyError, ValueError) as e:
        a.missing["p"] = f"per-token value of a fact: {e}"


def theory_missing(a: Analysis) -> str:
    """Why the theory cannot predict from this analysis ("" when it can)."""
    reasons = (a.missing.get("web"), a.capacity.reason if not a.capacity.ok else "", a.missing.get("p"))
    return "; ".join(m for m in reasons if m)


def theory_predictions(
    a: Analysis, sizes, ratios, *, n_boot: int = 1000, seed: int = 0
) -> tuple[TheoryPrediction, TheoryPrediction | None]:
    """The theory's r* at `sizes` (in a.param_col units) and M* at `ratios` (None without ratios), from the
    analysis's web-loss law, capacity and p; ValueError with theory_missing(a) when it has none."""
    if theory_missing(a):
        raise ValueError(f"the theory cannot predict: {theory_missing(a)}")
    kw = dict(n_boot=n_boot, seed=seed, level=a.level)
    r = predict("ratio", np.asarray(sizes, float), a.web, a.capacity, a.p, a.total_bits, **kw)
    m = predict("size", np.asarray(ratios, float), a.web, a.capacity, a.p, a.total_bits, **kw) if len(ratios) else None
    return r, m


def _predict_thresholds(a: Analysis, n_boot: int, seed: int) -> None:
    """The theory's r* (and M*) at the observed sizes (ratios), compared with the fitted thresholds."""
    missing = "; ".join(m for m in (theory_missing(a), a.missing.get("r")) if m)
    if missing:
        a.missing["theory"] = missing
        return
    ratios = a.m_thresholds.table["M"].to_numpy(float) if a.m_thresholds is not None else []
    a.theory_r, theory_m = theory_predictions(a, a.r_thresholds.table["M"], ratios, n_boot=n_boot, seed=seed)
    a.theory_cmp = compare(a.r_thresholds, a.theory_r, seed=seed)
    if theory_m is not None:
        a.theory_m_cmp = compare(a.m_thresholds, theory_m, seed=seed)


def _fit_tokens_to_target(a: Analysis, main: pd.DataFrame, targets) -> None:
    """Tokens each mixture run needs to reach the first target (censored where it does not), and both growth laws
    in 1/r per size."""
    mix_all = main[(main["ratio"] > 0) & (main["ratio"] < 1)]
    if targets and len(mix_all) and mix_all.groupby("run_id")["step"].nunique().max() >= 2:
        a.tokens = tokens_to_target(mix_all, targets[0])
        a.growth = growth_by_size(a.tokens, level=a.level)


def verdicts(a: Analysis) -> list[Verdict]:
    """One plain-language verdict per claim of the paper, computed from the analysis."""
    feeds = ""
    if a.r_thresholds is not None and len(a.r_thresholds.table):
        kinds = sorted(set(a.r_thresholds.table["level_kind"].dropna()))
        feeds = f"; thresholds at {' / '.join(kinds)}"
    r_claim = "There is a phase transition (a jump) in the mixing ratio r"
    m_claim = "At fixed r there is a phase transition (a jump) in model size M"
    return [
        _verdict_transition(a.r_thresholds, r_claim, a.missing.get("r")),
        _verdict_falls(a.r_power, "r* falls with model size M", a.missing.get("r"), feeds),
        _verdict_transition(a.m_thresholds, m_claim, a.missing.get("M")),
        _verdict_falls(a.m_power, "The critical size M* falls as r grows", a.missing.get("M")),
        _verdict_sharpens(a),
        _verdict_exposures(a.exposure_pairs),
        _verdict_control(a),
        _verdict_sharper_than_control(a),
        _verdict_theory(a),
        _verdict_growth(a),
        _verdict_frequency(a),
    ]


def _basis(tset: ThresholdSet) -> str:
    """What a threshold verdict rests on: groups, points, seeds, and each fit's unit of resampling."""
    parts = []
    for _, r in tset.table.iterrows():
        seeds = len(np.unique(tset.curves[r[tset.by]].seed))
        unit = f", resampling {r['unit']}" if r["ok"] else ""
        parts.append(f"{tset.by} {r[tset.by]}: {r['n_points']} {tset.x} values, {seeds} seed(s){unit}")
    return "; ".join(parts)


def _jump_part(key, by: str, fit: SigmoidFit, jump: JumpTest, gof_p: float) -> str:
    head = f"{by} {key}: "
    if not fit.ok:
        return head + f"no sigmoid ({fit.reason}); {jump.describe()}"
    text = head + f"{fit.x_name}* = {fit.x_star:.3g} {format_ci(*fit.ci['x_star'])}, {steepness(fit, jump.bound)}"
    if np.isfinite(gof_p) and gof_p < LEVEL:
        text += f"; the sigmoid does not fit (goodness of fit p = {gof_p:.2g})"
    return text + f"; {jump.describe()}"


def _verdict_transition(tset: ThresholdSet | None, claim: str, missing: str | None) -> Verdict:
    """Jump test per group, Bonferroni over the groups tested: supported if one rejects; else not supported when
    every tested group's rise is smoother than the bound (CI), inconclusive when a steeper rise is not excluded."""
    if tset is None:
        return Verdict(claim, "not testable", f"not testable: {missing}")
    parts = [
        _jump_part(r[tset.by], tset.by, tset.fits[r[tset.by]], tset.jumps[r[tset.by]], r["gof_p"])
        for _, r in tset.table.iterrows()
    ]
    basis = _basis(tset)
    tested = [k for k, j in tset.jumps.items() if j.tested]
    if not tested:
        why = f"no {tset.by} has the {MIN_POINTS} distinct {tset.x} values a jump test needs (4 parameters + 2)"
        return Verdict(claim, "not testable", f"not testable: {why}. " + "; ".join(parts), basis)
    alpha = LEVEL / len(tested)
    jumps = [k for k in tested if tset.jumps[k].p_value <= alpha]
    what = (
        f"jump test (a change point against smooth curves no steeper than a 10%->90% rise factor of "
        f"x{tset.jumps[tested[0]].bound:.2f}, that of acc ∝ {tset.x}^4, fixed before the data: the steepest smooth "
        f"curve of the calibration, whose false-positive rate is measured) at level {LEVEL:g}, Bonferroni over "
        f"{len(tested)} {tset.by} value(s)"
    )
    if jumps:
        status, head = "supported", f"a jump at {tset.by} {', '.join(map(str, jumps))} by the {what}"
    else:
        steep = [k for k in tested if tset.fits[k].ok and tset.fits[k].ci["span_factor"][0] < tset.jumps[k].bound]
        if steep:
            status = "inconclusive"
            head = (
                f"the {what} does not reject, but the rise at {tset.by} {', '.join(map(str, steep))} may be "
                "steeper than the bound (its CI reaches below it): more points on the rise would decide"
            )
        else:
            status, head = "not supported", f"no jump: the {what} does not reject, and every rise is smoother"
    return Verdict(claim, status, f"{status}: {head}. " + "; ".join(parts), basis)


def _verdict_falls(pl: PowerLawFit | None, claim: str, missing: str | None, feeds: str = "") -> Verdict:
    """A power law's exponent k < 0: a verdict with >= 4 points, the direction only with 3, nothing with 2."""
    if pl is None:
        return Verdict(claim, "not testable", f"not testable: {missing}")
    if not pl.ok:
        return Verdict(claim, "not testable", f"not testable: {pl.reason}")
    lo, hi = pl.ci["k"]
    desc = (
        f"{pl.y_name} ∝ {pl.x_name}^k with k = {pl.k:.3g} {format_ci(lo, hi)} over {pl.n_points} points "
        f"(bootstrap: {pl.method}){feeds}"
    )
    basis = f"{pl.n_points} values of {pl.x_name}, each point's bootstrap draws propagated"
    if pl.n_points < MIN_POWER_LAW_SIZES - 1:
        text = f"not testable: {desc}; a power law needs >= {MIN_POWER_LAW_SIZES} points (3 give its direction)"
        return Verdict(claim, "not testable", text, basis)
    if pl.n_points < MIN_POWER_LAW_SIZES:
        direction = "falls" if hi < 0 else "rises" if lo > 0 else "has no clear direction"
        return Verdict(claim, "inconclusive", f"inconclusive (direction only, 3 points): it {direction}; {desc}", basis)
    if hi < 0:
        return Verdict(claim, "supported", f"supported: {desc}; the whole CI is below 0", basis)
    if lo > 0:
        return Verdict(claim, "contradicted", f"contradicted: {desc}; it rises, the whole CI is above 0", basis)
    return Verdict(claim, "not supported", f"not supported: {desc}; the CI includes 0", basis)


def _verdict_sharpens(a: Analysis) -> Verdict:
    claim = "The transition in r sharpens with scale (its width w falls with M)"
    if a.width_power is None:
        return Verdict(claim, "not testable", f"not testable: {a.missing.get('r')}")
    t = a.r_thresholds.table
    resolved = list(t.loc[t["ok"] & (t["points_on_rise"] >= 2), "size"])
    if len(resolved) < MIN_POWER_LAW_SIZES - 1:
        return Verdict(claim, "not testable", f"not testable: the data resolve the width of {len(resolved)} size(s) "
                       f"({', '.join(map(str, resolved)) or 'none'}: >= 2 sampled ratios on the 10%->90% rise); a "
                       f"width law needs >= {MIN_POWER_LAW_SIZES}")  # fmt: skip
    v = _verdict_falls(a.width_power, claim, None)
    v.basis += "; only sizes with >= 2 sampled ratios on their 10%->90% rise"
    v.text = v.text.replace("not supported:", "not supported (does not sharpen):", 1)
    return v


def _verdict_exposures(pairs: pd.DataFrame | None) -> Verdict:
    claim = "At equal exposures, a low ratio stays low while a high ratio learns (exposures alone do not decide)"
    if pairs is None or pairs.empty:
        return Verdict(
            claim,
            "not testable",
            "not testable: no two final runs of one size at different ratios with "
            "equal exposures (same `budget`/`train.exposures`, or `exposures` within 10%)",
        )
    parts = [
        f"size {r['size']}, {r['match']}: r={r['ratio_low']:g} ({r['tokens_low']:.3g} tokens) -> acc "
        f"{r['acc_low']:.3f}, r={r['ratio_high']:g} ({r['tokens_high']:.3g} tokens) -> acc {r['acc_high']:.3f} "
        f"(difference {r['diff']:+.3f} ± {r['se']:.3f}, {r['se_kind']} SE, z = {r['z']:.1f})"
        for _, r in pairs.iterrows()
    ]
    text = "; ".join(parts) + "; the runs of a pair differ in length: the low-ratio run trains longer to match"
    basis = f"{len(pairs)} matched pair(s) of final runs"
    decisive = (pairs["diff"] >= 0.1) & (pairs["z"] >= 3)
    if decisive.any():
        return Verdict(claim, "supported", f"supported in {int(decisive.sum())} of {len(pairs)} matches: {text}", basis)
    if (pairs["z"].abs() < 2).all():
        return Verdict(claim, "contradicted", f"contradicted: equal exposures give equal accuracy: {text}", basis)
    return Verdict(claim, "inconclusive", f"inconclusive: {text}", basis)


def _verdict_control(a: Analysis) -> Verdict:
    claim = "Knowledge-only training (r = 1) improves smoothly with size (no jump)"
    if a.control_fit is None:
        return Verdict(claim, "not testable", f"not testable: {a.missing.get('control')}")
    fit, jump = a.control_fit, a.control_jump
    basis = f"{jump.n_points} sizes at r = 1; resampling {fit.unit or 'none'}"
    if not fit.ok:
        return Verdict(claim, "not testable", f"not testable: the accuracy-vs-size fit failed ({fit.reason})", basis)
    desc = f"{steepness(fit, jump.bound)}; {jump.describe()}"
    if not jump.tested:
        return Verdict(claim, "inconclusive", f"inconclusive: {desc}", basis)
    if jump.rejects:
        return Verdict(claim, "contradicted", f"contradicted: it jumps: {desc}", basis)
    return Verdict(claim, "supported", f"supported: no jump: {desc}", basis)


def _verdict_sharper_than_control(a: Analysis) -> Verdict:
    claim = "At fixed r, accuracy rises more sharply in M than the knowledge-only control does"
    cr = a.control_ratio
    if cr is None or cr.empty:
        missing = a.missing.get("control") or a.missing.get("M") or "no fitted rise in M at both r < 1 and r = 1"
        return Verdict(claim, "not testable", f"not testable: {missing}")
    parts = [
        f"r = {r['ratio']:g}: rise x{r['rise_mix']:.2f} vs the control's x{r['rise_control']:.2f}, ratio "
        f"{r['rise_over_control']:.2f} {format_ci(r['lo'], r['hi'], '.2f')}"
        for _, r in cr.iterrows()
    ]
    text = "; ".join(parts)
    basis = f"{len(cr)} ratio(s) against the r = 1 curve; independent draws of the two fits' widths"
    if (cr["hi"] < 1).any():
        return Verdict(claim, "supported", f"supported at {int((cr['hi'] < 1).sum())} ratio(s): {text}", basis)
    if (cr["lo"] > 1).all():
        return Verdict(claim, "contradicted", f"contradicted: every mixture rises more slowly: {text}", basis)
    return Verdict(claim, "inconclusive", f"inconclusive: the CIs include equal sharpness: {text}", basis)


def _verdict_theory(a: Analysis) -> Verdict:
    claim = "The capacity-allocation theory predicts r*(M) from web-only and knowledge-only runs"
    if a.theory_cmp is None:
        return Verdict(claim, "not testable", f"not testable: {a.missing.get('theory')}")
    cmp = a.theory_cmp.dropna(subset=["obs_pred"])
    if cmp.empty:
        return Verdict(claim, "not testable", "not testable: no size has both an observed and a predicted r*")
    inside = ((cmp["obs_pred_lo"] <= 1) & (cmp["obs_pred_hi"] >= 1)).sum()
    med = float(np.median(cmp["obs_pred"]))
    sign = "above" if med > 1 else "below"
    parts = [
        f"{r['size']}: observed/predicted = {r['obs_pred']:.2f} {format_ci(r['obs_pred_lo'], r['obs_pred_hi'], '.2f')}"
        for _, r in cmp.iterrows()
    ]
    exp_txt = ""
    if a.r_power is not None and a.r_power.ok:
        t = a.theory_r
        exp_txt = (
            f"; exponent observed {a.r_power.k:.2f} {format_ci(*a.r_power.ci['k'], '.2f')} vs predicted over the same "
            f"sizes {t.local_exponent:.2f} {format_ci(*t.local_exponent_ci, '.2f')} (asymptotically -(alpha+1) = "
            f"{t.exponent:.2f} {format_ci(*t.exponent_ci, '.2f')})"
        )
    cap = " (c is only a lower bound)" if a.capacity.lower_bound else ""
    head = (
        f"{inside} of {len(cmp)} sizes agree within the CI; observed r* is {sign} the prediction by a median "
        f"factor {med:.2f}{cap}"
    )
    status = "supported" if inside == len(cmp) else ("inconclusive" if inside else "not supported")
    return Verdict(claim, status, f"{status}: {head}: " + "; ".join(parts) + exp_txt)


def _verdict_growth(a: Analysis) -> Verdict:
    """Per size, the censored fits of log T against 1/r and log(1/r) (analysis/growth.py): supported where the
    exponential is preferred (dAIC <= -2) and rises, at no size the power law; "not supported" the reverse."""
    claim = "Tokens to reach the target accuracy grow exponentially (or faster) in 1/r"
    if a.tokens is None:
        return Verdict(claim, "not testable", "not testable: runs need >= 2 evaluations along training")
    never = a.tokens[a.tokens["censoring"] == "right"]
    cens_txt = (
        f"; {len(never)} run(s) never reached it (right-censored at their last evaluation; lowest such r = "
        f"{never['ratio'].min():g})"
        if len(never)
        else ""
    )
    usable = {s: g for s, g in a.growth.items() if g.ok}
    if not usable:
        why = "; ".join(f"size {s}: {g.reason}" for s, g in a.growth.items()) or "no mixture run was evaluated"
        return Verdict(claim, "not testable", f"not testable: {why}{cens_txt}")
    text = "; ".join(f"size {s}: {g.describe()}" for s, g in usable.items()) + cens_txt
    basis = (
        f"{len(usable)} size(s), {sum(g.n_runs for g in usable.values())} runs; Tobit likelihood in log tokens "
        "(censored runs as survival terms), profile-likelihood CIs"
    )
    exp_rises = [s for s, g in usable.items() if g.preferred == "exponential" and g.laws["exponential"].b_ci[0] > 0]
    power = [s for s, g in usable.items() if g.preferred == "power law"]
    falls = [s for s, g in usable.items() if all(law.b_ci[1] < 0 for law in g.laws.values())]
    if falls and len(falls) == len(usable):
        return Verdict(claim, "contradicted", f"contradicted: tokens to target fall as r falls: {text}", basis)
    if exp_rises and not power:
        return Verdict(claim, "supported", f"supported: {text}", basis)
    if power and not exp_rises:
        head = "not supported (a power law in 1/r, slower than exponential, fits better)"
        return Verdict(claim, "not supported", f"{head}: {text}", basis)
    return Verdict(claim, "inconclusive", f"inconclusive: {text}", basis)


def _verdict_frequency(a: Analysis) -> Verdict:
    """f* ∝ M^k: the falls rule of `_verdict_falls`; with >= 4 sizes, also k against -(alpha+1)."""
    claim = "The threshold frequency f* falls with M as M^-(alpha+1)"
    fs = a.frequency
    if fs is None:
        why = (
            "no power-law runs (per-group columns n_eval_group_<k>, data.power_law_groups > 0) in this table; the"
            " sweep experiments/configs/findings.py:frequency (python -m experiments.findings) trains them"
        )
        return Verdict(claim, "not testable", f"not testable: {why}")
    if fs.power is None:
        return Verdict(claim, "not testable", f"not testable: {fs.reason}")
    feeds = f"; f* at {fs.level_kind}, frequency in {UNITS[fs.unit]}, r = {fs.ratio:g}"
    v = _verdict_falls(fs.power, claim, None, feeds)
    if fs.thresholds is not None:
        v.basis = "; ".join(filter(None, [v.basis, _basis(fs.thresholds), *fs.notes]))
    th = fs.theory
    if not th.ok:
        theory = f"-(alpha+1) not available ({th.reason})"
    else:
        theory = (
            f"exponent minus the theory's -(alpha+1) = {th.predicted:.2f} {format_ci(*th.predicted_ci, '.2f')}: "
            f"{th.diff:+.2f} {format_ci(*th.diff_ci, '.2f')} ({th.alpha_source})"
        )
    if v.status != "supported":
        return Verdict(claim, v.status, f"{v.text}; {theory}", v.basis)
    if not th.ok:
        return Verdict(claim, "inconclusive", f"inconclusive: it falls, but {theory}; {v.text}", v.basis)
    if th.diff_ci[0] <= 0 <= th.diff_ci[1]:
        return Verdict(claim, "supported", f"{v.text}; {theory}, the CI includes 0", v.basis)
    how = "more steeply" if th.diff_ci[1] < 0 else "less steeply"
    text = f"not supported: f* falls, {how} than M^-(alpha+1): {theory}; {v.text}"
    return Verdict(claim, "not supported", text, v.basis)

"""Predict a threshold before the run: r* for a model size and N people (or M* at a ratio), and the accuracy
expected at a ratio, each by two routes with a bootstrap CI.

    python -m analysis.predict --results=runs/results.csv --size=70M --people=30000 [--ratio=0.2]

- empirical: the power law r* = C M^k of the thresholds fitted to the mixture runs (analysis.thresholds,
  analysis.scaling.threshold_power_law), one per N in the table; where N varies, the predictions at the table's N
  take a power law in N (analysis.scaling.fit_power_law). M* at a ratio inverts the law. The accuracy at a ratio is
  the sigmoid with that r* and the shape (w, lo, hi) interpolated in log M between the fitted sizes (held
  constant beyond them).
- theory: the capacity-allocation model of analysis/theory.py, from the web-loss law of the web-only (r = 0) runs
  and the capacity c of the knowledge-only (r = 1) runs; its accuracy is the stored fraction (assumption 5 there).

CIs carry the fits' bootstrap draws. A size (or N, or predicted M*) more than `max_extrapolation` times beyond the
range a route was fitted on is flagged. The CLI exits with status 2 when the table cannot support a route, after
printing the other one.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.fitting import percentile_ci
from analysis.io import final_rows, ingest_external, load_results, param_column, parse_count, size_label
from analysis.scaling import PowerLawFit, fit_power_law, fit_web_loss, threshold_power_law
from analysis.theory import (
    PAPER_POOLS,
    fact_value,
    given_capacity,
    measure_capacity,
    measured_tokens_per_bio,
    param_draws,
    predict,
    predicted_fraction,
)
from analysis.thresholds import ThresholdSet, fit_thresholds, format_ci, sigmoid_curve
from analysis.verdicts import main_budget
from data_gen.synbio_fields import bits_per_person

MIN_SIZES = 3  # fitted thresholds the empirical power law needs


@dataclass(frozen=True)
class Interval:
    """A predicted value and its bootstrap CI."""

    value: float
    lo: float
    hi: float

    @classmethod
    def from_draws(cls, value, draws: np.ndarray, level: float) -> Interval:
        lo, hi = percentile_ci(np.asarray(draws, float), level)
        return cls(float(value), float(lo), float(hi))

    def __str__(self) -> str:
        return f"{self.value:.4g} {format_ci(self.lo, self.hi, '.4g')}"


@dataclass(frozen=True)
class Extrapolation:
    """How far `value` of `what` lies beyond the range [lo, hi] a route was fitted on (factor 1 inside it)."""

    what: str
    value: float
    lo: float
    hi: float

    @property
    def factor(self) -> float:
        if not all(np.isfinite(v) and v > 0 for v in (self.value, self.lo, self.hi)):
            return float("nan")
        return float(max(self.value / self.hi, self.lo / self.value, 1.0))


@dataclass
class RoutePrediction:
    """One route's predictions. ok is False, with the reason, when the table cannot support the route."""

    route: str
    ok: bool
    reason: str = ""
    basis: str = ""
    r_star: Interval | None = None
    m_star: Interval | None = None
    accuracy: Interval | None = None
    extrapolation: list[Extrapolation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Prediction:
    """Both routes' predictions for one size (`size` in `param_col` units), N = `people` and, optionally, a ratio."""

    size: float
    label: str
    people: float
    ratio: float | None
    param_col: str
    level: float
    max_extrapolation: float
    empirical: RoutePrediction
    theory: RoutePrediction

    @property
    def routes(self) -> tuple[RoutePrediction, RoutePrediction]:
        return self.empirical, self.theory

    @property
    def flags(self) -> list[str]:
        """One line per quantity extrapolated by more than max_extrapolation."""
        return [
            f"extrapolated ({r.route}): {e.what} = {e.value:.4g} is x{e.factor:.3g} beyond the fitted range "
            f"{format_ci(e.lo, e.hi, '.4g')} (limit x{self.max_extrapolation:g})"
            for r in self.routes
            if r.ok
            for e in r.extrapolation
            if e.factor > self.max_extrapolation
        ]

    @property
    def refusals(self) -> list[str]:
        """One line per route the table cannot support."""
        return [f"{r.route} route refused: {r.reason}" for r in self.routes if not r.ok]


def resolve_size(df: pd.DataFrame, size: str | float) -> tuple[float, str]:
    """(M in the table's parameter column, label) of a size label of the table or a count such as '70M', 1.2e6."""
    if isinstance(size, str) and size in set(df["size"].astype(str)):
        return float(df.loc[df["size"].astype(str) == size, param_column(df)].median()), size
    m = parse_count(size)
    if not m > 0:
        raise ValueError(f"size must be > 0, got {size!r}")
    return m, size_label(m)


def _range(values) -> tuple[float, float]:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return (float(v.min()), float(v.max())) if len(v) else (np.nan, np.nan)


def _finite_choice(draws: np.ndarray, n: int, rng) -> np.ndarray:
    finite = draws[np.isfinite(draws)]
    return rng.choice(finite, n) if len(finite) else np.full(n, np.nan)


def _r_star_at(law: PowerLawFit, size: float) -> tuple[float, np.ndarray]:
    return float(law.predict(size)), law.boot[:, 0] * size ** law.boot[:, 1]


def _m_star_at(law: PowerLawFit, ratio: float) -> tuple[float, np.ndarray]:
    """Size where the law reaches r* = ratio; NaN for a draw whose r* does not fall with M."""
    c, k = law.boot[:, 0], law.boot[:, 1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        draws = np.where(k < 0, (ratio / c) ** (1.0 / k), np.nan)
        point = (ratio / law.C) ** (1.0 / law.k) if law.k < 0 else np.nan
    return float(point), draws


def _laws_by_people(mix: pd.DataFrame, param_col: str, n_boot: int, seed: int, level: float):
    """{N: (thresholds, power law)} for every N whose runs give r* at >= MIN_SIZES sizes, and a reason if none."""
    known = "num_people" in mix.columns and mix["num_people"].notna().all()
    groups = mix.groupby("num_people") if known else [(np.nan, mix)]
    laws, counts = {}, []
    for people, g in groups:
        kw = dict(n_boot=n_boot, seed=seed, level=level)
        tset = fit_thresholds(main_budget(g), "ratio", "size", group_x=param_col, targets=(), jump_draws=0, **kw)
        ok = tset.table[tset.table["ok"]]
        counts.append(f"{len(ok)} at N = {people:g}" if known else f"{len(ok)}")
        if len(ok) >= MIN_SIZES:
            law = threshold_power_law(tset, n_boot=n_boot, seed=seed)
            if law.ok:
                laws[float(people)] = (tset, law)
    reason = "" if laws else f"fewer than {MIN_SIZES} model sizes with a fitted threshold r* ({', '.join(counts)})"
    return laws, reason


def _across_people(laws: dict, at, people: float, name: str, n_boot: int, seed: int) -> tuple[float, np.ndarray]:
    """(point, draws) of at(law) -> (point, draws) at N = people: the one law's when the table has one N, else from
    a power law in N through the values at the table's N (their draws propagated)."""
    at = {n: at(law) for n, (_, law) in laws.items()}
    if len(at) == 1:
        return next(iter(at.values()))
    ns = np.array(sorted(at))
    rng = np.random.default_rng(seed)
    points = np.array([at[n][0] for n in ns])
    draws = np.column_stack([_finite_choice(at[n][1], n_boot, rng) for n in ns])
    law = fit_power_law(ns, points, y_boot=draws, n_boot=n_boot, seed=seed, x_name="N", y_name=name)
    if not law.ok:
        return np.nan, np.full(n_boot, np.nan)
    return float(law.predict(people)), law.boot[:, 0] * people ** law.boot[:, 1]


def _shape_at(tset: ThresholdSet, size: float, n_boot: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Sigmoid shape (log w, lo, hi) at `size`: point (3,) and draws (n_boot, 3), linear in log M between the
    fitted sizes (constant beyond them), each fit's bootstrap rows drawn independently."""
    t = tset.table[tset.table["ok"]]
    fits = [tset.fits[key] for key in t[tset.by]]
    lms = np.log(t["M"].to_numpy(float))
    weights = np.array([np.interp(np.log(size), lms, e) for e in np.eye(len(lms))])
    points = np.array([[np.log(f.w), f.lo, f.hi] for f in fits])
    rows = [f.boot[rng.integers(0, len(f.boot), n_boot)] for f in fits]
    draws_BxSx3 = np.stack([np.column_stack([np.log(b[:, 1]), b[:, 2], b[:, 3]]) for b in rows], axis=1)
    return weights @ points, np.einsum("s,bsk->bk", weights, draws_BxSx3)


def empirical_route(
    final: pd.DataFrame,
    param_col: str,
    size: float,
    people: float,
    ratio: float | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> RoutePrediction:
    """r* at (size, people), and with a ratio M* and the expected accuracy, from the mixture runs' power law."""
    mix = final[(final["ratio"] > 0) & (final["ratio"] < 1)]
    if mix.empty:
        return RoutePrediction("empirical", False, "no final mixture runs (0 < ratio < 1)")
    laws, reason = _laws_by_people(mix, param_col, n_boot, seed, level)
    if not laws:
        return RoutePrediction("empirical", False, reason)
    warned = [f"power law: {w}" for _, law in laws.values() for w in law.warnings]
    out = RoutePrediction("empirical", True, notes=warned)
    sizes = np.concatenate([t.table.loc[t.table["ok"], "M"].to_numpy(float) for t, _ in laws.values()])
    size_range = _range(sizes)
    out.basis = "; ".join(
        f"r* = C M^k over {law.n_points} sizes {format_ci(*_range(t.table.loc[t.table['ok'], 'M']), '.3g')}"
        + (f" at N = {n:g}" if np.isfinite(n) else "")
        + f": k = {law.k:.3g} {format_ci(*law.ci['k'])}"
        for n, (t, law) in laws.items()
    )
    r_point, r_draws = _across_people(laws, lambda law: _r_star_at(law, size), people, "r*", n_boot, seed)
    out.r_star = Interval.from_draws(r_point, r_draws, level)
    out.extrapolation.append(Extrapolation("size", size, *size_range))
    known = [n for n in laws if np.isfinite(n)]
    if known:
        out.extrapolation.append(Extrapolation("N", people, *_range(known)))
        if len(known) == 1 and people != known[0]:
            out.notes.append(f"N does not vary in the fitted runs: the empirical law is that of N = {known[0]:g}")
    else:
        out.notes.append("the table has no num_people: the empirical law ignores N")
    if ratio is None:
        return out
    m_point, m_draws = _across_people(laws, lambda law: _m_star_at(law, ratio), people, "M*", n_boot, seed)
    out.m_star = Interval.from_draws(m_point, m_draws, level)
    if not np.isfinite(m_point):
        out.notes.append(f"no M* at r = {ratio:g}: the fitted r* does not fall with M")
    out.extrapolation.append(Extrapolation("M*", m_point, *size_range))
    nearest = min(laws, key=lambda n: abs(np.log(n / people)))  # the one key NaN when N is unknown
    rng = np.random.default_rng(seed)
    shape, s_b = _shape_at(laws[nearest][0], size, n_boot, rng)
    acc_b = sigmoid_curve(ratio, _finite_choice(r_draws, n_boot, rng), np.exp(s_b[:, 0]), s_b[:, 1], s_b[:, 2])
    acc = sigmoid_curve(ratio, r_point, np.exp(shape[0]), shape[1], shape[2])
    out.accuracy = Interval.from_draws(acc, acc_b, level)
    return out


def theory_route(
    final: pd.DataFrame,
    param_col: str,
    size: float,
    people: float,
    ratio: float | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    bits_per_param: float | None = None,
    person_bits: float | None = None,
) -> RoutePrediction:
    """r* at (size, people), and with a ratio M* and the stored fraction, from the r = 0 and r = 1 runs only.

    The capacity c is measured against the table's knowledge set (its N); the prediction uses N = people for the
    value of a fact p and the set's size H_tot = people x bits per person (default: the paper's pools).
    """
    kw = dict(n_boot=n_boot, seed=seed, level=level)
    web_rows = final[(final["ratio"] == 0.0) & final["web_loss"].notna()]
    n_web = web_rows[param_col].nunique()
    if n_web < 3:
        return RoutePrediction("theory", False, f"no web-only (r = 0) final runs with web_loss at >= 3 sizes ({n_web})")
    web = fit_web_loss(web_rows[param_col], web_rows["web_loss"], **kw)
    if not web.ok:
        return RoutePrediction("theory", False, f"web-loss law of the r = 0 runs: {web.reason}")
    knowledge = final[final["ratio"] > 0]
    table_people = knowledge["num_people"].dropna() if "num_people" in knowledge.columns else pd.Series(dtype=float)
    person_bits = person_bits or bits_per_person(PAPER_POOLS)
    if bits_per_param is not None:
        capacity = given_capacity(bits_per_param)
    else:
        table_bits = float(table_people.median()) * person_bits if len(table_people) else None
        capacity = measure_capacity(final, param_col, total_bits=table_bits, **kw)
    if not capacity.ok:
        return RoutePrediction("theory", False, f"no usable knowledge-only (r = 1) runs: {capacity.reason}")
    try:
        tokens_per_bio = measured_tokens_per_bio(knowledge)
    except (KeyError, ValueError) as e:
        return RoutePrediction("theory", False, f"tokens per biography: {e}")
    p, total_bits = fact_value(people, tokens_per_bio), people * person_bits
    out = RoutePrediction("theory", True, notes=[f"web-loss law: {w}" for w in web.warnings])
    web_range = _range(web_rows[param_col])
    out.basis = (
        f"web loss E + A (M/{web.scale:g})^-alpha over {n_web} r = 0 sizes {format_ci(*web_range, '.3g')}: "
        f"alpha = {web.alpha:.3g} {format_ci(*web.ci['alpha'])}; c = {capacity.c:.3g} {format_ci(*capacity.ci)} "
        f"bits/param ({capacity.source}); {tokens_per_bio:.3g} tokens per biography"
    )
    if capacity.lower_bound:
        out.notes.append("every r = 1 run stored (almost) the whole set: c is a lower bound, r* an upper bound")
    if np.max(capacity.boot) * size > 0.5 * total_bits:  # half of the set: predict's default fraction
        r = predict("ratio", [size], web, capacity, p, total_bits, **kw)
        out.r_star = Interval(float(r.predicted[0]), float(r.lo[0]), float(r.hi[0]))
    else:
        out.r_star = Interval(np.nan, np.nan, np.nan)
    if not np.isfinite(out.r_star.value):
        out.notes.append(f"capacity c M = {capacity.c * size:.3g} bits cannot hold half of H_tot = {total_bits:.3g}")
    out.extrapolation.append(Extrapolation("size", size, *web_range))
    if len(table_people):
        out.extrapolation.append(Extrapolation("N", people, *_range(table_people)))
    if ratio is None:
        return out
    m = predict("size", [ratio], web, capacity, p, total_bits, **kw)
    out.m_star = Interval(float(m.predicted[0]), float(m.lo[0]), float(m.hi[0]))
    out.extrapolation.append(Extrapolation("M*", out.m_star.value, *web_range))
    a_b, al_b, c_b = param_draws(web, capacity, n_boot, seed)
    common = dict(p=p, total_bits=total_bits, scale=web.scale)
    frac = predicted_fraction(ratio, size, A=web.A, alpha=web.alpha, c=capacity.c, **common)
    frac_b = predicted_fraction(ratio, size, A=a_b[:, 0], alpha=al_b[:, 0], c=c_b[:, 0], **common)
    out.accuracy = Interval.from_draws(frac, frac_b, level)
    return out


def predict_thresholds(
    df: pd.DataFrame,
    size: str | float,
    people: float,
    ratio: float | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    max_extrapolation: float = 2.0,
    bits_per_param: float | None = None,
    person_bits: float | None = None,
) -> Prediction:
    """Both routes' predictions from a results table (final rows of the main runs; per-group rows are left out)."""
    if not people > 0:
        raise ValueError(f"people must be > 0, got {people}")
    if ratio is not None and not 0 < ratio < 1:
        raise ValueError(f"ratio must lie in (0, 1), got {ratio}")
    param_col = param_column(df)
    m, label = resolve_size(df, size)
    main = df[df["frequency"].isna()] if "frequency" in df.columns else df
    final = final_rows(main)
    kw = dict(n_boot=n_boot, seed=seed, level=level)
    return Prediction(
        m,
        label,
        float(people),
        ratio,
        param_col,
        level,
        max_extrapolation,
        empirical_route(final, param_col, m, people, ratio, **kw),
        theory_route(final, param_col, m, people, ratio, bits_per_param=bits_per_param, person_bits=person_bits, **kw),
    )


def format_prediction(pred: Prediction) -> str:
    """The predictions of every route the table supports, their bases, notes and extrapolation flags, as text."""
    head = f"size {pred.label} ({pred.size:.4g} {pred.param_col}), N = {pred.people:g} people"
    at_ratio = f", ratio r = {pred.ratio:g}" if pred.ratio is not None else ""
    lines = [f"Prediction for {head}{at_ratio} ({pred.level:.0%} bootstrap CIs in brackets)"]
    for r in pred.routes:
        if not r.ok:
            continue
        lines.append(f"{r.route} ({r.basis})")
        lines.append(f"  r* = {r.r_star}")
        if pred.ratio is not None:
            lines.append(f"  M* at r = {pred.ratio:g}: {r.m_star}")
            what = "accuracy" if r.route == "empirical" else "accuracy (= stored fraction)"
            lines.append(f"  {what} at r = {pred.ratio:g}, size {pred.label}: {r.accuracy}")
        lines.append("  extrapolation: " + ", ".join(f"{e.what} x{e.factor:.3g}" for e in r.extrapolation))
        lines += [f"  note: {n}" for n in r.notes]
    return "\n".join(lines + pred.flags)


def main(argv: list[str] | None = None) -> int:
    """Parse flags, predict, print; status 2 when a route is refused."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True, help="results table (.csv or .parquet)")
    parser.add_argument("--size", required=True, help="a size label of the table, or a parameter count (70M, 1.2e6)")
    parser.add_argument("--people", type=float, required=True, help="N, people in the knowledge set")
    parser.add_argument("--ratio", type=float, default=None, help="also predict M* and the accuracy at this r")
    parser.add_argument("--max_extrapolation", type=float, default=2.0, help="flag beyond this factor (default 2)")
    parser.add_argument("--external", action="store_true", help="table from outside mixlab (minimal columns)")
    parser.add_argument("--n_eval", type=int, default=None, help="items per row, for external tables without counts")
    parser.add_argument("--n_boot", type=int, default=1000)
    parser.add_argument("--bits_per_param", type=float, default=None, help="capacity c, if not measured")
    parser.add_argument("--bits_per_person", type=float, default=None, help="default: paper's pools, 46.6")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        df = ingest_external(args.results, n_eval=args.n_eval) if args.external else load_results(args.results)
        pred = predict_thresholds(
            df,
            args.size,
            args.people,
            args.ratio,
            n_boot=args.n_boot,
            seed=args.seed,
            max_extrapolation=args.max_extrapolation,
            bits_per_param=args.bits_per_param,
            person_bits=args.bits_per_person,
        )
    except (OSError, ValueError) as e:  # unreadable table, bad size or ratio
        parser.error(str(e))
    print(format_prediction(pred))
    for line in pred.refusals:
        print(line, file=sys.stderr)
    return 2 if pred.refusals else 0


if __name__ == "__main__":
    sys.exit(main())

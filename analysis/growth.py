"""Tokens to reach a target accuracy along training, and how they grow with 1/r, by a censored likelihood.

Per run (`tokens_to_target`): the run's evaluations, in tokens seen, get an isotonic (non-decreasing) fit of their
counts, so that one noisy evaluation does not decide. The crossing of the target lies between the last evaluation
whose monotone accuracy is below it and the first at or above it (tokens_lo, tokens_hi); inside that bracket T is
interpolated linearly in log tokens, as analysis.thresholds.crossing does. A run that never reaches the target is
right-censored at its last evaluation (T > t_last); one at the target already at its first is left-censored
(T <= t_first). Why interpolate rather than treat bracketed runs as interval-censored: on simulated runs
(analysis.calibration.growth_runs: evaluations a factor of 2 apart, a run-to-run scatter of 0.2 in log T) the
interpolated log T erred by 0.03 (sd). With intervals instead (60 replicates per form) the likelihood's sigma
collapsed (median 0.02-0.05 for the true 0.2: lines through every bracket make each probability ~1), dAIC picked
the true form in 83% (exponential) and 67% (power law) of replicates against 92% and 93% with interpolation (200),
and the slope's interval covered 92% for the power law against 95%. The bracket stays in the table beside T.

Per model size (`fit_growth`): log T = a + b g(r) + sigma z, z ~ N(0, 1), with g(r) = 1/r ("exponential" in 1/r)
or g(r) = log(1/r) ("power law" in 1/r), by maximum likelihood (Tobit): an interpolated run adds the normal
density of its log T, a right-censored run the survival term log P(log T > log t_last), a left-censored run
log P(log T <= log t_first). The slope b's interval is its profile likelihood cut at n log(1 + F(1, n - 2) / (n - 2))
for n runs, the exact cut for the uncensored normal linear model (coverage with censoring:
analysis.calibration.growth_calibration). Which form: dAIC = AIC_exp - AIC_power; both have 3 parameters, so
dAIC = 2 (NLL_exp - NLL_power); |dAIC| < 2 is inconclusive.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import brentq, minimize
from scipy.special import log_ndtr
from scipy.stats import f as f_dist

from analysis.curves import isotonic
from analysis.fitting import single_thread_blas, surface_warnings
from analysis.io import param_column
from analysis.scaling import lbfgsb_multistart
from analysis.thresholds import crossing_BxX

FORMS = {"exponential": lambda r: 1.0 / r, "power law": lambda r: np.log(1.0 / r)}
FEATURE = {"exponential": "1/r", "power law": "log(1/r)"}
CENSORING = ("interval", "right", "left")
CENSORED_AS = {
    "interval": "crossed",
    "right": "never reached (right-censored)",
    "left": "above at the first evaluation",
}
INCONCLUSIVE_AIC = 2.0  # |dAIC| below this: neither form is preferred
LOG_SIGMA_BOUNDS = (np.log(1e-3), np.log(20.0))
LOG_2PI_HALF = 0.5 * float(np.log(2 * np.pi))


def _run_crossing(tokens: np.ndarray, k: np.ndarray, n: np.ndarray, target: float) -> tuple[float, float, float, str]:
    """(tokens_to_target, tokens_lo, tokens_hi, censoring) of one run (evaluations sorted by tokens)."""
    iso = isotonic(k / n, n)[0]
    reached = np.flatnonzero(iso >= target)
    if not len(reached):
        return np.nan, float(tokens[-1]), np.inf, "right"
    j = int(reached[0])
    if j == 0:
        return np.nan, 0.0, float(tokens[0]), "left"
    t = float(crossing_BxX(np.log(tokens), iso[None], target)[0])
    return t, float(tokens[j - 1]), float(tokens[j]), "interval"


def tokens_to_target(df: pd.DataFrame, target: float) -> pd.DataFrame:
    """Per run: the tokens at which accuracy first reaches `target` along training, or its censoring bound.

    Columns: run_id, size, M (the table's parameter count, analysis.io.param_column), ratio, seed, n_evals,
    tokens_to_target (interpolated in the bracket; NaN when censored), tokens_lo and tokens_hi (the bracket: the
    evaluations either side of the crossing), censoring ("interval"; "right": never reached, tokens_lo = the last
    evaluation, tokens_hi = inf; "left": reached at the first evaluation, tokens_lo = 0), tokens_max, target, ok,
    reason.
    Evaluations at tokens <= 0 are left out; a run whose counts are unusable has ok=False and its reason.
    """
    if not 0 < target < 1:
        raise ValueError(f"target must lie in (0, 1), got {target}")
    missing = [c for c in ("run_id", "tokens", "ratio", "size", "n_correct", "n_eval") if c not in df.columns]
    if missing:
        raise KeyError(f"tokens_to_target needs columns {missing}, which the table lacks")
    pcol = param_column(df)
    rows = []
    for run, run_rows in df.groupby("run_id", sort=False):
        first = run_rows.iloc[0]
        row = {
            "run_id": run,
            "size": first["size"],
            "M": float(run_rows[pcol].median()),
            "ratio": float(first["ratio"]),
        }
        row["seed"] = first["seed"] if "seed" in run_rows else 0
        g = run_rows[run_rows["tokens"] > 0].sort_values("tokens")
        k, n = g["n_correct"].to_numpy(float), g["n_eval"].to_numpy(float)
        reason = ""
        if not len(g):
            reason = "no evaluation at tokens > 0"
        elif not (np.isfinite(k).all() and np.isfinite(n).all() and (n > 0).all() and ((k >= 0) & (k <= n)).all()):
            reason = "n_correct and n_eval must be finite with 0 <= n_correct <= n_eval and n_eval > 0"
        elif g["tokens"].duplicated().any():
            reason = "two evaluations at the same tokens"
        found = (np.nan, np.nan, np.nan, "") if reason else _run_crossing(g["tokens"].to_numpy(float), k, n, target)
        row.update(zip(("tokens_to_target", "tokens_lo", "tokens_hi", "censoring"), found, strict=True))
        row.update(n_evals=len(g), tokens_max=float(g["tokens"].max()) if len(g) else np.nan)
        rows.append({**row, "target": target, "ok": not reason, "reason": reason})
    return pd.DataFrame(rows)


def _mills(z: np.ndarray, log_cdf: np.ndarray) -> np.ndarray:
    """phi(z) / exp(log_cdf)."""
    return np.exp(-0.5 * z**2 - LOG_2PI_HALF - log_cdf)


def _nll(theta: np.ndarray, g: np.ndarray, y: np.ndarray, kind: np.ndarray) -> tuple[float, np.ndarray]:
    """Tobit negative log-likelihood of (a, b, log sigma) and its gradient. y is log T (kind 0), log t_last (kind 1,
    right-censored) or log t_first (kind 2, left-censored)."""
    a, b, log_s = theta
    s = np.exp(log_s)
    z = (y - a - b * g) / s
    exact, right = kind == 0, kind == 1
    log_cdf = np.where(exact, 0.0, log_ndtr(np.where(right, -z, z)))
    ll = np.where(exact, -0.5 * z**2 - log_s - LOG_2PI_HALF, log_cdf)
    m = np.where(exact, 0.0, _mills(z, log_cdf))
    sign = np.where(right, 1.0, -1.0)
    d_mu = np.where(exact, z / s, sign * m / s)  # d ll / d mu
    d_log_s = np.where(exact, z**2 - 1.0, sign * z * m)  # d ll / d log sigma
    return float(-ll.sum()), -np.array([d_mu.sum(), (d_mu * g).sum(), d_log_s.sum()])


def _data(d: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(y, kind) of the runs for _nll."""
    kind = d["censoring"].map({"interval": 0, "right": 1, "left": 2}).to_numpy(int)
    t = np.where(kind == 0, d["tokens_to_target"], np.where(kind == 1, d["tokens_lo"], d["tokens_hi"]))
    return np.log(t.astype(float)), kind


@dataclass
class GrowthLaw:
    """log T = a + b g(r) + sigma z for one form; g is 1/r or log(1/r). b_ci is the profile-likelihood interval."""

    form: str
    a: float
    b: float
    sigma: float
    b_ci: tuple[float, float]
    nll: float

    @property
    def aic(self) -> float:
        return 2 * 3 + 2 * self.nll

    def predict(self, ratio) -> np.ndarray:
        """Median tokens to target at ratio r."""
        return np.exp(self.a + self.b * FORMS[self.form](np.asarray(ratio, float)))


@dataclass
class GrowthFit:
    """Both growth laws for one size's runs and which fits better. If ok is False the laws are empty."""

    ok: bool
    reason: str
    laws: dict[str, GrowthLaw] = field(default_factory=dict)
    delta_aic: float = np.nan  # AIC_exp - AIC_power: < 0 favours the exponential
    preferred: str = ""  # "exponential", "power law" or "inconclusive"
    n_runs: int = 0
    n_ratios: int = 0
    censored: dict[str, int] = field(default_factory=dict)  # runs per censoring kind
    level: float = 0.95
    band: float = INCONCLUSIVE_AIC
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line: the preferred form, dAIC, both slopes with CIs and what the fit rests on."""
        if not self.ok:
            return f"no growth fit: {self.reason}"
        laws = "; ".join(
            f"{f}: log T = {law.a:.3g} + {law.b:.3g} {FEATURE[f]} (b {self.level:.0%} CI "
            f"[{law.b_ci[0]:.3g}, {law.b_ci[1]:.3g}], sigma {law.sigma:.2g})"
            for f, law in self.laws.items()
        )
        cens = ", ".join(f"{v} {CENSORED_AS[k]}" for k, v in self.censored.items() if v)
        return (
            f"{self.preferred} (dAIC = AIC_exp - AIC_power = {self.delta_aic:+.2f}; |dAIC| < {self.band:g} is "
            f"inconclusive); {laws}; {self.n_runs} runs at {self.n_ratios} ratios ({cens})"
        )


def _start(g: np.ndarray, y: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """Least-squares line through log T, censored runs placed 0.5 beyond their bound."""
    mid = y + np.select([kind == 1, kind == 2], [0.5, -0.5], 0.0)
    b, a = np.polyfit(g, mid, 1)
    return np.array([a, b, np.log(max(float(np.std(mid - a - b * g)), 0.1))])


def _profile_end(theta: np.ndarray, nll: float, g, y, kind, cut: float, sign: float) -> float:
    """Where 2 (profile NLL(b) - NLL) reaches `cut` beyond b_hat on the side `sign` (+-inf where it never does);
    the nuisance (a, log sigma) at each b is refitted from the last solution."""
    warm = theta[[0, 2]]

    def fit_at(p, b):
        f, grad = _nll(np.array([p[0], b, p[1]]), g, y, kind)
        return f, grad[[0, 2]]

    def excess(b: float) -> float:
        nonlocal warm
        res = minimize(fit_at, warm, args=(b,), jac=True, method="L-BFGS-B", bounds=[(-1e4, 1e4), LOG_SIGMA_BOUNDS])
        warm = res.x
        return 2 * (res.fun - nll) - cut

    inner, step = theta[1], 0.05 * max(abs(theta[1]), 1.0)
    for _ in range(40):
        outer = theta[1] + sign * step
        if excess(outer) > 0:
            return float(brentq(excess, min(inner, outer), max(inner, outer), xtol=1e-8 + 1e-6 * abs(theta[1])))
        inner, step = outer, 2 * step
    return sign * np.inf


def _fit_form(form: str, ratio: np.ndarray, y: np.ndarray, kind: np.ndarray, level: float):
    """Tobit maximum likelihood of one form with the profile interval of b (features centred internally): the
    GrowthLaw and its warnings."""
    g_raw = FORMS[form](ratio)
    g0 = float(g_raw.mean())
    g = g_raw - g0
    start = _start(g, y, kind)
    starts = [start, start * np.array([1.0, 0.5, 1.0]), start * np.array([1.0, 2.0, 1.0])]
    best, msgs = lbfgsb_multistart(
        lambda th: _nll(th, g, y, kind), starts, [(-1e4, 1e4), (-1e4, 1e4), LOG_SIGMA_BOUNDS]
    )
    theta, n = best.x, len(ratio)
    cut = n * np.log1p(f_dist.ppf(level, 1, n - 2) / (n - 2))
    with single_thread_blas():
        lo, hi = (_profile_end(theta, float(best.fun), g, y, kind, cut, sign) for sign in (-1.0, 1.0))
    if np.isclose(theta[2], LOG_SIGMA_BOUNDS[0], atol=1e-3):
        msgs.append(f"sigma at its lower bound {np.exp(LOG_SIGMA_BOUNDS[0]):g}: the line passes through every T")
    law = GrowthLaw(form, float(theta[0] - theta[1] * g0), float(theta[1]), float(np.exp(theta[2])), (lo, hi),
                    float(best.fun))  # fmt: skip
    return law, [f"{form}: {m}" for m in msgs]


def fit_growth(runs: pd.DataFrame, *, level: float = 0.95, band: float = INCONCLUSIVE_AIC) -> GrowthFit:
    """Both growth laws of T against 1/r for the runs of one size (rows of `tokens_to_target`; its ok runs at
    0 < r < 1 are used).

    Refuses (ok=False with the reason) fewer than 3 distinct ratios, or a crossing located (interpolated) at fewer
    than 2 distinct ratios: censored runs bound T on one side only.
    """
    d = runs[runs["ok"] & (runs["ratio"] > 0) & (runs["ratio"] < 1)] if len(runs) else runs
    ratios = d["ratio"].nunique() if len(d) else 0
    base = dict(n_runs=len(d), n_ratios=ratios, level=level, band=band)
    if ratios < 3:
        return GrowthFit(False, f"need runs at >= 3 distinct ratios in (0, 1), got {ratios}", **base)
    located = d.loc[d["censoring"] == "interval", "ratio"].nunique()
    if located < 2:
        return GrowthFit(
            False, f"the target is crossed along training at {located} ratio(s); a slope needs >= 2", **base
        )
    y, kind = _data(d)
    r = d["ratio"].to_numpy(float)
    laws, msgs = {}, []
    for form in FORMS:
        laws[form], m = _fit_form(form, r, y, kind, level)
        msgs += m
    delta = laws["exponential"].aic - laws["power law"].aic
    preferred = "exponential" if delta <= -band else "power law" if delta >= band else "inconclusive"
    censored = {k: int((d["censoring"] == k).sum()) for k in CENSORING}
    surface_warnings(msgs, "fit_growth")
    return GrowthFit(True, "", laws, float(delta), preferred, censored=censored, warnings=msgs, **base)


def growth_by_size(tokens: pd.DataFrame, **kwargs) -> dict:
    """fit_growth for each size of a `tokens_to_target` table, in the table's order of sizes."""
    return {size: fit_growth(g, **kwargs) for size, g in tokens.groupby("size", sort=False)}

"""The capacity-allocation model of the paper (Gu, Lyu, Li, Zhang, NeurIPS 2025, Section 4) as functions: predict
r*(M) and M*(r) before mixing.

Assumptions, all of them:
1. The model behaves like an optimal learner with a capacity of c bits per parameter: M_bits = c * params (params
   in the unit of the web-loss fit, by default non-embedding parameters). c is measured from knowledge-only (r = 1)
   runs as stored bits / params (the value-loss lower bound of mixlab.evaluate, over the whole knowledge set) over
   runs that did not store the whole knowledge set, or given.
2. Web loss as a function of capacity is the fitted web scaling law with params = M_bits / c:
   F_web(M_bits) = E + A (M_bits / (c scale))^-alpha, so -F_web'(M_bits) = alpha A (c scale)^alpha M_bits^-(alpha+1)
   in nats per web token per bit. The fit comes from r = 0 runs (web only).
3. Storing one bit of a person's facts saves one bit (ln 2 nats) each time that person's biography is seen. Every
   person is equally frequent, so a knowledge token carries p = ln 2 / (N * L_bio) nats of value per stored bit,
   N = number of people, L_bio = tokens per biography (measured: knowledge_tokens / (exposures * num_people)).
4. Capacity is a fractional knapsack: a bit spent on facts saves r p per training token, a bit spent on the web
   saves (1 - r) (-F_web'). With H_tot = N * bits_per_person bits of facts (data_gen.synbio_fields), the learner
   stores s bits where (r / (1 - r)) p = -F_web'(M_bits - s), clipped to [0, H_tot]. Hence the theorem's bounds:
   nothing is stored if (r/(1-r)) p < -F_web'(M_bits); everything if (r/(1-r)) p > -F_web'(M_bits - H_tot).
5. Accuracy equals the stored fraction s / H_tot, so the predicted threshold for a sigmoid midpoint is the r (or M)
   where s = fraction * H_tot (fraction = 0.5 by default); fraction 0 and 1 give the two bounds.
Consequence: at the onset, r/(1-r) = alpha A / (c scale p) (params/scale)^-(alpha+1), so r* ~ M^-(alpha+1) for
small r*, and M* ~ (r p / (1 - r))^(-1/(alpha+1)).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.fitting import percentile_ci
from analysis.scaling import WebLossFit
from analysis.thresholds import ThresholdSet

LN2 = float(np.log(2.0))
# The attribute pool sizes of the paper's SynBio: data_gen.synbio_fields.bits_per_person(PAPER_POOLS) = 46.6 bits.
PAPER_POOLS = {"birth_date": 12 * 28 * 200, "birth_city": 200, "university": 300, "major": 100, "employer": 263}


def fact_value(num_people: float, tokens_per_bio: float) -> float:
    """p: nats of knowledge loss saved per knowledge token per stored bit, ln 2 / (N L_bio)."""
    if num_people <= 0 or tokens_per_bio <= 0:
        raise ValueError(f"num_people and tokens_per_bio must be > 0, got {num_people}, {tokens_per_bio}")
    return LN2 / (num_people * tokens_per_bio)


def measured_tokens_per_bio(df: pd.DataFrame) -> float:
    """Median of knowledge_tokens / (exposures * num_people) over rows where all three are positive."""
    cols = ["knowledge_tokens", "exposures", "num_people"]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"tokens per biography needs columns {missing}")
    d = df[cols].astype(float)
    d = d[(d > 0).all(axis=1)]
    if d.empty:
        raise ValueError("no row with knowledge_tokens, exposures and num_people all > 0")
    return float((d["knowledge_tokens"] / (d["exposures"] * d["num_people"])).median())


def web_slope(bits, *, A, alpha, c, scale: float = 1e6) -> np.ndarray:
    """-F_web'(M) in nats per web token per bit at capacity M = `bits` (assumption 2); NaN where bits <= 0."""
    bits = np.asarray(bits, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = alpha * A * (c * scale) ** alpha * bits ** (-alpha - 1.0)
    return np.where(bits > 0, out, np.nan)


def predicted_ratio(params, *, A, alpha, c, p, scale: float = 1e6, stored_bits=0.0) -> np.ndarray:
    """r at which the optimal learner of this size stores `stored_bits` of facts: (r/(1-r)) p = -F'(c M - s).

    stored_bits = 0 is the onset bound (below it nothing is learned), H_tot the all-learned bound. NaN where the
    capacity c * params is not larger than stored_bits.
    """
    q = web_slope(c * np.asarray(params, float) - stored_bits, A=A, alpha=alpha, c=c, scale=scale) / p
    return q / (1.0 + q)


def predicted_size(ratio, *, A, alpha, c, p, scale: float = 1e6, stored_bits=0.0) -> np.ndarray:
    """Parameters at which the optimal learner stores `stored_bits` of facts at ratio r (inverse of the above)."""
    r = np.asarray(ratio, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = r / (1.0 - r) * p
        free_bits = (alpha * A * (c * scale) ** alpha / value) ** (1.0 / (alpha + 1.0))
    return (free_bits + stored_bits) / c


def predicted_fraction(ratio, params, *, A, alpha, c, p, total_bits, scale: float = 1e6) -> np.ndarray:
    """Fraction of the H_tot = total_bits facts the optimal learner stores at ratio r and size params."""
    r, m = np.asarray(ratio, float), np.asarray(params, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        free_bits = (alpha * A * (c * scale) ** alpha / (r / (1.0 - r) * p)) ** (1.0 / (alpha + 1.0))
    return np.clip((c * m - free_bits) / total_bits, 0.0, 1.0)


def predicted_exponent(alpha) -> np.ndarray:
    """Exponent of r*/(1-r*) (and of r* for small r*) in M: -(alpha + 1)."""
    return -(np.asarray(alpha, float) + 1.0)


@dataclass
class CapacityEstimate:
    """Bits per parameter c. lower_bound=True when every knowledge-only run stored (almost) everything."""

    ok: bool
    reason: str
    c: float = np.nan
    ci: tuple[float, float] = (np.nan, np.nan)
    boot: np.ndarray = field(default_factory=lambda: np.empty(0))
    lower_bound: bool = False
    n_runs: int = 0
    source: str = ""


def given_capacity(c: float) -> CapacityEstimate:
    """A capacity supplied by the user (no uncertainty)."""
    if not c > 0:
        raise ValueError(f"bits per parameter c must be > 0, got {c}")
    return CapacityEstimate(True, "", float(c), (float(c), float(c)), np.array([float(c)]), source="given")


def stored_bits_total(df: pd.DataFrame) -> pd.Series:
    """Bits of facts stored over the whole knowledge set, per row.

    From bits_stored_total when present (mixlab.evaluate: mean over evaluated people x population), else
    bits_per_param x params_non_embedding (mixlab.train's definition of bits_per_param), else bits_stored (then
    assumed to cover the whole set).
    """
    out = pd.Series(np.nan, index=df.index)
    if "bits_stored_total" in df.columns:
        out = df["bits_stored_total"].astype(float)
    if "bits_per_param" in df.columns and "params_non_embedding" in df.columns:
        out = out.fillna(df["bits_per_param"].astype(float) * df["params_non_embedding"].astype(float))
    if "bits_stored" in df.columns:
        out = out.fillna(df["bits_stored"].astype(float))
    return out


def measure_capacity(
    final: pd.DataFrame,
    param_col: str,
    *,
    total_bits: float | None = None,
    saturation: float = 0.9,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> CapacityEstimate:
    """c from knowledge-only (ratio == 1) final runs: median of stored bits / params over capacity-limited runs.

    Stored bits: stored_bits_total. A run is capacity-limited if it stored less than `saturation` of total_bits
    (or, without total_bits, if its accuracy is below `saturation`): a run that stored everything only gives a
    lower bound on c. The CI resamples runs.
    """
    rows = final[final["ratio"] == 1.0]
    stored = stored_bits_total(rows)
    rows, stored = rows[stored > 0], stored[stored > 0]
    if rows.empty:
        return CapacityEstimate(False, "no knowledge-only (ratio = 1) final runs with stored bits")
    c_i = (stored / rows[param_col]).to_numpy(float)
    limited = (stored < saturation * total_bits) if total_bits else (rows["acc"] < saturation)
    limited = limited.to_numpy()
    src = f"stored bits / {param_col} over {int(limited.sum())} capacity-limited r = 1 runs"
    if not limited.any():
        c = float(c_i.max())
        return CapacityEstimate(
            True, "", c, (c, np.inf), np.array([c]), True, len(rows), f"lower bound: max stored bits / {param_col}"
        )
    vals = c_i[limited]
    rng = np.random.default_rng(seed)
    boot = np.median(vals[rng.integers(0, len(vals), (n_boot, len(vals)))], axis=1)
    lo, hi = percentile_ci(boot, level)
    return CapacityEstimate(True, "", float(np.median(vals)), (float(lo), float(hi)), boot, False, len(vals), src)


@dataclass
class TheoryPrediction:
    """Predicted thresholds with bootstrap CIs: draws combine the web-loss fit's bootstrap with c's."""

    x: np.ndarray
    predicted: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    draws: np.ndarray
    onset: np.ndarray
    all_learned: np.ndarray
    exponent: float
    exponent_ci: tuple[float, float]
    local_exponent: float
    local_exponent_ci: tuple[float, float]
    kind: str  # "ratio" (r*(M)) or "size" (M*(r))
    fraction: float
    level: float = 0.95


def param_draws(web: WebLossFit, capacity: CapacityEstimate, n_boot: int, seed: int):
    """n_boot bootstrap draws of A, alpha (web-loss fit) and, independently, of c (capacity): n_boot x 1 columns."""
    rng = np.random.default_rng(seed)
    wb = web.boot[rng.integers(0, len(web.boot), n_boot)]
    cb = capacity.boot[rng.integers(0, len(capacity.boot), n_boot)]
    return wb[:, 1:2], wb[:, 2:3], cb[:, None]


def predict(
    kind: str,
    x,
    web: WebLossFit,
    capacity: CapacityEstimate,
    p: float,
    total_bits: float,
    *,
    fraction: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> TheoryPrediction:
    """kind="ratio": r*(M) at parameter counts x; kind="size": M*(r) at ratios x. Uncertainty from the fits.

    `exponent` is the asymptotic one (-(alpha+1) for r*, -1/(alpha+1) for M*); `local_exponent` is the log-log
    least-squares slope of the prediction over the given x, the number to hold against a power law fitted to
    thresholds observed at the same x.
    """
    if kind not in ("ratio", "size"):
        raise ValueError(f"kind must be 'ratio' or 'size', got {kind!r}")
    if not (web.ok and capacity.ok):
        raise ValueError(f"theory needs a web-loss fit and a capacity: {web.reason or capacity.reason}")
    x = np.asarray(x, float)
    fn = predicted_ratio if kind == "ratio" else predicted_size
    common = dict(p=p, scale=web.scale)

    def at(a, al, c, stored):
        return fn(x if np.ndim(a) == 0 else x[None, :], A=a, alpha=al, c=c, stored_bits=stored, **common)

    point = at(web.A, web.alpha, capacity.c, fraction * total_bits)
    a_b, al_b, c_b = param_draws(web, capacity, n_boot, seed)
    draws = at(a_b, al_b, c_b, fraction * total_bits)
    lo, hi = percentile_ci(draws, level)
    exp_draws = predicted_exponent(al_b[:, 0])
    e_lo, e_hi = percentile_ci(exp_draws, level)
    if kind == "size":  # M* ~ (r/(1-r))^(-1/(alpha+1))
        exp_point, e_lo, e_hi = -1 / (web.alpha + 1), *percentile_ci(-1 / (al_b[:, 0] + 1), level)
    else:
        exp_point = float(predicted_exponent(web.alpha))
    onset = at(web.A, web.alpha, capacity.c, 0.0)
    full = at(web.A, web.alpha, capacity.c, total_bits)
    local, local_draws = _log_slope(x, point[None])[0], _log_slope(x, draws)
    l_lo, l_hi = percentile_ci(local_draws, level) if np.isfinite(local_draws).any() else (np.nan, np.nan)
    return TheoryPrediction(
        x,
        point,
        lo,
        hi,
        draws,
        onset,
        full,
        float(exp_point),
        (float(e_lo), float(e_hi)),
        float(local),
        (float(l_lo), float(l_hi)),
        kind,
        fraction,
        level,
    )


def _log_slope(x: np.ndarray, y_BxS: np.ndarray) -> np.ndarray:
    """Least-squares slope of log y on log x per row, over the finite entries (NaN with fewer than 2)."""
    lx = np.broadcast_to(np.log(x), y_BxS.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        ly = np.log(y_BxS)
    ok = np.isfinite(ly) & np.isfinite(lx)
    cnt = ok.sum(axis=1)
    mx = np.where(ok, lx, 0).sum(axis=1) / np.maximum(cnt, 1)
    my = np.where(ok, ly, 0).sum(axis=1) / np.maximum(cnt, 1)
    dx, dy = np.where(ok, lx - mx[:, None], 0), np.where(ok, ly - my[:, None], 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (dx * dy).sum(axis=1) / (dx**2).sum(axis=1)
    return np.where(cnt >= 2, slope, np.nan)


def compare(observed: ThresholdSet, prediction: TheoryPrediction, *, seed: int = 0) -> pd.DataFrame:
    """Observed thresholds vs predicted at the same group values: obs_pred = observed / predicted, with a CI.

    The CI pairs each observed bootstrap draw with an independent draw of the prediction; when the observed
    threshold is only bracketed by grid points (fit not resolved), it is widened to cover the bracket.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for _, row in observed.table.iterrows():
        i = int(np.argmin(np.abs(np.log(prediction.x) - np.log(row["M"]))))
        pred_draws = prediction.draws[:, i]
        entry = {
            observed.by: row[observed.by],
            "M": row["M"],
            "observed": row["x_star"],
            "observed_lo": row["x_star_lo"],
            "observed_hi": row["x_star_hi"],
            "predicted": prediction.predicted[i],
            "predicted_lo": prediction.lo[i],
            "predicted_hi": prediction.hi[i],
            "onset_bound": prediction.onset[i],
            "all_bound": prediction.all_learned[i],
        }
        fit = observed.fits.get(row[observed.by])
        if row["ok"] and np.isfinite(prediction.predicted[i]) and fit is not None:
            ratio_draws = rng.choice(fit.boot[:, 0], len(pred_draws)) / pred_draws
            lo, hi = percentile_ci(ratio_draws, prediction.level)
            if not fit.resolved:  # x* only bracketed by grid points: widen to the bracket over the prediction's CI
                lo = min(lo, row["x_star_lo"] / prediction.hi[i])
                hi = max(hi, row["x_star_hi"] / prediction.lo[i])
            entry.update(obs_pred=row["x_star"] / prediction.predicted[i], obs_pred_lo=lo, obs_pred_hi=hi)
        else:
            entry.update(obs_pred=np.nan, obs_pred_lo=np.nan, obs_pred_hi=np.nan)
        rows.append(entry)
    return pd.DataFrame(rows)

"""Transition thresholds from accuracy curves: sigmoid fits, target crossings, and sharpness.

Sigmoid: acc(x) = lo + (hi - lo) * sigmoid((log x - log x*) / w), fitted by maximum binomial likelihood on the
counts (n_correct of n_eval) from several starts with a bounded Levenberg-Marquardt (Fisher scoring) minimiser,
then bootstrapped (see analysis.curves for what is resampled) by refitting every resample at once. x is the ratio
r (threshold r*), the size M (critical size M*) or the tokens seen. Every fit returns a result with ok=False and a
reason on degenerate input (all zeros, too few points, a non-monotone curve, a transition outside the sampled
range); then the numbers are NaN, never silent. Optimizer trouble is recorded in `warnings` and re-issued as
analysis.fitting.FitWarning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import chi2

from analysis.curves import Curve, isotonic, monotonicity_problem, resample
from analysis.fitting import EPS, batched_minimize, binomial_loglik, binomial_objective, percentile_ci, surface_warnings

LN9 = float(np.log(9.0))
PARAMS = ("x_star", "w", "lo", "hi")


def sigmoid_curve(x, x_star: float, w: float, lo: float, hi: float) -> np.ndarray:
    """acc(x) = lo + (hi - lo) * sigmoid((log x - log x_star) / w)."""
    z = (np.log(np.asarray(x, float)) - np.log(x_star)) / w
    return lo + (hi - lo) / (1.0 + np.exp(-np.clip(z, -500, 500)))


def _model(theta_BxP: np.ndarray, lx_X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sigmoid in internal parameters (m=log x*, v=log w, lo, s): hi = lo + s (1 - lo). Returns p_BxX, J_BxXxP."""
    m, v, lo, s = (theta_BxP[:, i : i + 1] for i in range(4))
    w = np.exp(v)
    z = (lx_X[None, :] - m) / w
    sig = 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))
    amp = s * (1 - lo)
    p = lo + amp * sig
    dsig = sig * (1 - sig)
    jac = np.stack([-amp * dsig / w, -amp * dsig * z, 1 - s * sig, (1 - lo) * sig * np.ones_like(z)], axis=-1)
    return p, jac


def _objective(lx_X: np.ndarray, k_BxX: np.ndarray, n_BxX: np.ndarray, model=_model):
    """binomial_objective of a model of log x."""
    return binomial_objective(k_BxX, n_BxX, lambda theta_BxP, rows: model(theta_BxP, lx_X))


@dataclass
class SigmoidFit:
    """A sigmoid fit in log x with bootstrap CIs. If ok is False, the numbers are NaN and `reason` says why."""

    ok: bool
    reason: str
    x_name: str
    x_star: float = np.nan
    w: float = np.nan
    lo: float = np.nan
    hi: float = np.nan
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    loglik: float = np.nan
    n_items: float = 0.0
    resolved: bool = True
    x_range: tuple[float, float] = (np.nan, np.nan)
    boot: np.ndarray = field(default_factory=lambda: np.empty((0, 4)))
    level: float = 0.95
    warnings: list[str] = field(default_factory=list)

    @property
    def span_factor(self) -> float:
        """x90 / x10: the factor in x over which accuracy rises from 10% to 90% of its range (= 81 ** w)."""
        return float(np.exp(2 * LN9 * self.w))

    def predict(self, x) -> np.ndarray:
        return sigmoid_curve(x, self.x_star, self.w, self.lo, self.hi)

    def band(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise bootstrap CI of the fitted curve at x."""
        x = np.asarray(x, float)
        if not self.ok or len(self.boot) == 0:
            return np.full(x.shape, np.nan), np.full(x.shape, np.nan)
        b = self.boot
        curves = sigmoid_curve(x[None, :], b[:, :1], b[:, 1:2], b[:, 2:3], b[:, 3:4])
        return percentile_ci(curves, self.level)


def _failed(cls, x_name: str, reason: str, msgs: list[str] | None = None, **kw):
    msgs = msgs or []
    surface_warnings(msgs, f"{cls.__name__} ({x_name})")
    return cls(ok=False, reason=reason, x_name=x_name, warnings=msgs, **kw)


def _sigmoid_problem(curve: Curve) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """Why the curve cannot take a sigmoid ("" if it can), and its pooled counts (xs_X, k_X, n_X)."""
    name = curve.x_name
    problem = curve.check()
    xs, k, n = curve.pooled() if not problem else (np.empty(0),) * 3
    if not problem and len(xs) < 3:
        problem = f"need at least 3 distinct {name} values for a sigmoid, got {len(xs)}"
    if not problem and k.sum() == 0:
        problem = f"accuracy is 0 at every {name} ({xs.min():g} to {xs.max():g}): no transition in the sampled range"
    if not problem and np.all(k == n):
        problem = f"accuracy is 1 at every {name} ({xs.min():g} to {xs.max():g}): no transition in the sampled range"
    if not problem:
        problem = monotonicity_problem(curve)
    return problem, xs, k, n


def _search_box(lx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the internal parameters (log x*, log w, lo, s): x* within one range-width beyond the sampled range."""
    span = lx[-1] - lx[0]
    lower = np.array([lx[0] - span, np.log(1e-3 * span), 0.0, 0.0])
    upper = np.array([lx[-1] + span, np.log(5.0 * span), 1.0, 1.0])
    return lower, upper


def _starts(lx: np.ndarray, k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Starts: x* at the isotonic fit's midpoint and at the quartiles of log x, each with a narrow and a wide w."""
    span = lx[-1] - lx[0]
    iso = isotonic(k / n, n)[0]
    lo0 = float(iso[0])
    s0 = float(np.clip((iso[-1] - lo0) / max(1 - lo0, EPS), 0.05, 1.0))
    mid = lo0 + 0.5 * (iso[-1] - lo0)
    m_mid = float(np.interp(mid, iso, lx)) if iso[-1] > iso[0] else float(lx.mean())
    return np.array(
        [
            np.array([m0, np.log(f * span), lo0, s0])
            for m0 in (m_mid, *np.quantile(lx, [0.25, 0.5, 0.75]))
            for f in (0.03, 0.3)
        ]
    )


def _point_fit(
    lx: np.ndarray, k: np.ndarray, n: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, bool, float, float, list[str]]:
    """Best multi-start fit, whether it converged, the best objectives with x* pinned above and below the sampled
    range, and the warnings raised while fitting (as messages).

    One batch: free fits from every start, then the same starts with x* pinned beyond either end (for the check
    that the data place the transition inside the range).
    """
    free = np.clip(_starts(lx, k, n), lower, upper)
    pinned_lo, pinned_hi = [], []
    for m_lo, m_hi in ((lx[-1], upper[0]), (lower[0], lx[0])):
        lo_b, up_b = lower.copy(), upper.copy()
        lo_b[0], up_b[0] = m_lo, m_hi
        pinned_lo.append(np.tile(lo_b, (len(free), 1)))
        pinned_hi.append(np.tile(up_b, (len(free), 1)))
    lows = np.concatenate([np.tile(lower, (len(free), 1)), *pinned_lo])
    highs = np.concatenate([np.tile(upper, (len(free), 1)), *pinned_hi])
    theta0 = np.clip(np.tile(free, (3, 1)), lows, highs)
    kk, nn = np.broadcast_to(k, (len(theta0), len(k))), np.broadcast_to(n, (len(theta0), len(n)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        th_all, f_all, conv_all = batched_minimize(_objective(lx, kk, nn), theta0, lows, highs, max_iter=500)
    msgs = [f"{w.category.__name__}: {w.message}" for w in caught]
    th_s, f_s, conv_s = th_all[: len(free)], f_all[: len(free)], conv_all[: len(free)]
    f_above, f_below = np.nanmin(f_all[len(free) : 2 * len(free)]), np.nanmin(f_all[2 * len(free) :])
    best = int(np.nanargmin(f_s))
    return th_s[best], bool(conv_s[best]), f_above, f_below, msgs


def _placement_problem(
    name: str, xs: np.ndarray, k: np.ndarray, n: np.ndarray, ll: float, x_star: float, f_above, f_below, min_rise_p
) -> str:
    """Why the fit does not show a rise located inside the sampled range ("" if it does); see `fit_sigmoid`."""
    ll_const = float(binomial_loglik(np.full_like(k / n, k.sum() / n.sum()), k, n))
    lr_p = float(chi2.sf(2 * (ll - ll_const), 3))
    if lr_p >= min_rise_p:
        return (
            f"no significant rise in accuracy over {name} in [{xs[0]:g}, {xs[-1]:g}] "
            f"(sigmoid vs constant: likelihood-ratio p = {lr_p:.2g})"
        )
    for side, f_pinned in (("above", f_above), ("below", f_below)):
        p_out = float(chi2.sf(max(2 * (ll + f_pinned * n.sum()), 0.0), 1))
        if p_out >= 0.05:
            return (
                f"transition not located inside the sampled range: a sigmoid with {name}* {side} "
                f"[{xs[0]:g}, {xs[-1]:g}] fits about as well (likelihood-ratio p = {p_out:.2g}; unconstrained "
                f"fit {name}* = {x_star:.3g})"
            )
    return ""


def _bootstrap(
    curve: Curve, lx: np.ndarray, theta: np.ndarray, lower, upper, *, n_boot, seed, over, unit, level
) -> tuple[np.ndarray, dict[str, tuple[float, float]], list[str]]:
    """Refit every resample from the point estimate: (boot_Bx4 in PARAMS order, percentile CIs, messages)."""
    msgs = []
    rng = np.random.default_rng(seed)
    kb, nb = resample(curve, n_boot, rng, over=over, unit=unit)
    th_b, _, conv = batched_minimize(_objective(lx, kb, nb), np.broadcast_to(theta, (n_boot, 4)).copy(), lower, upper)
    if conv.mean() < 0.98:
        msgs.append(f"{(~conv).sum()} of {n_boot} bootstrap refits did not converge and were dropped")
    th_b = th_b[conv]
    boot = np.column_stack(
        [np.exp(th_b[:, 0]), np.exp(th_b[:, 1]), th_b[:, 2], th_b[:, 2] + th_b[:, 3] * (1 - th_b[:, 2])]
    )
    ci = {p: tuple(float(v) for v in percentile_ci(boot[:, i], level)) for i, p in enumerate(PARAMS)}
    spans = np.exp(2 * LN9 * boot[:, 1])
    ci["span_factor"] = tuple(float(v) for v in percentile_ci(spans, level))
    return boot, ci, msgs


def _bracket(name: str, xs: np.ndarray, lx: np.ndarray, theta: np.ndarray, ci: dict) -> str:
    """If no sampled x lies on the rise (5% to 95% of it), widen `ci` in place and say so; else return "".

    Then the data only bracket the transition: x* is known to lie between the two grid points around it, and w is
    only bounded above by their spacing.
    """
    w = float(np.exp(theta[1]))
    z = (lx - theta[0]) / w
    if np.any(np.abs(z) <= np.log(19.0)):
        return ""
    j = int(np.clip(np.searchsorted(xs, float(np.exp(theta[0]))), 1, len(xs) - 1))
    gap = lx[j] - lx[j - 1]
    ci["x_star"] = (min(ci["x_star"][0], float(xs[j - 1])), max(ci["x_star"][1], float(xs[j])))
    ci["w"] = (0.0, max(ci["w"][1], gap / (2 * LN9)))
    ci["span_factor"] = (1.0, max(ci["span_factor"][1], float(np.exp(gap))))
    return (
        f"no sampled {name} lies on the rise, which happens between {name}={xs[j - 1]:g} and "
        f"{name}={xs[j]:g}: x* is bracketed by them and w is only bounded above"
    )


def fit_sigmoid(
    curve: Curve,
    *,
    n_boot: int = 1000,
    over: str = "both",
    unit: str = "item",
    level: float = 0.95,
    seed: int = 0,
    min_rise_p: float = 0.01,
) -> SigmoidFit:
    """Maximum-likelihood sigmoid in log x with percentile bootstrap CIs (n_boot resamples, refitted jointly).

    Fails (ok=False) when the counts are unusable, there are fewer than 3 distinct x, accuracy is all 0 or all 1,
    the curve falls significantly, the sigmoid is no better than a constant (likelihood-ratio p >= min_rise_p), or
    the data do not place x* inside the sampled range: a fit with x* pinned beyond either end is not rejected by a
    likelihood-ratio test at 5% (a rise seen only at the last point could be the foot of a later transition).
    """
    name = curve.x_name
    problem, xs, k, n = _sigmoid_problem(curve)
    if problem:
        return _failed(SigmoidFit, name, problem)
    lx = np.log(xs)
    lower, upper = _search_box(lx)
    theta, converged, f_above, f_below, msgs = _point_fit(lx, k, n, lower, upper)
    if not converged:
        msgs.append("the best of the multi-start fits did not converge within 500 Levenberg-Marquardt iterations")
    ll = float(binomial_loglik(_model(theta[None], lx)[0][0], k, n))
    x_star, w, lo = float(np.exp(theta[0])), float(np.exp(theta[1])), float(theta[2])
    hi = lo + float(theta[3]) * (1 - lo)
    problem = _placement_problem(name, xs, k, n, ll, x_star, f_above, f_below, min_rise_p)
    if problem:
        return _failed(SigmoidFit, name, problem, msgs)
    if np.isclose(theta[1], lower[1]) or np.isclose(theta[1], upper[1]):
        msgs.append(f"width w = {w:.3g} sits at a bound of its search range")
    boot, ci, boot_msgs = _bootstrap(
        curve, lx, theta, lower, upper, n_boot=n_boot, seed=seed, over=over, unit=unit, level=level
    )
    msgs += boot_msgs
    bracketed = _bracket(name, xs, lx, theta, ci)
    if bracketed:
        msgs.append(bracketed)
    if ci["x_star"][0] < xs[0] or ci["x_star"][1] > xs[-1]:
        msgs.append(f"the {level:.0%} CI of {name}* extends beyond the sampled range")
    surface_warnings(msgs, f"fit_sigmoid ({name})")
    return SigmoidFit(
        ok=True,
        reason="",
        x_name=name,
        x_star=x_star,
        w=w,
        lo=lo,
        hi=hi,
        ci=ci,
        loglik=ll,
        n_items=float(n.sum()),
        resolved=not bracketed,
        x_range=(float(xs[0]), float(xs[-1])),
        boot=boot,
        level=level,
        warnings=msgs,
    )


@dataclass
class CrossingResult:
    """x at which accuracy first reaches `target` on the isotonic (monotone) fit, interpolated linearly in log x."""

    ok: bool
    reason: str
    x_name: str
    target: float = np.nan
    x_cross: float = np.nan
    ci: tuple[float, float] = (np.nan, np.nan)
    boot: np.ndarray = field(default_factory=lambda: np.empty(0))
    level: float = 0.95
    warnings: list[str] = field(default_factory=list)


def _crossing_BxX(lx_X: np.ndarray, f_BxX: np.ndarray, target: float) -> np.ndarray:
    """Crossing of non-decreasing rows f with target: exp(log x) interpolated; -inf below range, +inf above."""
    above = f_BxX >= target
    first = np.argmax(above, axis=1)
    i = np.clip(first, 1, lx_X.shape[0] - 1)
    rows = np.arange(f_BxX.shape[0])
    f0, f1 = f_BxX[rows, i - 1], f_BxX[rows, i]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # rows without a bracket are replaced below
        lxc = lx_X[i - 1] + (target - f0) * (lx_X[i] - lx_X[i - 1]) / (f1 - f0)
        out = np.exp(lxc)
    out = np.where(first == 0, -np.inf, out)
    return np.where(~above.any(axis=1), np.inf, out)


def crossing(
    curve: Curve,
    target: float,
    *,
    n_boot: int = 1000,
    over: str = "both",
    unit: str = "item",
    level: float = 0.95,
    seed: int = 0,
) -> CrossingResult:
    """The paper's threshold: where accuracy crosses `target`, with a bootstrap CI.

    Resamples where the target is not reached count as +inf, those already above it at the smallest x as -inf
    (an unbounded CI side is reported as such, never clipped).
    """
    name = curve.x_name
    if not 0 < target < 1:
        raise ValueError(f"target must lie in (0, 1), got {target}")
    problem = curve.check()
    xs, k, n = curve.pooled() if not problem else (np.empty(0),) * 3
    if not problem and len(xs) < 2:
        problem = f"need at least 2 distinct {name} values to locate a crossing, got {len(xs)}"
    if not problem:
        problem = monotonicity_problem(curve)
    if not problem:
        iso = isotonic(k / n, n)[0]
        if iso[-1] < target:
            problem = f"accuracy never reaches {target:g} (monotone fit peaks at {iso[-1]:.3f}, {name}={xs[-1]:g})"
        elif iso[0] >= target:
            problem = f"accuracy is already {iso[0]:.3f} >= {target:g} at the smallest {name}={xs[0]:g}"
    if problem:
        return _failed(CrossingResult, name, problem, target=target)
    lx = np.log(xs)
    x_cross = float(_crossing_BxX(lx, iso[None], target)[0])
    kb, nb = resample(curve, n_boot, np.random.default_rng(seed), over=over, unit=unit)
    boot = _crossing_BxX(lx, isotonic(kb / nb, nb), target)
    lo, hi = percentile_ci(boot, level)
    msgs = []
    outside = float(np.mean(~np.isfinite(boot)))
    if outside > 0:
        msgs.append(f"{outside:.1%} of resamples put the {target:g} crossing outside the sampled {name} range")
    surface_warnings(msgs, f"crossing ({name})")
    return CrossingResult(True, "", name, target, x_cross, (float(lo), float(hi)), boot, level, msgs)


def _power_model(theta_BxP: np.ndarray, lx_X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """acc = min(C x^k, 1) with theta = (log C, k); returns p_BxX and J_BxXxP."""
    e = np.exp(np.clip(theta_BxP[:, :1] + theta_BxP[:, 1:2] * lx_X[None, :], -700, 700))
    inside = e < 1.0
    p = np.where(inside, e, 1.0)
    jac = np.stack([p * inside, p * lx_X[None, :] * inside], axis=-1)
    return p, jac


def _linear_model(theta_BxP: np.ndarray, lx_X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """acc = a + b log x clipped to [0, 1] with theta = (a, b); returns p_BxX and J_BxXxP."""
    raw = theta_BxP[:, :1] + theta_BxP[:, 1:2] * lx_X[None, :]
    inside = (raw > 0) & (raw < 1)
    jac = np.stack([inside * 1.0, inside * lx_X[None, :]], axis=-1)
    return np.clip(raw, 0.0, 1.0), jac


@dataclass
class SharpnessResult:
    """How abrupt a transition is, and whether a sigmoid beats smooth alternatives. See `sharpness`."""

    ok: bool
    reason: str
    x_name: str
    sharp: bool = False
    verdict: str = ""
    w: float = np.nan
    w_ci: tuple[float, float] = (np.nan, np.nan)
    span_factor: float = np.nan
    span_factor_ci: tuple[float, float] = (np.nan, np.nan)
    models: dict[str, dict[str, float]] = field(default_factory=dict)
    delta_bic: float = np.nan
    delta_aic: float = np.nan
    max_span_factor: float = 3.0
    min_delta_bic: float = 10.0
    warnings: list[str] = field(default_factory=list)


def _smooth_alternatives(
    lx: np.ndarray, k: np.ndarray, n: np.ndarray, max_span_factor: float
) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Binomial-likelihood fits of the smooth alternatives of `sharpness`: {label: {loglik, n_params}}, messages."""
    ln_s = np.log(max_span_factor)
    top = float(np.clip((k / n).max(), 1e-6, 1 - 1e-6))
    models, msgs = {}, []
    for label, (model, bmax) in {
        "power_law": (_power_model, LN9 / ln_s),
        "linear_log": (_linear_model, 0.8 / ln_s),
    }.items():
        # Starts keep every prediction strictly inside (0, 1), where the likelihood has a gradient.
        slopes = bmax * np.array([0.05, 0.25, 0.5, 1.0])
        if label == "power_law":
            starts = np.column_stack([np.log(0.99 * top) - slopes * lx[-1], slopes])
        else:
            slopes = np.minimum(slopes, 0.98 * top / (lx[-1] - lx[0]))
            starts = np.column_stack([0.5 * top - slopes * lx.mean(), slopes])
        kk, nn = np.broadcast_to(k, (len(starts), len(k))), np.broadcast_to(n, (len(starts), len(n)))
        lower, upper = np.array([-50.0, 0.0]), np.array([50.0, bmax])
        th, f, conv = batched_minimize(_objective(lx, kk, nn, model), starts, lower, upper, max_iter=500)
        best = int(np.nanargmin(f))
        if not conv[best]:
            msgs.append(f"{label}: best start did not converge within 500 Levenberg-Marquardt iterations")
        models[label] = {"loglik": float(binomial_loglik(model(th[best : best + 1], lx)[0][0], k, n)), "n_params": 2.0}
    return models, msgs


def _sharpness_verdict(
    fit: SigmoidFit, name: str, delta_bic: float, sharp: bool, max_span_factor: float, min_delta_bic: float
) -> str:
    """The plain-language verdict of `sharpness`, with the numbers behind it."""
    lo_s, hi_s = fit.ci["span_factor"]
    desc = (
        f"10%->90% rise within x{fit.span_factor:.2f} in {name} (95% CI x{lo_s:.2f}-x{hi_s:.2f}), "
        f"sigmoid vs best smooth alternative: delta BIC = {delta_bic:.1f}"
    )
    if sharp:
        return f"sharp: {desc}"
    if delta_bic < min_delta_bic:
        return f"not sharp: a smooth curve explains the data about as well ({desc})"
    return f"not sharp: the rise is wider than x{max_span_factor:g} ({desc})"


def sharpness(
    curve: Curve,
    *,
    fit: SigmoidFit | None = None,
    max_span_factor: float = 3.0,
    min_delta_bic: float = 10.0,
    **fit_kwargs,
) -> SharpnessResult:
    """Is the rise of accuracy with x a sharp transition?

    Statistics: the sigmoid width w (log x units), the 10%->90% span factor x90/x10 = 81**w, and AIC/BIC of the
    sigmoid (4 parameters) against two smooth 2-parameter alternatives fitted by binomial likelihood: a power law
    acc = min(C x^k, 1) and a line in log x, acc = a + b log x (clipped to [0, 1]). The alternatives are restricted
    to be smooth, i.e. to rise from 10% to 90% over at least a factor `max_span_factor` in x (k <= ln 9 / ln S,
    b <= 0.8 / ln S); unrestricted, a power law with k = 50 is itself a step. BIC uses the number of evaluated items.

    Verdict: sharp iff the sigmoid beats the best smooth alternative by delta BIC >= min_delta_bic AND its span
    factor is below max_span_factor. A smooth but saturating curve may favour the sigmoid by BIC; its wide span
    keeps it from being called sharp.
    """
    fit = fit if fit is not None else fit_sigmoid(curve, **fit_kwargs)
    name = curve.x_name
    base = dict(max_span_factor=max_span_factor, min_delta_bic=min_delta_bic)
    if not fit.ok:
        return SharpnessResult(False, fit.reason, name, warnings=list(fit.warnings), **base)
    xs, k, n = curve.pooled()
    smooth, smooth_msgs = _smooth_alternatives(np.log(xs), k, n, max_span_factor)
    models = {"sigmoid": {"loglik": fit.loglik, "n_params": 4.0}, **smooth}
    msgs = list(fit.warnings) + smooth_msgs
    for d in models.values():
        d["aic"] = -2 * d["loglik"] + 2 * d["n_params"]
        d["bic"] = -2 * d["loglik"] + d["n_params"] * np.log(n.sum())
    delta_bic = min(v["bic"] for v in smooth.values()) - models["sigmoid"]["bic"]
    delta_aic = min(v["aic"] for v in smooth.values()) - models["sigmoid"]["aic"]
    sharp = bool(delta_bic >= min_delta_bic and fit.span_factor < max_span_factor)
    surface_warnings(smooth_msgs, f"sharpness ({name})")
    return SharpnessResult(
        ok=True,
        reason="",
        x_name=name,
        sharp=sharp,
        verdict=_sharpness_verdict(fit, name, delta_bic, sharp, max_span_factor, min_delta_bic),
        w=fit.w,
        w_ci=fit.ci["w"],
        span_factor=fit.span_factor,
        span_factor_ci=fit.ci["span_factor"],
        models=models,
        delta_bic=float(delta_bic),
        delta_aic=float(delta_aic),
        warnings=msgs,
        **base,
    )


@dataclass
class ThresholdSet:
    """Per-group fits of accuracy vs x: a tidy table plus the full result objects (keyed by group value)."""

    x: str
    by: str
    table: pd.DataFrame
    fits: dict
    crossings: dict
    sharpness: dict


def fit_thresholds(
    df: pd.DataFrame,
    x: str = "ratio",
    by: str = "size",
    *,
    group_x: str | None = None,
    targets: tuple[float, ...] = (0.4, 0.8),
    n_boot: int = 1000,
    over: str = "both",
    unit: str = "item",
    level: float = 0.95,
    seed: int = 0,
    max_span_factor: float = 3.0,
) -> ThresholdSet:
    """Fit a sigmoid, crossings at `targets` and sharpness to accuracy vs `x` for each value of `by`.

    `group_x` is a numeric column describing the group (for by="size": the parameter count, used as M); the table
    gets its median per group as column "M" (or the group value itself when by is numeric and group_x is None).
    Pass final rows (analysis.io.final_rows) unless you mean to fit along training.
    """
    missing = [c for c in (x, by, *([group_x] if group_x else [])) if c not in df.columns]
    if missing:
        raise KeyError(f"fit_thresholds needs columns {missing}, which the table lacks")
    rows, fits, crosses, sharps = [], {}, {}, {}
    kw = dict(n_boot=n_boot, over=over, unit=unit, level=level, seed=seed)
    for key, g in df.groupby(by, sort=False):
        curve = Curve.from_frame(g, x)
        fit = fit_sigmoid(curve, **kw)
        sh = sharpness(curve, fit=fit, max_span_factor=max_span_factor)
        gx = float(g[group_x].median()) if group_x else float(key) if np.isscalar(key) else np.nan
        row = {by: key, "M": gx, "n_points": len(curve.xs), "ok": fit.ok, "reason": fit.reason}
        row.update({p: getattr(fit, p) for p in PARAMS})
        for p in (*PARAMS, "span_factor"):
            row[f"{p}_lo"], row[f"{p}_hi"] = fit.ci.get(p, (np.nan, np.nan))
        row.update(span_factor=fit.span_factor if fit.ok else np.nan, resolved=fit.resolved)
        row.update(delta_bic=sh.delta_bic, sharp=sh.sharp)
        for t in targets:
            c = crossing(curve, t, **kw)
            crosses[(key, t)] = c
            tag = f"cross{round(100 * t):d}"
            row.update({tag: c.x_cross, f"{tag}_lo": c.ci[0], f"{tag}_hi": c.ci[1], f"{tag}_ok": c.ok})
        rows.append(row)
        fits[key], sharps[key] = fit, sh
    table = pd.DataFrame(rows)
    if len(table):
        table = table.sort_values("M").reset_index(drop=True)
    return ThresholdSet(x, by, table, fits, crosses, sharps)

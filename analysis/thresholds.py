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
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy.stats import chi2

from analysis.curves import Curve, isotonic, monotonicity_problem, resample
from analysis.dispersion import Dispersion
from analysis.dispersion import estimate as estimate_dispersion
from analysis.fitting import EPS, batched_minimize, binomial_loglik, binomial_objective, percentile_ci, surface_warnings
from analysis.jump import DEFAULT_BOUND, JumpTest, jump_test, power_rise

LN9 = float(np.log(9.0))
MIN_FIT_P = 0.01  # goodness-of-fit p below which a sigmoid's lack of fit becomes its dispersion (fit_thresholds)
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
    dispersion: Dispersion = field(default_factory=Dispersion)
    unit: str = ""  # what the bootstrap resampled

    @property
    def span_factor(self) -> float:
        """x90 / x10: the factor in x over which accuracy rises from 10% to 90% of its range (= 81 ** w)."""
        return float(np.exp(2 * LN9 * self.w))

    def predict(self, x) -> np.ndarray:
        return sigmoid_curve(x, self.x_star, self.w, self.lo, self.hi)

    def x_at(self, level: float) -> tuple[float, tuple[float, float]]:
        """x where the fitted curve reaches accuracy `level`, with its CI from the bootstrap draws (+inf when the
        level is above the ceiling, -inf below the floor, in the fit or in a draw)."""
        point = float(_level_x(np.array([[self.x_star, self.w, self.lo, self.hi]]), level)[0])
        if not self.ok or len(self.boot) == 0:
            return point, (np.nan, np.nan)
        lo, hi = percentile_ci(self.level_draws(level), self.level)
        return point, (float(lo), float(hi))

    def level_draws(self, level: float) -> np.ndarray:
        """Bootstrap draws of the x where the curve reaches `level`."""
        return _level_x(self.boot, level)

    def band(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise bootstrap CI of the fitted curve at x."""
        x = np.asarray(x, float)
        if not self.ok or len(self.boot) == 0:
            return np.full(x.shape, np.nan), np.full(x.shape, np.nan)
        b = self.boot
        curves = sigmoid_curve(x[None, :], b[:, :1], b[:, 1:2], b[:, 2:3], b[:, 3:4])
        return percentile_ci(curves, self.level)


def _level_x(params_Bx4: np.ndarray, level: float) -> np.ndarray:
    """x at which sigmoids (x*, w, lo, hi) reach `level`: +inf above the ceiling, -inf below the floor."""
    x_star, w, lo, hi = params_Bx4.T
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (level - lo) / (hi - lo)
        x = x_star * np.exp(w * np.log(q / (1 - q)))
    return np.where(q >= 1, np.inf, np.where(q <= 0, -np.inf, x))


def _per_seed_x_star(curve: Curve, lower, upper) -> np.ndarray | None:
    """log x* of each seed's own fit, when >= 2 seeds give a fit located in the range with a sampled x on its rise
    (a bracketed fit does not locate x*); else None."""
    per_seed = []
    for s in np.unique(curve.seed):
        rows = curve.seed == s
        sub = Curve.from_arrays(curve.x[rows], curve.k[rows], curve.n[rows], x_name=curve.x_name)
        problem, xs, k, n = _sigmoid_problem(sub)
        if problem:
            continue
        th, converged, f_above, f_below, _ = _point_fit(np.log(xs), k, n, lower, upper)
        ll = float(binomial_loglik(_model(th[None], np.log(xs))[0][0], k, n))
        placed = not _placement_problem("x", xs, k, n, ll, float(np.exp(th[0])), f_above, f_below, 0.01)
        on_rise = np.any(np.abs(np.log(xs) - th[0]) <= np.log(19.0) * np.exp(th[1]))
        if converged and placed and on_rise:
            per_seed.append(th[0])
    return np.array(per_seed) if len(per_seed) >= 2 else None


def _seed_t_draws(log_x_star: float, per_seed: np.ndarray, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """Draws of log x* from the t interval of the seeds' own fits: log x* + sd / sqrt(S) t(S - 1). Few seeds give
    it the wide tails that resampling them cannot (the bootstrap of 2 seeds halves their variance)."""
    s = len(per_seed)
    return log_x_star + per_seed.std(ddof=1) / np.sqrt(s) * rng.standard_t(s - 1, size=n_draws)


def _failed(cls, x_name: str, reason: str, msgs: list[str] | None = None, **kw):
    msgs = msgs or []
    surface_warnings(msgs, f"{cls.__name__} ({x_name})")
    return cls(ok=False, reason=reason, x_name=x_name, warnings=msgs, **kw)


def _sigmoid_problem(curve: Curve, phi: float = 1.0) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """Why the curve (of dispersion phi) cannot take a sigmoid ("" if it can), and its pooled counts (xs_X, k_X,
    n_X)."""
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
        problem = monotonicity_problem(curve, phi=phi)
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


def resampling(disp: Dispersion, over: str, unit: str, replicated: bool = False) -> tuple[dict, str]:
    """Keyword arguments of analysis.curves.resample for a curve of dispersion `disp`, and the unit in words.

    Seed scatter measured as phi (from_seeds) is drawn as phi, so the runs are not resampled on top of it;
    otherwise the runs are resampled (when replicated) and the items carry the clustering phi.
    """
    if unit == "person":
        return dict(over=over, unit=unit), "people (items of a person perfectly correlated)"
    over_items = "items" if over in ("both", "items") else over
    if disp.from_misfit:
        kw = dict(over=over_items, unit=unit, phi=disp.phi, phi_df=disp.misfit_df)
        return kw, f"effective items n/{disp.phi:.2f} (phi from the sigmoid's lack of fit on {disp.misfit_df:g} df)"
    if disp.from_seeds:
        kw = dict(over=over_items, unit=unit, phi=disp.phi, phi_df=disp.seed_df)
        return kw, f"effective items n/{disp.phi:.2f} (phi from the seed scatter on {disp.seed_df:g} df)"
    text = "runs at each x, then " if over in ("both", "seeds") and replicated else ""
    return dict(over=over, unit=unit, phi=disp.items), f"{text}effective items n/{disp.items:.2f} (person clustering)"


def _bootstrap(
    curve: Curve, lx: np.ndarray, theta: np.ndarray, lower, upper, *, n_boot, seed, resample_kw, level, per_seed=None
) -> tuple[np.ndarray, dict[str, tuple[float, float]], list[str]]:
    """Refit every resample from the point estimate: (boot_Bx4 in PARAMS order, percentile CIs, messages); with
    `per_seed` (log x* of each seed's fit) the x* draws are the seeds' t interval instead."""
    msgs = []
    rng = np.random.default_rng(seed)
    p_fit = _model(theta[None], np.log(curve.x))[0][0]  # parametric: items drawn around the fitted curve
    kb, nb = resample(curve, n_boot, rng, **resample_kw, p_fit=p_fit)
    th_b, _, conv = batched_minimize(_objective(lx, kb, nb), np.broadcast_to(theta, (n_boot, 4)).copy(), lower, upper)
    if conv.mean() < 0.98:
        msgs.append(f"{(~conv).sum()} of {n_boot} bootstrap refits did not converge and were dropped")
    th_b = th_b[conv]
    boot = np.column_stack(
        [np.exp(th_b[:, 0]), np.exp(th_b[:, 1]), th_b[:, 2], th_b[:, 2] + th_b[:, 3] * (1 - th_b[:, 2])]
    )
    if per_seed is not None:
        boot[:, 0] = np.exp(_seed_t_draws(theta[0], per_seed, len(boot), rng))
    ci = {p: tuple(float(v) for v in percentile_ci(boot[:, i], level)) for i, p in enumerate(PARAMS)}
    spans = np.exp(2 * LN9 * boot[:, 1])
    ci["span_factor"] = tuple(float(v) for v in percentile_ci(spans, level))
    return boot, ci, msgs


def _bracket(name: str, xs: np.ndarray, lx: np.ndarray, theta: np.ndarray, ci: dict) -> str:
    """If fewer than 2 sampled x lie on the rise (5% to 95% of it), widen `ci` in place and say so; else "".

    Then the data only bracket the transition: the likelihood is flat along the ridge of steeper curves through the
    points (a bootstrap that refits from the estimate stays on it), so x* is only known to lie between the last
    sampled x below the rise and the first above it, and w is only bounded above by their spacing.
    """
    w = float(np.exp(theta[1]))
    z = (lx - theta[0]) / w
    on_rise = int(np.sum(np.abs(z) <= np.log(19.0)))
    if on_rise >= 2:
        return ""
    below = int(np.flatnonzero(z < -np.log(19.0))[-1]) if np.any(z < -np.log(19.0)) else 0
    above = int(np.flatnonzero(z > np.log(19.0))[0]) if np.any(z > np.log(19.0)) else len(xs) - 1
    gap = lx[above] - lx[below]
    ci["x_star"] = (min(ci["x_star"][0], float(xs[below])), max(ci["x_star"][1], float(xs[above])))
    ci["w"] = (0.0, max(ci["w"][1], gap / (2 * np.log(19.0))))
    ci["span_factor"] = (1.0, max(ci["span_factor"][1], float(np.exp(LN9 * gap / np.log(19.0)))))
    return (
        f"{on_rise or 'no'} sampled {name} on the rise, which lies between {name}={xs[below]:g} and "
        f"{name}={xs[above]:g}: x* is bracketed by them and w is only bounded above"
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
    dispersion: Dispersion | None = None,
) -> SigmoidFit:
    """Maximum quasi-likelihood sigmoid in log x with percentile bootstrap CIs (n_boot resamples, refitted jointly).

    The counts are divided by the dispersion phi (default: analysis.dispersion.estimate(curve)) in every
    likelihood, and the bootstrap draws phi times the binomial spread (see `resampling`). Fails (ok=False) when the
    counts are unusable, there are fewer than 3 distinct x, accuracy is all 0 or all 1, the curve falls
    significantly, the sigmoid is no better than a constant (likelihood-ratio p >= min_rise_p), or the data do not
    place x* inside the sampled range: a fit with x* pinned beyond either end is not rejected by a likelihood-ratio
    test at 5% (a rise seen only at the last point could be the foot of a later transition).
    """
    name = curve.x_name
    disp = dispersion if dispersion is not None or curve.check() else estimate_dispersion(curve)
    problem, xs, k, n = _sigmoid_problem(curve, disp.phi if disp is not None else 1.0)
    if problem:
        return _failed(SigmoidFit, name, problem)
    k, n = k / disp.phi, n / disp.phi  # quasi-binomial: effective counts
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
    per_seed = _per_seed_x_star(curve, lower, upper)
    resample_kw, unit_text = resampling(disp, over, unit, len(curve) > len(xs))
    if per_seed is not None:
        unit_text = f"x*: t interval of {len(per_seed)} seeds' own fits; w, floor and ceiling: {unit_text}"
    boot, ci, boot_msgs = _bootstrap(
        curve,
        lx,
        theta,
        lower,
        upper,
        n_boot=n_boot,
        seed=seed,
        resample_kw=resample_kw,
        level=level,
        per_seed=per_seed,
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
        dispersion=disp,
        unit=unit_text,
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


def crossing_BxX(lx_X: np.ndarray, f_BxX: np.ndarray, target: float) -> np.ndarray:
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
    dispersion: Dispersion | None = None,
) -> CrossingResult:
    """The paper's threshold: where accuracy crosses `target`, with a bootstrap CI (resampled as in fit_sigmoid).

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
    disp = dispersion if dispersion is not None or problem else estimate_dispersion(curve)
    if not problem:
        problem = monotonicity_problem(curve, phi=disp.phi)
    if not problem:
        iso = isotonic(k / n, n)[0]
        if iso[-1] < target:
            problem = f"accuracy never reaches {target:g} (monotone fit peaks at {iso[-1]:.3f}, {name}={xs[-1]:g})"
        elif iso[0] >= target:
            problem = f"accuracy is already {iso[0]:.3f} >= {target:g} at the smallest {name}={xs[0]:g}"
    if problem:
        return _failed(CrossingResult, name, problem, target=target)
    lx = np.log(xs)
    x_cross = float(crossing_BxX(lx, iso[None], target)[0])
    kb, nb = resample(curve, n_boot, np.random.default_rng(seed), **resampling(disp, over, unit)[0])
    boot = crossing_BxX(lx, isotonic(kb / nb, nb), target)
    lo, hi = percentile_ci(boot, level)
    msgs = []
    outside = float(np.mean(~np.isfinite(boot)))
    if outside > 0:
        msgs.append(f"{outside:.1%} of resamples put the {target:g} crossing outside the sampled {name} range")
    surface_warnings(msgs, f"crossing ({name})")
    return CrossingResult(True, "", name, target, x_cross, (float(lo), float(hi)), boot, level, msgs)


def steepness(fit: SigmoidFit, bound: float = DEFAULT_BOUND) -> str:
    """The 10%->90% rise factor with its CI beside named references: a measurement, not a verdict."""
    if not fit.ok:
        return f"no steepness: {fit.reason}"
    lo, hi = fit.ci["span_factor"]
    refs = ", ".join(f"x^{k} within x{power_rise(k):.2f}" for k in (1, 2, 3, 4))
    return (
        f"10%->90% rise within x{fit.span_factor:.2f} {format_ci(lo, hi, '.2f')} in {fit.x_name} "
        f"(references: a power law {refs}; the jump test's bound x{bound:.2f})"
    )


def format_ci(lo, hi, fmt=".3g") -> str:
    """ "[lo, hi]" with both ends in format `fmt`."""
    return f"[{lo:{fmt}}, {hi:{fmt}}]"


MIN_EXPECTED = 5.0  # effective expected successes and failures per cell of the goodness of fit


def _merged_cells(expect_k: np.ndarray, expect_miss: np.ndarray) -> np.ndarray:
    """Cell index of each x: adjacent x merged until a cell expects >= MIN_EXPECTED of both outcomes (a short
    remainder joins the last cell)."""
    cell = np.zeros(len(expect_k), int)
    current, got_k, got_miss = 0, 0.0, 0.0
    for i in range(len(expect_k)):
        cell[i] = current
        got_k, got_miss = got_k + expect_k[i], got_miss + expect_miss[i]
        if got_k >= MIN_EXPECTED and got_miss >= MIN_EXPECTED:
            current, got_k, got_miss = current + 1, 0.0, 0.0
    if current and cell[-1] == current:  # the remainder fell short
        cell[cell == current] = current - 1
    return cell


def pearson_misfit(fit: SigmoidFit, curve: Curve) -> tuple[float, int]:
    """(the sigmoid's Pearson X^2 / phi, its C - 4 degrees of freedom); (NaN, 0) without spare cells. The cells
    are the pooled x, adjacent ones merged until each expects >= MIN_EXPECTED effective (count / phi) correct and
    wrong answers: Pearson terms of a tail cell expecting 0.1 answers are not chi-square (one clustered person
    answering gave terms of 100)."""
    xs, k, n = curve.pooled()
    if not fit.ok or len(xs) <= 4:
        return np.nan, 0
    phi = fit.dispersion.phi
    p = np.clip(fit.predict(xs), EPS, 1 - EPS)
    cell = _merged_cells(n * p / phi, n * (1 - p) / phi)
    cells = int(cell[-1] + 1)
    if cells <= 4:
        return np.nan, 0
    k_c, e_c, v_c = (np.bincount(cell, w, cells) for w in (k, n * p, n * p * (1 - p)))
    return float(np.sum((k_c - e_c) ** 2 / v_c) / phi), cells - 4


def goodness_of_fit(fit: SigmoidFit, curve: Curve) -> float:
    """p-value of the sigmoid's Pearson X^2 / phi on its degrees of freedom (pearson_misfit; NaN without any)."""
    x2, df = pearson_misfit(fit, curve)
    return float(chi2.sf(x2, df)) if df else np.nan


@dataclass
class ThresholdSet:
    """Per-group fits of accuracy vs x: a tidy table plus the full result objects (keyed by group value)."""

    x: str
    by: str
    table: pd.DataFrame
    fits: dict
    crossings: dict
    jumps: dict
    curves: dict


KNOWLEDGE_LEVEL = "half the knowledge-only accuracy of this size"


def _level(levels: dict | None, key, fit: SigmoidFit, kind: str) -> tuple[float, str]:
    """The accuracy level whose crossing is the group's threshold, and what it is."""
    if levels and key in levels and np.isfinite(levels[key]):
        return float(levels[key]), kind
    return (fit.lo + fit.hi) / 2 if fit.ok else np.nan, "the midpoint of the fitted floor and ceiling"


def _group_row(
    key, g, x, by, group_x, levels, level_kind, targets, kw, jump_kw
) -> tuple[dict, SigmoidFit, dict, JumpTest, Curve]:
    curve = Curve.from_frame(g, x)
    disp = estimate_dispersion(curve)
    fit = fit_sigmoid(curve, dispersion=disp, **kw)
    jump = jump_test(curve, dispersion=disp.phi, seed=kw["seed"], **jump_kw)
    gof_p = goodness_of_fit(fit, curve)
    if gof_p < MIN_FIT_P:  # quasi-likelihood: the scatter about the curve widens its intervals, estimates unchanged
        x2, df = pearson_misfit(fit, curve)
        fit = fit_sigmoid(curve, dispersion=replace(disp, misfit=disp.phi * x2 / df, misfit_df=df), **kw)
    gx = float(g[group_x].median()) if group_x else float(key) if np.isscalar(key) else np.nan
    row = {by: key, "M": gx, "n_points": len(curve.xs), "ok": fit.ok, "reason": fit.reason}
    row.update({p: getattr(fit, p) for p in PARAMS})
    for p in (*PARAMS, "span_factor"):
        row[f"{p}_lo"], row[f"{p}_hi"] = fit.ci.get(p, (np.nan, np.nan))
    level, level_kind = _level(levels, key, fit, level_kind)
    x_level, (x_level_lo, x_level_hi) = fit.x_at(level) if fit.ok else (np.nan, (np.nan, np.nan))
    row.update(level=level, level_kind=level_kind, x_level=x_level, x_level_lo=x_level_lo, x_level_hi=x_level_hi)
    on_rise = int(np.sum(np.abs(np.log(curve.xs) - np.log(fit.x_star)) <= LN9 * fit.w)) if fit.ok else 0
    row.update(span_factor=fit.span_factor if fit.ok else np.nan, resolved=fit.resolved, points_on_rise=on_rise)
    row.update(dispersion=fit.dispersion.phi if fit.ok else disp.phi, unit=fit.unit, gof_p=gof_p)
    row.update(jump_tested=jump.tested, jump_p=jump.p_value, jump_p_se=jump.p_mc_se, jump_lr=jump.lr)
    crosses = {}
    for t in targets:
        c = crossing(curve, t, dispersion=disp, **kw)
        crosses[(key, t)] = c
        tag = f"cross{round(100 * t):d}"
        row.update({tag: c.x_cross, f"{tag}_lo": c.ci[0], f"{tag}_hi": c.ci[1], f"{tag}_ok": c.ok})
    return row, fit, crosses, jump, curve


def fit_thresholds(
    df: pd.DataFrame,
    x: str = "ratio",
    by: str = "size",
    *,
    group_x: str | None = None,
    targets: tuple[float, ...] = (0.4, 0.8),
    levels: dict | None = None,
    level_kind: str = KNOWLEDGE_LEVEL,
    n_boot: int = 1000,
    over: str = "both",
    unit: str = "item",
    level: float = 0.95,
    seed: int = 0,
    jump_draws: int = 199,
    bound: float = DEFAULT_BOUND,
) -> ThresholdSet:
    """Per value of `by`: a sigmoid, the threshold at an accuracy level, crossings at `targets` and the jump test.

    `group_x` is a numeric column describing the group (for by="size": the parameter count, used as M); the table
    gets its median per group as column "M" (or the group value itself when by is numeric and group_x is None).
    `levels` maps a group to the accuracy whose crossing of the fitted sigmoid is its threshold x_level, and
    `level_kind` says what those levels are (default: half the knowledge-only accuracy of that size); groups without
    one use the fitted midpoint. Pass final rows
    (analysis.io.final_rows) unless you mean to fit along training.
    """
    missing = [c for c in (x, by, *([group_x] if group_x else [])) if c not in df.columns]
    if missing:
        raise KeyError(f"fit_thresholds needs columns {missing}, which the table lacks")
    rows, fits, crosses, jumps, curves = [], {}, {}, {}, {}
    kw = dict(n_boot=n_boot, over=over, unit=unit, level=level, seed=seed)
    for key, g in df.groupby(by, sort=False):
        row, fits[key], c, jumps[key], curves[key] = _group_row(
            key, g, x, by, group_x, levels, level_kind, targets, kw, dict(n_draws=jump_draws, bound=bound)
        )
        rows.append(row)
        crosses.update(c)
    table = pd.DataFrame(rows)
    if len(table):
        table = table.sort_values("M").reset_index(drop=True)
    return ThresholdSet(x, by, table, fits, crosses, jumps, curves)

"""Phase transition or steep smooth curve: a likelihood-ratio jump test at one size, with a stated steepness bound.

At finite size every curve is smooth, and a steep enough sigmoid is a step, so "is it sharp?" needs a reference.
The reference is the rise factor F = x90 / x10, the factor in x over which accuracy climbs from 10% to 90% of its
range (a power law acc ∝ x^k rises within 9^(1/k): x^3 within 2.08, x^4 within 1.73).

- H0, smooth with bounded steepness: logistic and probit curves in log x (Hill curves are the logistic in log x) and
  in x, and the capped power law lo + (hi - lo) min(1, (x / x_c)^k); each constrained to a rise factor >= `bound`.
- H1, change points (cf. R's chngpt): a step (lo below c, hi from c on, c between two sampled x) and a ramp (a
  hinge up to a plateau: flat at lo, linear in log x between two sampled x at most RAMP_SPAN grid steps apart, flat
  at hi), which can be as steep as the grid can show.
- Statistic: LR = 2 [max loglik H1 - max loglik H0], clipped at 0, quasi-binomial (counts divided by the
  dispersion phi). Rejecting says: a change point fits better than any smooth curve within the bound can. (Adding
  the smooth families at any steepness to H1 gave a nested test with more power, but 13% false positives at the
  bound with 10 ratios: the parametric bootstrap misses the boundary's distribution there.)
- Null distribution: a parametric bootstrap from the best H0 fit (the least favourable smooth curve the data allow)
  with the same dispersion, both hypotheses refitted to every draw. p = (1 + #{LR* >= LR}) / (B + 1), whose
  Monte-Carlo standard error is reported beside it.

Points are the pooled counts at each distinct x (seeds summed); phi carries the seed scatter and item clustering
(analysis.dispersion). With fewer than P0 + 2 = 6 distinct x the test is not run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit, ndtr
from scipy.stats import chi2

from analysis.curves import Curve
from analysis.fitting import (
    EPS,
    batched_minimize,
    binomial_loglik,
    binomial_objective,
    finite_difference,
    single_thread_blas,
)

LN9 = float(np.log(9.0))
PROBIT_90 = 1.2815515655446004  # Phi^-1(0.9)
DEFAULT_BOUND = 9.0**0.25  # no steeper than acc ∝ x^4, the steepest smooth null of the calibration
MIN_POINTS = 6  # 4 parameters of each smooth curve + 2
STARTS_PER_FAMILY = 6


def power_rise(k: float) -> float:
    """Rise factor x90 / x10 of acc ∝ x^k (the references printed beside a measured rise)."""
    return float(9.0 ** (1.0 / k))


@dataclass(frozen=True)
class Family:
    """A smooth family p(theta, x), theta = (location, scale, lo, a) with hi = lo + a (1 - lo)."""

    name: str
    link: Callable[[np.ndarray], np.ndarray]
    half_range: float  # z90 = -z10 of the link (power: ln 9 over the whole 10%->90% rise)
    log_x: bool

    def scale_bound(self, bound: float) -> float:
        """Log-x families: the smallest scale allowed (rise factor exp(2 h s) >= bound); linear: the slope c of
        scale >= c * location (rise factor (m + h s) / (m - h s) >= bound)."""
        if self.name == "power":
            return float(np.log(bound) / LN9)  # scale = 1 / k, rise factor 9^(1/k) = exp(LN9 * scale)
        if self.log_x:
            return float(np.log(bound) / (2.0 * self.half_range))
        return float((bound - 1.0) / (self.half_range * (bound + 1.0)))

    def curve(self, theta_BxP: np.ndarray, x_X: np.ndarray, bound: float) -> np.ndarray:
        m, t, lo, a = (theta_BxP[:, i : i + 1] for i in range(4))
        c = self.scale_bound(bound)
        if self.log_x:
            scale = t  # bounded below by c in the fit
            z = (np.log(x_X)[None, :] - m) / scale
        else:
            scale = c * m + t
            z = (x_X[None, :] - m) / scale
        return lo + a * (1.0 - lo) * self.link(z)


FAMILIES = (
    Family("logistic in log x", expit, LN9, True),
    Family("probit in log x", ndtr, PROBIT_90, True),
    Family("logistic in x", expit, LN9, False),
    Family("probit in x", ndtr, PROBIT_90, False),
    Family("power", lambda z: np.minimum(1.0, np.exp(np.minimum(z, 0.0))), LN9, True),
)


def _fit_batch(curve, theta0_BxP, lower, upper, k_BxX, n_BxX) -> tuple[np.ndarray, np.ndarray]:
    """Maximum binomial likelihood of `curve(theta_BxP, rows) -> p_BxX` per row (Fisher scoring on finite-difference
    derivatives). Returns (theta_BxP, loglik_B)."""
    objective = binomial_objective(k_BxX, n_BxX, lambda theta, rows: finite_difference(curve, theta, rows))
    theta, _, _ = batched_minimize(objective, theta0_BxP, lower, upper, max_iter=100, tol=1e-10)
    return theta, binomial_loglik(curve(theta, np.arange(len(theta))), k_BxX, n_BxX)


def _starts(family: Family, x_X: np.ndarray, p_BxX: np.ndarray, bound: float) -> np.ndarray:
    """STARTS_PER_FAMILY starting points per data set: locations across the sampled range, scale at and above the
    bound, floor and ceiling from the data. Returns theta_BxSxP."""
    b = p_BxX.shape[0]
    lo0 = np.clip(p_BxX.min(axis=1), 0.0, 0.5)
    a0 = np.clip((p_BxX.max(axis=1) - lo0) / (1 - lo0), 0.05, 1.0)
    grid = np.log(x_X) if family.log_x else x_X
    locations = np.quantile(grid, [0.2, 0.5, 0.8])
    c = family.scale_bound(bound)
    if family.log_x:
        scales = (c * 1.05, c * 3.0)
    else:
        scales = (1e-3 * (x_X.max() - x_X.min()), 0.5 * (x_X.max() - x_X.min()))
    combos = [(m, s) for m in locations for s in scales][:STARTS_PER_FAMILY]
    theta = np.empty((b, len(combos), 4))
    for i, (m, s) in enumerate(combos):
        theta[:, i] = np.stack([np.full(b, m), np.full(b, s), lo0, a0], axis=1)
    return theta


def _bounds(family: Family, x_X: np.ndarray, bound: float) -> tuple[np.ndarray, np.ndarray]:
    c = family.scale_bound(bound)
    if family.log_x:
        lx = np.log(x_X)
        span = lx.max() - lx.min()
        lower = [lx.min() - 2 * span - 1.0, c, 0.0, 0.0]
        upper = [lx.max() + 2 * span + 1.0, max(50.0 * span, 10.0 * c), 1.0, 1.0]
    else:
        span = x_X.max() - x_X.min()
        lower = [0.0, 1e-6 * span, 0.0, 0.0]
        upper = [x_X.max() + 3 * span, 50.0 * span, 1.0, 1.0]
    return np.asarray(lower, float), np.asarray(upper, float)


def fit_smooth(x_X: np.ndarray, k_BxX: np.ndarray, n_BxX: np.ndarray, bound: float, theta0_FxBxP=None):
    """Best bounded smooth curve of each family for each data set: (loglik_FxB, theta_FxBxP).

    theta0_FxBxP replaces the default starts with one start per family and data set (e.g. the fits to the
    observed data, for its bootstrap draws).
    """
    b = k_BxX.shape[0]
    ll_FxB, theta_FxBxP = np.empty((len(FAMILIES), b)), np.empty((len(FAMILIES), b, 4))
    for f, family in enumerate(FAMILIES):
        starts = _starts(family, x_X, k_BxX / n_BxX, bound) if theta0_FxBxP is None else theta0_FxBxP[f][:, None]
        s = starts.shape[1]
        rows = np.repeat(np.arange(b), s)
        lower, upper = _bounds(family, x_X, bound)
        theta, ll = _fit_batch(
            lambda theta, idx, family=family: family.curve(theta, x_X, bound),
            np.clip(starts.reshape(b * s, 4), lower + 1e-9, upper - 1e-9),
            lower,
            upper,
            k_BxX[rows],
            n_BxX[rows],
        )
        pick = np.argmax(ll.reshape(b, s), axis=1)
        ll_FxB[f] = ll.reshape(b, s)[np.arange(b), pick]
        theta_FxBxP[f] = theta.reshape(b, s, 4)[np.arange(b), pick]
    return ll_FxB, theta_FxBxP


def fit_step(k_BxX: np.ndarray, n_BxX: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Best upward step per data set, closed form over the X - 1 gaps: (loglik_B, gap_B: the step is between x[g]
    and x[g + 1], lo_B, hi_B: the levels below and above it)."""
    ck, cn = np.cumsum(k_BxX, axis=1), np.cumsum(n_BxX, axis=1)
    tk, tn = ck[:, -1:], cn[:, -1:]
    below = ck[:, :-1] / cn[:, :-1]
    above = (tk - ck[:, :-1]) / (tn - cn[:, :-1])
    pooled = np.broadcast_to(tk / tn, below.shape)
    lo, hi = np.where(below <= above, below, pooled), np.where(below <= above, above, pooled)
    x = k_BxX.shape[1]
    g = np.arange(x)[None, None, :] <= np.arange(x - 1)[None, :, None]  # [1, G, X]: point x on the low side of gap g
    p = np.where(g, lo[:, :, None], hi[:, :, None])
    ll = binomial_loglik(p, k_BxX[:, None, :], n_BxX[:, None, :])
    gap, rows = ll.argmax(axis=1), np.arange(k_BxX.shape[0])
    return ll.max(axis=1), gap, lo[rows, gap], hi[rows, gap]


RAMP_SPAN = 3  # a ramp runs between sampled x at most this many grid steps apart (steeper rises are what it is for)


def ramp_corners(x_X: np.ndarray) -> np.ndarray:
    """Corner pairs (i, j) of the ramp: sampled x_i < x_j at most RAMP_SPAN grid steps apart. [G, 2]"""
    n = len(x_X)
    return np.array([(i, j) for i in range(n - 1) for j in range(i + 1, min(i + RAMP_SPAN, n - 1) + 1)])


def fit_ramp(x_X: np.ndarray, k_BxX: np.ndarray, n_BxX: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best ramp per data set: flat at lo up to x_i, linear in log x to hi at x_j, flat after (a hinge up to a
    plateau; with x_i, x_j adjacent it is as steep as the grid can show), over the pairs of `ramp_corners`:
    (loglik_B, theta_Bx4 = (log c1, log c2, lo, hi))."""
    b, lx, pairs = k_BxX.shape[0], np.log(x_X), ramp_corners(x_X)
    g = len(pairs)
    rows = np.repeat(np.arange(b), g)
    t_GxX = np.clip((lx[None, :] - lx[pairs[:, :1]]) / (lx[pairs[:, 1:]] - lx[pairs[:, :1]]), 0.0, 1.0)
    t_RxX = np.tile(t_GxX, (b, 1))

    def model(theta, idx):
        t = t_RxX[idx]
        return theta[:, :1] * (1 - t) + theta[:, 1:2] * t, np.stack([1 - t, t], axis=-1)

    p = k_BxX / n_BxX
    theta0 = np.stack([np.clip(p[:, 0], 1e-3, 0.5)[rows], np.clip(p[:, -1], 0.5, 1 - 1e-3)[rows]], axis=1)
    objective = binomial_objective(k_BxX[rows], n_BxX[rows], model)
    theta, _, _ = batched_minimize(objective, theta0, np.zeros(2), np.ones(2), max_iter=100, tol=1e-10)
    ll = binomial_loglik(model(theta, np.arange(len(theta)))[0], k_BxX[rows], n_BxX[rows]).reshape(b, g)
    pick = ll.argmax(axis=1)
    best, corners = theta.reshape(b, g, 2)[np.arange(b), pick], lx[pairs[pick]]
    return ll[np.arange(b), pick], np.column_stack([corners, best])


def fit_jump(x_X, k_BxX, n_BxX) -> tuple[np.ndarray, np.ndarray]:
    """Best change-point model per data set: (loglik_B, 0 = step / 1 = ramp)."""
    step = fit_step(k_BxX, n_BxX)[0]
    ramp = fit_ramp(x_X, k_BxX, n_BxX)[0]
    return np.maximum(step, ramp), (ramp > step).astype(int)


@dataclass
class JumpTest:
    """Result of `jump_test`. tested is False (and `reason` says why) when the data cannot carry the test."""

    tested: bool
    reason: str
    bound: float
    dispersion: float
    n_points: int
    lr: float = np.nan
    p_value: float = np.nan
    p_mc_se: float = np.nan
    n_draws: int = 0
    smooth_family: str = ""
    smooth_theta: np.ndarray = field(default_factory=lambda: np.full(4, np.nan))
    jump_model: str = ""
    jump_theta: np.ndarray = field(default_factory=lambda: np.full(4, np.nan))  # see jump_curve
    gof_p: float = np.nan  # goodness of fit of the best smooth curve: Pearson X^2 / phi vs chi2(X - 4)
    x: np.ndarray = field(default_factory=lambda: np.empty(0))
    level: float = 0.05

    @property
    def rejects(self) -> bool:
        return self.tested and self.p_value <= self.level

    def smooth_curve(self, x) -> np.ndarray:
        """The best bounded smooth fit at x (for figures)."""
        family = next(f for f in FAMILIES if f.name == self.smooth_family)
        return family.curve(self.smooth_theta[None, :], np.asarray(x, float), self.bound)[0]

    def jump_curve(self, x) -> np.ndarray:
        """The best change-point fit at x (for figures). jump_theta is (log c1, log c2, lo, hi): a ramp from lo at
        c1 to hi at c2, or a step (c1 = c2, placed at the geometric middle of its gap)."""
        lx, (c1, c2, lo, hi) = np.log(np.asarray(x, float)), self.jump_theta
        if c2 <= c1:
            return np.where(lx < c1, lo, hi)
        return lo + (hi - lo) * np.clip((lx - c1) / (c2 - c1), 0.0, 1.0)

    def describe(self) -> str:
        if not self.tested:
            return f"jump test not run: {self.reason}"
        return (
            f"LR = {self.lr:.2f} for a {self.jump_model} against the best smooth curve no steeper than a rise factor "
            f"of {self.bound:.3g} ({self.smooth_family}), p = {self.p_value:.3f} ± {self.p_mc_se:.3f} (Monte-Carlo, "
            f"{self.n_draws} draws), dispersion {self.dispersion:.2f}, {self.n_points} points"
        )


@dataclass(frozen=True)
class _Batch:
    """The jump test of R curves on one design x_X (quasi counts k / phi, n / phi)."""

    lr_R: np.ndarray
    p_R: np.ndarray
    family_R: np.ndarray
    theta_RxP: np.ndarray
    jump_R: np.ndarray
    p_hat_RxX: np.ndarray


def _lr(x_X, kq_RxX, nq_RxX, bound, theta0_FxRxP=None):
    """LR of the change points against the bounded smooth families: (lr_R, H0 logliks FxR, H0 thetas FxRxP, best
    change point_R: 0 step, 1 ramp)."""
    ll0_FxR, theta_FxRxP = fit_smooth(x_X, kq_RxX, nq_RxX, bound, theta0_FxRxP)
    ll1, which = fit_jump(x_X, kq_RxX, nq_RxX)
    return np.maximum(2.0 * (ll1 - ll0_FxR.max(axis=0)), 0.0), ll0_FxR, theta_FxRxP, which


def jump_batch(x_X, k_RxX, n_RxX, phi_R, bound: float, n_draws: int, rng: np.random.Generator) -> _Batch:
    """The jump test of R curves (pooled counts on one design), each with its own dispersion and null draws."""
    r = k_RxX.shape[0]
    phi = np.asarray(phi_R, float)[:, None]
    with single_thread_blas():
        lr, ll0_FxR, theta_FxRxP, which = _lr(x_X, k_RxX / phi, n_RxX / phi, bound)
        best = np.argmax(ll0_FxR, axis=0)
        theta = theta_FxRxP[best, np.arange(r)]
        p_hat = np.stack([FAMILIES[f].curve(theta[i : i + 1], x_X, bound)[0] for i, f in enumerate(best)])
        p_hat = np.clip(p_hat, EPS, 1 - EPS)
        n_eff = np.maximum(np.round(n_RxX / phi), 1).astype(np.int64)
        kb = rng.binomial(n_eff[:, None, :], p_hat[:, None, :], size=(r, n_draws, len(x_X))).astype(float)
        nb = np.broadcast_to(n_eff[:, None, :].astype(float), kb.shape)
        starts = np.repeat(theta_FxRxP, n_draws, axis=1)  # each draw starts from its curve's fits
        lrb = _lr(x_X, kb.reshape(r * n_draws, -1), nb.reshape(r * n_draws, -1), bound, starts)[0]
    exceed = (lrb.reshape(r, n_draws) >= lr[:, None] - 1e-9).sum(axis=1)
    return _Batch(lr, (1.0 + exceed) / (n_draws + 1.0), best, theta, which, p_hat)


def _jump_theta(x_X: np.ndarray, kq_1xX: np.ndarray, nq_1xX: np.ndarray, model: str) -> np.ndarray:
    """(log c1, log c2, lo, hi) of the best `model` for one curve (a step has c1 = c2)."""
    if model == "ramp":
        return fit_ramp(x_X, kq_1xX, nq_1xX)[1][0]
    _, gap, lo, hi = fit_step(kq_1xX, nq_1xX)
    lx = np.log(x_X)
    c = 0.5 * (lx[gap[0]] + lx[gap[0] + 1])
    return np.array([c, c, lo[0], hi[0]])


def jump_test(
    curve: Curve,
    *,
    dispersion: float = 1.0,
    bound: float = DEFAULT_BOUND,
    n_draws: int = 199,
    level: float = 0.05,
    seed: int = 0,
) -> JumpTest:
    """Test "the curve jumps" against "it is a smooth curve no steeper than `bound`" (see the module docstring)."""
    xs, k, n = curve.pooled()
    base = dict(bound=bound, dispersion=dispersion, n_points=len(xs), x=xs, level=level)
    problem = curve.check()  # unusable counts (n_eval 0, NaN, x <= 0) cannot be drawn from
    if problem:
        return JumpTest(False, problem, **base)
    if len(xs) < MIN_POINTS:
        return JumpTest(False, f"{len(xs)} distinct {curve.x_name} values, fewer than the {MIN_POINTS} needed", **base)
    if n_draws == 0:
        return JumpTest(False, "not requested (n_draws=0)", **base)
    if not bound > 1.0 or not dispersion >= 1.0:
        raise ValueError(f"bound must be > 1 and dispersion >= 1, got bound={bound}, dispersion={dispersion}")
    res = jump_batch(xs, k[None], n[None], [dispersion], bound, n_draws, np.random.default_rng(seed))
    p, p_hat = float(res.p_R[0]), res.p_hat_RxX[0]
    jump_model = ("step", "ramp")[int(res.jump_R[0])]
    jump_theta = _jump_theta(xs, k[None] / dispersion, n[None] / dispersion, jump_model)
    pearson = float(np.sum((k - n * p_hat) ** 2 / (n * p_hat * (1 - p_hat))) / dispersion)
    return JumpTest(
        True,
        "",
        lr=float(res.lr_R[0]),
        p_value=p,
        p_mc_se=float(np.sqrt(p * (1 - p) / n_draws)),
        n_draws=n_draws,
        smooth_family=FAMILIES[int(res.family_R[0])].name,
        smooth_theta=res.theta_RxP[0],
        jump_model=jump_model,
        jump_theta=jump_theta,
        gof_p=float(chi2.sf(pearson, len(xs) - 4)),
        **base,
    )

"""Shared numerical machinery: a batched bounded Levenberg-Marquardt minimiser, Huber loss, percentile CIs, and
the warning every fit raises.

The bootstrap refits one model to B resampled data sets. Calling scipy B times is slow, so `batched_minimize` fits
every problem of a batch at once, in numpy, with a damped Gauss-Newton (Fisher-scoring) step per problem. The
sigmoid fits (analysis.thresholds) use it for their multi-start point estimate and their bootstrap; the web-loss fit
(analysis.scaling) for its bootstrap, started from a scipy L-BFGS-B point estimate.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import numpy as np

try:  # BLAS threads only slow tiny fits down (3.5x measured for fit_power_law on 2 busy cores)
    from threadpoolctl import threadpool_limits
except ImportError:  # optional: without it, fits are the same, only slower on busy machines
    threadpool_limits = None


class FitWarning(UserWarning):
    """A fit converged badly, hit a bound, or its bootstrap partly failed."""


def surface_warnings(messages: list[str], what: str) -> None:
    """Issue each message as a FitWarning "<what>: <message>", attributed to the caller of the calling fit."""
    for m in messages:
        warnings.warn(f"{what}: {m}", FitWarning, stacklevel=3)


# fun(theta_BxP, rows_B) -> (objective_B, gradient_BxP, gauss_newton_hessian_BxPxP) for problems `rows`
Objective = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
EPS = 1e-12  # probabilities are clipped to [EPS, 1 - EPS] in likelihoods


def _to_theta(u: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map unconstrained u to bounded theta; returns theta and d theta / d u."""
    both = np.isfinite(lower) & np.isfinite(upper)
    low_only = np.isfinite(lower) & ~np.isfinite(upper)
    sig = 1.0 / (1.0 + np.exp(-np.clip(u, -700, 700)))
    span = np.where(both, upper - lower, 1.0)
    theta = np.where(both, lower + span * sig, np.where(low_only, lower + np.exp(np.clip(u, -700, 700)), u))
    dtheta = np.where(both, span * sig * (1 - sig), np.where(low_only, np.exp(np.clip(u, -700, 700)), 1.0))
    return theta, dtheta


def _to_u(theta: np.ndarray, lower: np.ndarray, upper: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Inverse of _to_theta, with theta pulled just inside the bounds."""
    both = np.isfinite(lower) & np.isfinite(upper)
    low_only = np.isfinite(lower) & ~np.isfinite(upper)
    span = np.where(both, upper - lower, 1.0)
    frac = np.clip((theta - np.where(both, lower, 0.0)) / span, eps, 1 - eps)
    excess = np.maximum(theta - np.where(low_only, lower, 0.0), eps)
    return np.where(both, np.log(frac / (1 - frac)), np.where(low_only, np.log(excess), theta))


def batched_minimize(
    fun: Objective,
    theta0_BxP: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    max_iter: int = 200,
    tol: float = 1e-9,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimise B independent problems at once with bounded Levenberg-Marquardt (Marquardt diagonal scaling).

    lower/upper have shape (P,) or (B, P) (per-problem bounds). Bounds are enforced by reparametrising (logistic
    for two finite bounds, exp for a lower bound only). Returns (theta_BxP, objective_B, converged_B); a problem
    counts as converged when a full LM cycle no longer lowers its objective by more than tol * (1 + |objective|)
    or its scaled gradient vanishes.
    """
    lower = np.broadcast_to(np.asarray(lower, float), theta0_BxP.shape)
    upper = np.broadcast_to(np.asarray(upper, float), theta0_BxP.shape)
    u = _to_u(np.asarray(theta0_BxP, float), lower, upper)
    theta, dth = _to_theta(u, lower, upper)
    f, g, h = fun(theta, np.arange(u.shape[0]))
    lam = np.full(u.shape[0], 1e-3)
    done = np.zeros(u.shape[0], bool)
    eye = np.eye(u.shape[1])
    for _ in range(max_iter):
        active = ~done
        if not active.any():
            break
        gu = g[active] * dth[active]
        hu = h[active] * dth[active][:, :, None] * dth[active][:, None, :]
        diag = np.maximum(np.einsum("bii->bi", hu), 1e-300)
        lhs = hu + lam[active, None, None] * diag[:, :, None] * eye + 1e-300 * eye
        try:
            step = -np.linalg.solve(lhs, gu[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -gu / (diag * (1 + lam[active, None]))
        idx = np.flatnonzero(active)
        u_new = u[active] + step
        th_new, dth_new = _to_theta(u_new, lower[active], upper[active])
        f_new, g_new, h_new = fun(th_new, idx)
        better = np.isfinite(f_new) & (f_new < f[active])
        gain = np.where(better, f[active] - f_new, 0.0)
        acc = idx[better]
        u[acc], theta[acc], dth[acc] = u_new[better], th_new[better], dth_new[better]
        f[acc], g[acc], h[acc] = f_new[better], g_new[better], h_new[better]
        lam[acc] = np.maximum(lam[acc] / 3.0, 1e-12)
        lam[idx[~better]] *= 4.0
        scale = tol * (1.0 + np.abs(f[idx]))
        grad_small = np.abs(gu * step).sum(axis=1) < scale
        stalled = (better & (gain < scale)) | (~better & (lam[idx] > 1e10)) | grad_small
        done[idx[stalled]] = True
    return theta, f, done


def binomial_loglik(p: np.ndarray, k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Binomial log-likelihood (without the constant binomial coefficients), summed over the last axis."""
    p = np.clip(p, EPS, 1 - EPS)
    return (k * np.log(p) + (n - k) * np.log1p(-p)).sum(axis=-1)


def binomial_objective(k_BxX: np.ndarray, n_BxX: np.ndarray, model) -> Objective:
    """Normalised binomial negative log-likelihood with gradient and Fisher matrix, for batched_minimize.

    model(theta_BxP, rows_B) -> (p_BxX, jacobian_BxXxP) for the problems `rows`.
    """
    total = n_BxX.sum(axis=1)

    def fun(theta_BxP, rows):
        k, n, tot = k_BxX[rows], n_BxX[rows], total[rows, None]
        p, jac = model(theta_BxP, rows)
        p = np.clip(p, EPS, 1 - EPS)
        nll = -(k * np.log(p) + (n - k) * np.log1p(-p)).sum(axis=1) / tot[:, 0]
        resid = (n * p - k) / (p * (1 - p)) / tot
        grad = np.einsum("bx,bxp->bp", resid, jac)
        fisher = np.einsum("bx,bxp,bxq->bpq", n / (p * (1 - p)) / tot, jac, jac)
        return nll, grad, fisher

    return fun


def finite_difference(curve, theta_BxP: np.ndarray, rows: np.ndarray, rel_step: float = 1e-6):
    """(p_BxX, jacobian_BxXxP) of curve(theta_BxP, rows) -> p_BxX by forward differences, for models without
    analytic derivatives."""
    p = curve(theta_BxP, rows)
    h_BxP = rel_step * np.maximum(1.0, np.abs(theta_BxP))
    eye = np.eye(theta_BxP.shape[1])
    cols = [(curve(theta_BxP + h_BxP[:, j : j + 1] * eye[j], rows) - p) / h_BxP[:, j : j + 1] for j in range(len(eye))]
    return p, np.stack(cols, axis=-1)


def single_thread_blas() -> contextlib.AbstractContextManager:
    """Context in which BLAS/LAPACK use one thread (when threadpoolctl is installed); for small, many fits."""
    return threadpool_limits(limits=1, user_api="blas") if threadpool_limits else contextlib.nullcontext()


def huber(r: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Huber loss rho(r), its derivative psi(r) and the IRLS weight psi(r)/r (elementwise)."""
    a = np.abs(r)
    quad = a <= delta
    rho = np.where(quad, 0.5 * r**2, delta * (a - 0.5 * delta))
    psi = np.where(quad, r, delta * np.sign(r))
    weight = np.where(quad, 1.0, delta / np.maximum(a, 1e-300))
    return rho, psi, weight


def percentile_ci(samples: np.ndarray, level: float = 0.95, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval, ignoring NaN (NaN where every sample is: no interval, no warning); +-inf
    samples are kept (an unbounded side stays unbounded)."""
    alpha = (1.0 - level) / 2.0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
        lo = np.nanquantile(samples, alpha, axis=axis, method="inverted_cdf")
        hi = np.nanquantile(samples, 1.0 - alpha, axis=axis, method="inverted_cdf")
    return lo, hi

"""Accuracy curves as counts, and the bootstrap resampling of them.

A curve is the set of results-table rows that share everything but one variable x (the mixing ratio r, the model
size M, or the tokens seen): per row, the x value, n_correct correct answers out of n_eval, the seed (run), the
number of people evaluated, the clustered standard error acc_se and, for a row that summarises several seeds, their
accuracy sd and count (analysis.dispersion estimates the overdispersion phi from these).

Bootstrap (the table holds counts, not per-item outcomes):
- over seeds: at each distinct x, the rows (runs) at that x are drawn with replacement, as many as there are.
  With one row per x this changes nothing.
- over individuals, unit "item": each drawn row's n_eval items are redrawn as n_eval / phi effective items,
  n_correct* = Binomial(n_eval / phi, acc) * phi, so the spread is phi times the binomial one (phi = 1: exactly
  the binomial draw of n_eval independent items). Where phi comes from the seed scatter on `phi_df` degrees of
  freedom, each resample draws its own phi* = phi df / chi2(df), so the intervals carry phi's uncertainty (the
  bootstrap analogue of a t interval).
- over individuals, unit "person": items of one person are taken as perfectly correlated,
  n_correct* = Binomial(n_people, acc) * n_eval / n_people (fractional counts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

OVER = ("both", "seeds", "items", "none")
UNITS = ("item", "person")


@dataclass(frozen=True)
class Curve:
    """Rows of one curve, sorted by x. Arrays have one entry per row (R rows)."""

    x: np.ndarray
    k: np.ndarray
    n: np.ndarray
    seed: np.ndarray
    n_people: np.ndarray
    se: np.ndarray
    seed_sd: np.ndarray
    n_seeds: np.ndarray
    x_name: str = "x"

    @classmethod
    def from_arrays(
        cls, x, k, n, seed=None, n_people=None, x_name: str = "x", se=None, seed_sd=None, n_seeds=None
    ) -> Curve:
        """Build a curve from per-row arrays (seed defaults to 0; n_people, se, seed_sd to unknown; n_seeds to 1)."""
        x = np.asarray(x, float)
        r = x.shape[0]

        def column(values, default) -> np.ndarray:
            return np.full(r, default, float) if values is None else np.asarray(values, float)

        seed = np.zeros(r, int) if seed is None else np.asarray(seed)
        arrays = (np.asarray(k, float), np.asarray(n, float), seed, column(n_people, np.nan), column(se, np.nan))
        arrays += (column(seed_sd, np.nan), column(n_seeds, 1.0))
        if any(a.shape != (r,) for a in arrays):
            raise ValueError(f"curve arrays must all have shape ({r},): got {[a.shape for a in arrays]}")
        order = np.argsort(x, kind="stable")
        return cls(x[order], *(a[order] for a in arrays), x_name=x_name)

    @classmethod
    def from_frame(cls, df: pd.DataFrame, x: str, *, k: str = "n_correct", n: str = "n_eval") -> Curve:
        """Build a curve from results-table rows; `x` names the column that varies."""
        missing = [c for c in (x, k, n) if c not in df.columns]
        if missing:
            raise KeyError(f"curve needs columns {missing}, which the table lacks")

        def column(name: str) -> np.ndarray | None:
            return pd.to_numeric(df[name], errors="coerce").to_numpy(float) if name in df.columns else None

        seed = df["seed"].to_numpy() if "seed" in df.columns else None
        return cls.from_arrays(
            df[x].to_numpy(float),
            df[k],
            df[n],
            seed,
            column("n_people"),
            x_name=x,
            se=column("acc_se"),
            seed_sd=column("acc_sd"),
            n_seeds=column("n_seeds"),
        )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def xs(self) -> np.ndarray:
        """Distinct x values, ascending (X of them)."""
        return np.unique(self.x)

    def pooled(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(xs_X, k_X, n_X): counts summed over the rows at each distinct x."""
        xs, inv = np.unique(self.x, return_inverse=True)
        return xs, np.bincount(inv, self.k, len(xs)), np.bincount(inv, self.n, len(xs))

    def check(self) -> str:
        """Empty string if the counts are usable, otherwise the reason they are not."""
        if len(self) == 0:
            return "no rows"
        if not (np.all(np.isfinite(self.x)) and np.all(np.isfinite(self.k)) and np.all(np.isfinite(self.n))):
            return f"{self.x_name}, n_correct and n_eval must be finite"
        if np.any(self.n <= 0):
            return "n_eval must be > 0 in every row"
        if np.any(self.k < 0) or np.any(self.k > self.n):
            return "n_correct must lie in [0, n_eval] in every row"
        if np.any(self.x <= 0):
            return f"{self.x_name} must be > 0 for a fit in log {self.x_name} (min {self.x.min():g})"
        return ""


def resample(
    curve: Curve,
    n_boot: int,
    rng: np.random.Generator,
    *,
    over: str = "both",
    unit: str = "item",
    phi: float = 1.0,
    phi_df: float = np.inf,
    p_fit: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled bootstrap counts (k_BxX, n_BxX) at the curve's distinct x values; see the module docstring.

    p_fit (one per row) draws the items around a fitted curve instead of each row's observed accuracy (a parametric
    bootstrap)."""
    if over not in OVER:
        raise ValueError(f"over must be one of {OVER}, got {over!r}")
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    xs, inv = np.unique(curve.x, return_inverse=True)
    rows = np.broadcast_to(np.arange(len(curve)), (n_boot, len(curve))).copy()
    if over in ("both", "seeds"):
        for g in range(len(xs)):
            members = np.flatnonzero(inv == g)
            rows[:, members] = members[rng.integers(0, len(members), (n_boot, len(members)))]
    k, n = curve.k[rows], curve.n[rows]
    if over in ("both", "items"):
        p = k / n if p_fit is None else np.asarray(p_fit, float)[rows]
        if unit == "item":
            phi_b = (
                np.full((n_boot, 1), phi)
                if not np.isfinite(phi_df)
                else phi * phi_df / rng.chisquare(phi_df, (n_boot, 1))
            )
            phi_b = np.maximum(phi_b, 1.0)
            m = np.maximum(np.round(n / phi_b), 1.0)
            k = rng.binomial(m.astype(np.int64), p) * (n / m)
        else:
            people = curve.n_people[rows]
            if not np.all(np.isfinite(people) & (people > 0)):
                raise ValueError("unit='person' needs a positive n_people in every row")
            m = people.astype(np.int64)
            k = rng.binomial(m, p) * (n / m)
    onehot_RxX = np.eye(len(xs))[inv]
    return k @ onehot_RxX, n @ onehot_RxX


def isotonic(p_BxX: np.ndarray, w_BxX: np.ndarray) -> np.ndarray:
    """Weighted non-decreasing least-squares fit of each row (min-max formula, vectorised over B)."""
    p_BxX, w_BxX = np.atleast_2d(p_BxX), np.atleast_2d(w_BxX)
    b, x = p_BxX.shape
    zeros = np.zeros((b, 1))
    sw = np.concatenate([zeros, np.cumsum(w_BxX, axis=1)], axis=1)
    swp = np.concatenate([zeros, np.cumsum(w_BxX * p_BxX, axis=1)], axis=1)
    j, m = np.meshgrid(np.arange(x), np.arange(x), indexing="ij")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_BxXxX = (swp[:, m + 1] - swp[:, j]) / (sw[:, m + 1] - sw[:, j])
    out = np.empty((b, x))
    for i in range(x):
        out[:, i] = np.nanmax(np.nanmin(mean_BxXxX[:, : i + 1, i:], axis=2), axis=1)
    return out


def monotonicity_problem(curve: Curve, *, phi: float = 1.0, max_drop: float = 0.05, alpha: float = 1e-3) -> str:
    """Reason string if pooled accuracy falls significantly with x, else "".

    A fall counts when accuracy at a larger x is lower by more than `max_drop` (absolute) and a two-proportion z-test
    rejects equality at level `alpha` after a Bonferroni correction over all pairs of x values; the z-test's variance
    is phi times the binomial one (phi: the curve's dispersion, analysis.dispersion).
    """
    from scipy.stats import norm

    xs, k, n = curve.pooled()
    p = k / n
    i, j = np.triu_indices(len(xs), 1)
    drop = p[i] - p[j]
    pbar = (k[i] + k[j]) / (n[i] + n[j])
    se = np.sqrt(max(phi, 1.0) * np.maximum(pbar * (1 - pbar), 1e-12) * (1 / n[i] + 1 / n[j]))
    z_crit = norm.isf(alpha / max(len(i), 1))
    bad = (drop > max_drop) & (drop / se > z_crit)
    if not bad.any():
        return ""
    worst = np.argmax(np.where(bad, drop, -np.inf))
    a, b = i[worst], j[worst]
    return (
        f"non-monotone: accuracy falls from {p[a]:.3f} at {curve.x_name}={xs[a]:g} to {p[b]:.3f} at "
        f"{curve.x_name}={xs[b]:g} (z={drop[worst] / se[worst]:.1f})"
    )

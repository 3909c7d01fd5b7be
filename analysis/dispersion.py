"""Overdispersion of accuracy counts: the design effect of clustered items and the scatter between seeds.

The items of one evaluation are not independent trials: the 25 items of a person (5 attributes x 5 templates) share
whether that person was learned, and two seeds of one run differ by more than their items' binomial noise. Both
inflate the variance of an accuracy by a factor phi over the binomial p (1 - p) / n. The fits use a quasi-binomial
likelihood: every count is divided by phi (n / phi effective items), which leaves point estimates unchanged and
gives intervals, tests and information criteria the spread the data have; phi = 1 is the binomial special case.

- items: from each run's clustered standard error `acc_se` (people as clusters, mixlab.metrics):
  deff = acc_se^2 n / (p (1 - p)), pooled (n-weighted) over the rows with accuracy in [0.02, 0.98], where it is
  estimable; 1 where no row carries acc_se;
- seeds: where >= 2 runs share an x, Pearson's X^2 of the runs about their x's pooled accuracy divided by its
  degrees of freedom (sum over x of runs - 1); from an external table's `acc_sd` over `n_seeds` seeds, the same
  ratio from each row's sd.
- misfit: where a fitted sigmoid fails its goodness of fit (analysis.thresholds.fit_thresholds), its Pearson
  X^2 / df, the quasi-likelihood estimate of phi: the scatter the runs show about the curve, as when one run per x
  cannot show its seed scatter.
phi = max(1, items, seeds, misfit). The seed and misfit estimates are chi-squares on `seed_df` and `misfit_df`
degrees of freedom, which the bootstrap propagates (analysis.curves.resample).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.curves import Curve

ESTIMABLE = (0.02, 0.98)  # accuracies whose binomial variance is large enough to estimate a design effect


@dataclass(frozen=True)
class Dispersion:
    """Variance inflation over binomial counts: from item clustering, from seed scatter, and the one used."""

    items: float = 1.0
    seeds: float = np.nan
    seed_df: float = 0.0
    misfit: float = np.nan
    misfit_df: float = 0.0

    @property
    def phi(self) -> float:
        return float(np.nanmax([1.0, self.items, self.seeds, self.misfit]))

    @property
    def from_misfit(self) -> bool:
        others = np.nanmax([self.items, self.seeds])
        return bool(np.isfinite(self.misfit) and self.misfit_df > 0 and self.misfit >= others)

    @property
    def from_seeds(self) -> bool:
        return bool(np.isfinite(self.seeds) and self.seed_df > 0 and self.seeds >= self.items and not self.from_misfit)

    def describe(self) -> str:
        parts = [f"items {self.items:.2f}"]
        if np.isfinite(self.seeds):
            parts.append(f"seeds {self.seeds:.2f} on {self.seed_df:g} df")
        if np.isfinite(self.misfit):
            parts.append(f"lack of fit {self.misfit:.2f} on {self.misfit_df:g} df")
        return f"dispersion {self.phi:.2f} ({', '.join(parts)})"


def _estimable(p: np.ndarray) -> np.ndarray:
    return (p >= ESTIMABLE[0]) & (p <= ESTIMABLE[1])


def item_dispersion(curve: Curve) -> float:
    """Pooled design effect of the rows' clustered SEs (1.0 where none is estimable)."""
    p = curve.k / curve.n
    ok = _estimable(p) & np.isfinite(curve.se) & (curve.se > 0)
    if not ok.any():
        return 1.0
    deff = curve.se[ok] ** 2 * curve.n[ok] / (p[ok] * (1 - p[ok]))
    return float(max(1.0, np.average(deff, weights=curve.n[ok])))


def seed_dispersion(curve: Curve) -> tuple[float, float]:
    """(Pearson X^2 / df of runs about their x's pooled accuracy, df); (nan, 0) with no replicated x."""
    xs, inv = np.unique(curve.x, return_inverse=True)
    chi2_sum, df = 0.0, 0.0
    for g in range(len(xs)):
        rows = np.flatnonzero(inv == g)
        pbar = curve.k[rows].sum() / curve.n[rows].sum()
        if len(rows) >= 2 and _estimable(np.array([pbar]))[0]:
            chi2_sum += float(np.sum((curve.k[rows] - curve.n[rows] * pbar) ** 2 / (curve.n[rows] * pbar * (1 - pbar))))
            df += len(rows) - 1
    ext = _external_seed_rows(curve)
    if ext is not None:
        chi2_sum, df = chi2_sum + ext[0], df + ext[1]
    return (chi2_sum / df, df) if df > 0 else (np.nan, 0.0)


def _external_seed_rows(curve: Curve) -> tuple[float, float] | None:
    """Rows that summarise several seeds (acc_sd over n_seeds runs of n / n_seeds items each): (X^2, df)."""
    ok = np.isfinite(curve.seed_sd) & (curve.n_seeds >= 2) & _estimable(curve.k / curve.n)
    if not ok.any():
        return None
    p, m = curve.k[ok] / curve.n[ok], curve.n_seeds[ok]
    per_run = curve.n[ok] / m
    ratio = curve.seed_sd[ok] ** 2 * per_run / (p * (1 - p))  # sample variance over binomial variance, per row
    return float(np.sum(ratio * (m - 1))), float(np.sum(m - 1))


def estimate(curve: Curve) -> Dispersion:
    """The dispersion of a curve's counts (see the module docstring)."""
    seeds, df = seed_dispersion(curve)
    return Dispersion(items=item_dispersion(curve), seeds=seeds, seed_df=df)

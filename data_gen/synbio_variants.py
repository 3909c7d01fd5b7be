"""SynBio variants: seeded subsampling of the training people, and power-law groups of people."""

from __future__ import annotations

import dataclasses
import math

import numpy as np


def subsample(num_people: int, rho: float, seed: int) -> np.ndarray:
    """A seeded fraction `rho` of the people (round(rho * N), at least 1), as sorted person ids.

    Training uses these people only; evaluation stays on the full population, as in the paper."""
    if isinstance(num_people, bool) or not isinstance(num_people, int) or num_people < 1:
        raise ValueError(f"num_people must be a positive int, got {num_people!r}")
    if not (isinstance(rho, int | float) and 0.0 < rho <= 1.0):
        raise ValueError(f"subsample fraction rho must lie in (0, 1], got {rho!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    count = max(1, round(rho * num_people))
    rng = np.random.default_rng([seed, 2])
    return np.sort(rng.choice(num_people, size=count, replace=False)).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class PowerLawGroups:
    """G groups of n people; person i belongs to group i // n and group k (1-based) is drawn with weight k^-beta.

    The population is already in random order, so contiguous groups are random groups."""

    num_groups: int
    group_size: int
    beta: float = 1.5

    def __post_init__(self) -> None:
        for name in ("num_groups", "group_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"PowerLawGroups.{name} must be a positive int, got {value!r}")
        if not (isinstance(self.beta, int | float) and math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"PowerLawGroups.beta must be a finite number >= 0, got {self.beta!r}")

    @property
    def num_people(self) -> int:
        return self.num_groups * self.group_size

    @property
    def group_weights(self) -> np.ndarray:
        """Sampling probability of each group [G], proportional to k^-beta for k = 1..G."""
        weights = np.arange(1, self.num_groups + 1, dtype=np.float64) ** -float(self.beta)
        return weights / weights.sum()

    def group_of(self, people: np.ndarray) -> np.ndarray:
        """Group index (0-based) of each person."""
        people = np.asarray(people)
        if people.size and (people.min() < 0 or people.max() >= self.num_people):
            raise ValueError(f"people must lie in [0, {self.num_people}) for {self.num_groups} x {self.group_size}")
        return people // self.group_size

    @property
    def person_probs(self) -> np.ndarray:
        """Per-draw probability of each person [G * n]: its group's weight shared equally within the group."""
        return np.repeat(self.group_weights / self.group_size, self.group_size)

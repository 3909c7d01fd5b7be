"""Slope: the slope of the line through two points with integer coordinates in [0, 100), x1 != x2 (paper, E.3).

Question: "Q: Find the slope of the line passing through the points (x1,y1) and (x2,y2).\\nA: " and a worked
answer under one of five templates (the paper's Table 12, with its typos fixed: template 0 divides dy by dx, not dx
by dy; template 4 names the points (x1,y1) and (x2,y2) and simplifies to k), each ending "### Final Answer: k=K".

Canonical answer K: k = (y2 - y1) / (x2 - x1) = p / q in lowest terms with q >= 1 and the sign on the numerator
(gcd(|p|, q) = 1), written "p/q", or "p" when q = 1 (so 0 is "0", -2 is "-2", 4/-6 is "-2/3"). The worked steps
show the differences as they are, unreduced ("k=-4/-6"). Pieces: every integer is one piece; K is two, p and "/q"
(empty when q = 1).

Universe: 100^3 x 99 = 99,000,000 questions. Information content (`bits_per_item`): the entropy of K for a uniform
question, from the exact distribution of (dy, dx), which are independent and triangular: P(dy = d) = (100 - |d|) /
100^2 and P(dx = d) = (100 - |d|) / (100 x 99) for d != 0.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from data_gen.synbio_tokens import TextEncoder
from data_gen.task import Task

QUESTION = "Q: Find the slope of the line passing through the points ({x1},{y1}) and ({x2},{y2}).\nA: "
ANSWERS = (
    "Let (x1,y1)=({x1},{y1}) and (x2,y2)=({x2},{y2})\n"
    "Compute the difference: x2-x1={x2}-{x1}={dx} y2-y1={y2}-{y1}={dy}\n"
    "Plug into the formula: k={dy}/{dx}\n"
    "### Final Answer: k={k_num}{k_den}",
    "Identify the coordinates: First point: (x1,y1)=({x1},{y1}) Second point: (x2,y2)=({x2},{y2})\n"
    "Compute the difference in y-values: {y2}-{y1}={dy}\n"
    "Compute the difference in x-values: {x2}-{x1}={dx}\n"
    "Divide the differences: k={dy}/{dx}\n"
    "### Final Answer: k={k_num}{k_den}",
    "We use the slope formula: k=(y2-y1)/(x2-x1)\n"
    "Plug in the coordinates: k=({y2}-{y1})/({x2}-{x1})\n"
    "Simplify the numerator and denominator: k={dy}/{dx}\n"
    "Simplify the fraction: k={k_num}{k_den}\n"
    "### Final Answer: k={k_num}{k_den}",
    "To find the slope, we use the slope formula: k=(y2-y1)/(x2-x1)\n"
    "We are given two points: ({x1},{y1}),({x2},{y2})\n"
    "Plug the values into the formula: k=({y2}-{y1})/({x2}-{x1})={dy}/{dx}\n"
    "### Final Answer: k={k_num}{k_den}",
    "The slope k between (x1,y1) and (x2,y2) is given by: k=(y2-y1)/(x2-x1)\n"
    "From the problem: (x1,y1)=({x1},{y1}),(x2,y2)=({x2},{y2})\n"
    "Substituting into the formula: k=({y2}-{y1})/({x2}-{x1})={dy}/{dx}\n"
    "Simplify: k={k_num}{k_den}\n"
    "### Final Answer: k={k_num}{k_den}",
)
FIELDS = ("x1", "y1", "x2", "y2", "dx", "dy", "k_num", "k_den")


def canonical_slope(dy: int, dx: int) -> str:
    """K for dy / dx (dx != 0), by fractions.Fraction: "p/q" in lowest terms with q >= 1, or "p" when q = 1."""
    k = Fraction(dy, dx)
    return str(k.numerator) if k.denominator == 1 else f"{k.numerator}/{k.denominator}"


def num_questions(values: int = 100) -> int:
    """Distinct questions with coordinates in [0, values): values^3 x (values - 1)."""
    return values**3 * (values - 1)


def reduced_fraction(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """p / q (q != 0) in lowest terms with the sign on the numerator: (numerator, denominator >= 1), vectorised."""
    g = np.gcd(p, q)
    sign = np.where(q < 0, -1, 1)
    return sign * p // g, sign * q // g


class SlopeTask(Task):
    """Slope questions (see the module docstring); `values` (default 100) bounds the coordinates, for tests."""

    name = "slope"
    kinds = ("final", "full")
    final_field = "k_num"
    width = 4  # x1, y1, x2, y2

    def __init__(self, tokenizer: TextEncoder, values: int = 100):
        self.values = values
        super().__init__(tokenizer, QUESTION, ANSWERS, FIELDS)

    @property
    def universe_size(self) -> int:
        return num_questions(self.values)

    def _add_pieces(self) -> None:
        v = self.values
        self._number = self.table.add([str(i) for i in range(-(v - 1), v)])  # integer i -> _number[i + v - 1]
        self._denominator = self.table.add([""] + [f"/{q}" for q in range(2, v)])  # q -> _denominator[q - 1]

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        v = self.values
        x1, y1, y2 = (rng.integers(0, v, n) for _ in range(3))
        x2 = (x1 + 1 + rng.integers(0, v - 1, n)) % v  # uniform over x2 != x1
        return np.stack([x1, y1, x2, y2], axis=1).astype(np.int64)

    def field_pieces(self, questions: np.ndarray) -> np.ndarray:
        q = np.asarray(questions, np.int64)
        x1, y1, x2, y2 = q.T
        dx, dy = x2 - x1, y2 - y1
        p, r = reduced_fraction(dy, dx)
        numbers = self._number[np.stack([x1, y1, x2, y2, dx, dy, p], axis=1) + self.values - 1]
        return np.concatenate([numbers, self._denominator[r - 1][:, None]], axis=1)

    def _differences(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(d [2v-1], P(dy = d), P(dx = d)) over d in -(v-1)..v-1."""
        v = self.values
        d = np.arange(-(v - 1), v)
        weight = (v - np.abs(d)).astype(np.float64)
        p_dx = np.where(d != 0, weight, 0.0)
        return d, weight / weight.sum(), p_dx / p_dx.sum()

    def _slopes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (dy, dx) pair reduced: (numerator, denominator, probability), flattened."""
        d, p_dy, p_dx = self._differences()
        dy, dx = np.meshgrid(d, d, indexing="ij")
        keep = dx != 0
        num, den = reduced_fraction(dy[keep], dx[keep])
        return num, den, np.outer(p_dy, p_dx)[keep]

    def field_distributions(self) -> list[tuple[np.ndarray, np.ndarray]]:
        v = self.values
        coordinate = (self._number[v - 1 :], np.full(v, 1.0 / v))
        d, p_dy, p_dx = self._differences()
        num, den, prob = self._slopes()
        k_num = np.bincount(num + v - 1, weights=prob, minlength=2 * v - 1)
        k_den = np.bincount(den - 1, weights=prob, minlength=v - 1)
        return [
            coordinate,
            coordinate,
            coordinate,
            coordinate,
            (self._number, p_dx),
            (self._number, p_dy),
            (self._number, k_num),
            (self._denominator, k_den),
        ]

    def answer_probabilities(self) -> np.ndarray:
        num, den, prob = self._slopes()
        _, answer = np.unique(num * self.values + den, return_inverse=True)
        return np.bincount(answer, weights=prob)

    def text_fields(self, question: np.ndarray) -> dict[str, str]:
        x1, y1, x2, y2 = (int(v) for v in question)
        num, _, den = canonical_slope(y2 - y1, x2 - x1).partition("/")
        fields = dict(x1=x1, y1=y1, x2=x2, y2=y2, dx=x2 - x1, dy=y2 - y1, k_num=num, k_den=f"/{den}" if den else "")
        return {name: str(value) for name, value in fields.items()}

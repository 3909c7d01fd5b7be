"""Max-over-N: the maximum of N integers drawn uniformly from [0, 100) (paper, E.4; the paper's N is 30).

Document: "Q: Find the maximum of the following numbers: a1, a2, ..., aN.\\nA: M" with M = max(a). One template.
Pieces: every list entry is one piece, the answer " M" another (with its leading space, as SynBio's values).
Evaluation has one item kind, "final": prompt = the question and "A:", value = " M" + EOS.

Universe: 100^N questions (lists, order and repeats included). Information content (`bits_per_item`): the entropy
of M for a uniform question, P(M = m) = ((m + 1)^N - m^N) / 100^N, computed in exact integers: 3.14 bits at
N = 30, where M is 99 with probability 1 - 0.99^30 = 0.26.
"""

from __future__ import annotations

import numpy as np

from data_gen.synbio_tokens import TextEncoder
from data_gen.task import Task, check_count


def question_template(n: int) -> str:
    numbers = ", ".join(f"{{a{i}}}" for i in range(n))
    return f"Q: Find the maximum of the following numbers: {numbers}.\nA:"


def num_questions(n: int, values: int = 100) -> int:
    """Distinct questions (ordered lists with repeats): values^n."""
    return values**n


def max_probabilities(n: int, values: int) -> np.ndarray:
    """P(max of n uniform draws from [0, values) = m) for m = 0..values-1, from exact integer counts."""
    total = values**n
    return np.array([((m + 1) ** n - m**n) / total for m in range(values)], np.float64)


class MaxOfNTask(Task):
    """Max-over-N questions (see the module docstring); `values` (default 100) bounds the entries, for tests."""

    name = "max_of_n"
    kinds = ("final",)
    final_field = "m"

    def __init__(self, tokenizer: TextEncoder, n: int = 30, values: int = 100):
        self.width, self.values = check_count("n", n, 2), values
        super().__init__(tokenizer, question_template(n), ("{m}",), [f"a{i}" for i in range(n)] + ["m"])

    @property
    def universe_size(self) -> int:
        return num_questions(self.width, self.values)

    def _add_pieces(self) -> None:
        self._number = self.table.add([str(i) for i in range(self.values)])
        self._answer = self.table.add([f" {i}" for i in range(self.values)])

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(0, self.values, (n, self.width)).astype(np.int64)

    def field_pieces(self, questions: np.ndarray) -> np.ndarray:
        q = np.asarray(questions, np.int64)
        return np.concatenate([self._number[q], self._answer[q.max(axis=1)][:, None]], axis=1)

    def field_distributions(self) -> list[tuple[np.ndarray, np.ndarray]]:
        entry = (self._number, np.full(self.values, 1.0 / self.values))
        return [entry] * self.width + [(self._answer, self.answer_probabilities())]

    def answer_probabilities(self) -> np.ndarray:
        return max_probabilities(self.width, self.values)

    def text_fields(self, question: np.ndarray) -> dict[str, str]:
        entries = [int(v) for v in question]
        return {**{f"a{i}": str(v) for i, v in enumerate(entries)}, "m": f" {max(entries)}"}

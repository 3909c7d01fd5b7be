"""The SynBio evaluation set: for every (person, attribute, template), the prompt tokens and the value tokens."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

PAD_ID = 0  # padding value of `prompt` and `value`; the lengths are authoritative


ARRAY_FIELDS = ("prompt", "prompt_len", "value", "value_len", "person", "attribute", "template")


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """E evaluation items as numpy arrays, ordered by person, then attribute, then template.

    prompt [E, Lp] int32 right-padded with PAD_ID, prompt_len [E]; value [E, Lv] int32 right-padded, value_len [E];
    person [E]; attribute [E] (index into ATTRIBUTES); template [E] (index into that attribute's templates);
    pool_sizes: values per attribute (for bits accounting).
    prompt[i, :prompt_len[i]] followed by value[i, :value_len[i]] is a contiguous span of every training rendering
    of person[i] that uses that template.
    """

    prompt: np.ndarray
    prompt_len: np.ndarray
    value: np.ndarray
    value_len: np.ndarray
    person: np.ndarray
    attribute: np.ndarray
    template: np.ndarray
    pool_sizes: Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        sizes = {name: len(getattr(self, name)) for name in ARRAY_FIELDS}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"EvalSet arrays disagree in length: {sizes}")

    def __len__(self) -> int:
        return len(self.person)

    def subset(self, people: np.ndarray) -> EvalSet:
        """The items of the given people, in the original order (padding width unchanged)."""
        keep = np.isin(self.person, np.asarray(people))
        return EvalSet(**{name: getattr(self, name)[keep] for name in ARRAY_FIELDS}, pool_sizes=self.pool_sizes)


def pad_rows(flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Split `flat` into consecutive rows of `lengths` tokens, right-padded with PAD_ID: [len(lengths), max]."""
    lengths = np.asarray(lengths, dtype=np.int64)
    width = int(lengths.max()) if lengths.size else 0
    out = np.full((lengths.size, width), PAD_ID, dtype=np.int32)
    rows = np.repeat(np.arange(lengths.size), lengths)
    row_start = np.cumsum(lengths) - lengths
    cols = np.arange(flat.size) - np.repeat(row_start, lengths)
    out[rows, cols] = flat
    return out

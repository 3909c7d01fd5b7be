"""Synthetic web text whose loss-versus-capacity curve is a power law with a chosen exponent (explicit option
config.data.web="synthetic"; never a fallback).

What it models. The web is reduced to K "patterns": key -> value facts such as "bakotu is fa re mi do." (a key of
`key_syllables` syllables, a value of `value_syllables` syllables, each drawn uniformly from 64 syllables, so a value
holds 6 * value_syllables bits). A document is `facts_per_doc` facts drawn i.i.d. with Zipf frequencies
f_k ∝ k^-a (k = 1..K). Everything but the value given its key is unpredictable noise of fixed entropy, so the loss
of a learner splits into an irreducible part C and the cost of the values it has not memorised.

Why the exponent is a - 1. A learner with capacity for M patterns should memorise the M most frequent (a knapsack:
every pattern costs the same bits, the frequent ones save the most loss). Its excess loss is proportional to the
frequency mass it misses,
    tail(M) = sum_{k>M} f_k ∝ M^(1-a)      (1 << M << K, a > 1),
and its capacity in bits is proportional to M. Hence F_web(M) = C + A * M^-alpha with alpha = a - 1: a = 1.283
would mimic the paper's fitted web exponent 0.283. Two finite-size effects bend the law, so choose sizes with them
in mind (`tail_mass` gives the exact tail):
- K: tail(M) ∝ M^(1-a) - K^(1-a), so M must stay well below K (defaults: a = 1.5, K = 10^6; the local slope of
  tail(M) is -0.52 at M = 10^3 and -0.56 at M = 10^4; smaller a needs a much larger K).
- The corpus is finite and repeats every epoch: pattern k occurs about num_docs * facts_per_doc * f_k times per
  epoch, and patterns that occur less than about once behave as noise (part of C).

Documents are written to <dir>/corpus/synthetic-<key>/docs.jsonl (+ manifest.json) and go through the same
TokenStore path as real text.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from data_gen.atomic import building
from data_gen.hashing import short_hash

CONSONANTS, VOWELS = "bdfgklmnprstvz", "aeiou"
SYLLABLES = tuple(c + v for c in CONSONANTS for v in VOWELS)[:64]
GENERATOR_VERSION = 1


@dataclasses.dataclass(frozen=True)
class SyntheticWeb:
    """K key -> value patterns with Zipf(a) frequencies; documents of i.i.d. facts (see the module docstring)."""

    num_patterns: int = 1_000_000
    zipf_exponent: float = 1.5
    key_syllables: int = 4
    value_syllables: int = 4
    facts_per_doc: int = 50
    num_docs: int = 20_000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("num_patterns", "key_syllables", "value_syllables", "facts_per_doc", "num_docs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"synthetic web: {name} must be a positive int, got {value!r}")
        if not self.zipf_exponent > 1.0:
            raise ValueError(
                f"synthetic web: zipf_exponent={self.zipf_exponent} must be > 1 (the loss exponent is a - 1)"
            )
        if self.num_patterns > len(SYLLABLES) ** self.key_syllables:
            raise ValueError(
                f"synthetic web: num_patterns={self.num_patterns} exceeds the "
                f"{len(SYLLABLES) ** self.key_syllables} distinct keys of {self.key_syllables} syllables"
            )

    @classmethod
    def from_config(cls, overrides: Mapping | None) -> SyntheticWeb:
        """From a mapping of field overrides (config.data.synthetic); unknown keys are an error."""
        overrides = dict(overrides or {})
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown config.data.synthetic keys {sorted(unknown)}")
        return cls(**overrides)

    @property
    def loss_exponent(self) -> float:
        """alpha of F_web(M) = C + A * M^-alpha, M = number of memorised patterns (∝ capacity in bits)."""
        return self.zipf_exponent - 1.0

    @property
    def value_bits(self) -> float:
        return self.value_syllables * float(np.log2(len(SYLLABLES)))

    def probabilities(self) -> np.ndarray:
        """Frequency of each pattern [K], rank order (pattern 0 is the most frequent)."""
        weights = np.arange(1, self.num_patterns + 1, dtype=np.float64) ** -self.zipf_exponent
        return weights / weights.sum()

    def tail_mass(self, memorised: int | np.ndarray) -> np.ndarray:
        """Frequency mass of the patterns beyond the `memorised` most frequent ones."""
        tail = np.concatenate([np.cumsum(self.probabilities()[::-1])[::-1], [0.0]])
        return tail[np.asarray(memorised)]

    def _tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(key [K], value [K]) strings of every pattern."""
        rng = np.random.default_rng([self.seed, GENERATOR_VERSION, 0])
        syllables, n = np.array(SYLLABLES), len(SYLLABLES)
        codes = rng.choice(n**self.key_syllables, self.num_patterns, replace=False)
        key_digits = (codes[:, None] // n ** np.arange(self.key_syllables)) % n
        value_digits = rng.integers(0, n, (self.num_patterns, self.value_syllables))
        keys, values = syllables[key_digits[:, 0]], syllables[value_digits[:, 0]]
        for j in range(1, self.key_syllables):
            keys = np.char.add(keys, syllables[key_digits[:, j]])
        for j in range(1, self.value_syllables):
            values = np.char.add(np.char.add(values, " "), syllables[value_digits[:, j]])
        return keys, values

    def facts(self) -> list[str]:
        """The sentence of each pattern, "key is value."."""
        keys, values = self._tables()
        return np.char.add(np.char.add(keys, " is "), np.char.add(values, ".")).tolist()

    def pattern_ranks(self, chunk: int, num_docs: int) -> np.ndarray:
        """Pattern of every fact of `num_docs` documents of chunk `chunk` [num_docs, facts_per_doc]."""
        rng = np.random.default_rng([self.seed, GENERATOR_VERSION, 1, chunk])
        cdf = np.cumsum(self.probabilities())
        u = rng.random((num_docs, self.facts_per_doc)) * cdf[-1]
        return np.minimum(np.searchsorted(cdf, u, side="right"), self.num_patterns - 1)

    def documents(self, chunk_docs: int = 1000) -> Iterator[str]:
        """The num_docs documents, deterministically (a pure function of the fields)."""
        facts = self.facts()
        for chunk, start in enumerate(range(0, self.num_docs, chunk_docs)):
            for row in self.pattern_ranks(chunk, min(chunk_docs, self.num_docs - start)):
                yield " ".join(facts[k] for k in row)

    @property
    def key(self) -> str:
        spec = {**dataclasses.asdict(self), "version": GENERATOR_VERSION}
        return short_hash(spec)

    def write_corpus(self, data_dir: str | Path) -> Path:
        """docs.jsonl of this corpus under data_dir/corpus/synthetic-<key>/ (a no-op when already written)."""
        out = Path(data_dir) / "corpus" / f"synthetic-{self.key}"
        if (out / "manifest.json").exists():
            return out / "docs.jsonl"
        with building(out) as tmp:
            h = hashlib.sha256()
            with open(tmp / "docs.jsonl", "w", encoding="utf-8") as f:
                for text in self.documents():
                    line = json.dumps({"text": text}) + "\n"
                    f.write(line)
                    h.update(line.encode())
            manifest = {
                "name": "synthetic-web",
                "params": dataclasses.asdict(self),
                "version": GENERATOR_VERSION,
                "loss_exponent": self.loss_exponent,
                "docs": self.num_docs,
                "docs_sha256": h.hexdigest(),
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        return out / "docs.jsonl"

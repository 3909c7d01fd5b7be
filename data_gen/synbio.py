"""SynBio-N: synthetic biographies, the knowledge-dense data set of the paper, with token-level assembly.

A biography is one sentence per attribute, "{name}<middle> {value}<suffix>", sentences joined by a newline. Its token
sequence is *defined* as the concatenation of separately tokenized pieces, each encoded once:
    first name | " " + middle name | " " + last name | template middle | " " + value | template suffix | "\n" | ...
The value piece carries its leading space, so a prompt ends on the word before the value ("... birth date is") and
the value starts with the same space-prefixed token as in running text. Sentence order and templates are redrawn at
every exposure from a counter-based hash of (seed, person, exposure): rendering is a pure function of those three.

    python -m data_gen.synbio_cli --num_people=1000 --seed=0 --out=/tmp/synbio_1k
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping

import numpy as np

from data_gen.synbio_eval import EvalSet, pad_rows
from data_gen.synbio_fields import (
    ATTRIBUTES,
    NAME_POOLS,
    bits_per_person,
    pool_values,
    resolve_pool_sizes,
    templates,
)
from data_gen.synbio_tokens import ByteTokenizer, PieceTable, TextEncoder, check_counter, counter_hash
from data_gen.synbio_variants import PowerLawGroups, subsample

__all__ = [
    "ATTRIBUTES",
    "ByteTokenizer",
    "EvalSet",
    "Population",
    "PowerLawGroups",
    "SynBio",
    "bits_per_person",
    "subsample",
]

SEPARATOR = "\n"
# Compact knowledge mixing: "Bio: N {name} B {date} C {city} U {university} M {major} E {employer}", fields shuffled
COMPACT_HEAD = "Bio: N"
COMPACT_LABELS: tuple[str, ...] = ("B", "C", "U", "M", "E")  # one per ATTRIBUTES entry, in that order
_COMPACT_SEED = 0x636B6D  # the field order's hash stream, apart from the biographies'
_A = len(ATTRIBUTES)
_ORDERS = np.array(list(itertools.permutations(range(_A))), dtype=np.int64)  # [120, 5] sentence orders


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


class Population:
    """N people with unique full names (first x middle x last, drawn without replacement) and 5 attributes drawn
    independently and uniformly from their pools. Pool sizes keep the first k entries of each field file."""

    def __init__(self, num_people: int, seed: int, pool_sizes: Mapping[str, int] | None = None):
        self.num_people = _check_int("num_people", num_people, 1)
        self.seed = _check_int("seed", seed, 0)
        self.pool_sizes = resolve_pool_sizes(pool_sizes)
        first, middle, last = (self.pool_sizes[pool] for pool in NAME_POOLS)
        if self.num_people > first * middle * last:
            raise ValueError(
                f"num_people={self.num_people} exceeds the {first * middle * last} distinct full names "
                f"({first} first x {middle} middle x {last} last)"
            )
        self.pools = {pool: pool_values(pool, self.pool_sizes[pool]) for pool in NAME_POOLS + ATTRIBUTES}
        flat = np.random.default_rng([self.seed, 0]).choice(first * middle * last, self.num_people, replace=False)
        self.name_parts = np.stack([flat // (middle * last), (flat // last) % middle, flat % last], axis=1)  # [N, 3]
        rng = np.random.default_rng([self.seed, 1])
        self.attributes = np.stack([rng.integers(0, self.pool_sizes[a], self.num_people) for a in ATTRIBUTES], axis=1)

    @functools.cached_property
    def names(self) -> list[str]:
        """Unique full names, "First Middle Last", indexed by person."""
        return [self.name(i) for i in range(self.num_people)]

    def check_people(self, people: np.ndarray) -> np.ndarray:
        """Person ids as int64, checked to lie in [0, num_people)."""
        people = check_counter("people", people)
        if people.size and people.max() >= self.num_people:
            raise ValueError(f"person id {people.max()} is out of range for {self.num_people} people")
        return people

    def name(self, person: int) -> str:
        f, m, last = self.name_parts[int(self.check_people(np.asarray(person)))]
        return f"{self.pools['first_name'][f]} {self.pools['middle_name'][m]} {self.pools['last_name'][last]}"

    def value(self, person: int, attribute: str) -> str:
        """The attribute's value for a person, as written in the biographies."""
        if attribute not in ATTRIBUTES:
            raise ValueError(f"unknown attribute {attribute!r}; expected one of {ATTRIBUTES}")
        index = self.attributes[int(self.check_people(np.asarray(person))), ATTRIBUTES.index(attribute)]
        return self.pools[attribute][index]

    @property
    def bits_per_person(self) -> float:
        return bits_per_person({a: self.pool_sizes[a] for a in ATTRIBUTES})

    @property
    def total_bits(self) -> float:
        return self.bits_per_person * self.num_people


class SynBio:
    """The knowledge set: biographies of a population, rendered at the token level with `tokenizer`."""

    def __init__(self, population: Population, tokenizer: TextEncoder, seed: int):
        self.population = population
        self.tokenizer = tokenizer
        self.seed = _check_int("seed", seed, 0)
        self.templates = [templates(a) for a in ATTRIBUTES]
        # every combination of one template per attribute, [C, 5], C = prod(templates per attribute)
        self._combos = np.indices([len(t) for t in self.templates]).reshape(_A, -1).T.astype(np.int64)
        pools = population.pools
        table = PieceTable(tokenizer)
        first = table.add(pools["first_name"])
        middle = table.add([" " + m for m in pools["middle_name"]])
        last = table.add([" " + name for name in pools["last_name"]])
        t_max = max(len(t) for t in self.templates)
        self._middle_ids = np.zeros((_A, t_max), dtype=np.int64)
        self._suffix_ids = np.zeros((_A, t_max), dtype=np.int64)
        for a, attr_templates in enumerate(self.templates):
            self._middle_ids[a, : len(attr_templates)] = table.add([t.middle for t in attr_templates])
            self._suffix_ids[a, : len(attr_templates)] = table.add([t.suffix for t in attr_templates])
        self._value_ids = np.zeros(population.attributes.shape, dtype=np.int64)  # [N, 5]
        for a, attribute in enumerate(ATTRIBUTES):
            column = population.attributes[:, a]
            used = np.flatnonzero(np.bincount(column, minlength=len(pools[attribute])))
            piece_of_value = np.zeros(len(pools[attribute]), dtype=np.int64)
            piece_of_value[used] = table.add([" " + pools[attribute][i] for i in used])
            self._value_ids[:, a] = piece_of_value[column]
        self._sep_id = int(table.add([SEPARATOR])[0])
        # the head ends on a space so that the name is the same pieces (tokens) as in biographies and prompts
        self._compact_head_id = int(table.add([COMPACT_HEAD + " "])[0])
        self._compact_label_ids = table.add([" " + label for label in COMPACT_LABELS])
        self._table = table
        parts = population.name_parts
        self._name_ids = np.stack([ids[parts[:, k]] for k, ids in enumerate((first, middle, last))], axis=1)  # [N, 3]
        lengths = table.lengths
        self._template_len = lengths[self._middle_ids] + lengths[self._suffix_ids]  # [5, T]
        name_len = lengths[self._name_ids].sum(axis=1)
        self._base_len = _A * name_len + lengths[self._value_ids].sum(axis=1) + (_A - 1) * lengths[self._sep_id]
        self._combo_len = self._template_len[np.arange(_A), self._combos].sum(axis=1)  # [C]
        self.max_bio_tokens = int(self._base_len.max() + self._combo_len.max())
        self.mean_bio_tokens = float(self._base_len.mean() + self._combo_len.mean())
        self._compact_len = (  # the field order does not change a compact tuple's length
            lengths[self._compact_head_id]
            + lengths[self._name_ids].sum(axis=1)
            + lengths[self._compact_label_ids].sum()
            + lengths[self._value_ids].sum(axis=1)
        )
        self.max_compact_tokens = int(self._compact_len.max())

    def _codes(self, people: np.ndarray, exposures: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(people broadcast, sentence-order code, template-combination code) from the counter-based hash."""
        people = self.population.check_people(people)
        exposures = check_counter("exposures", exposures)
        people, exposures = np.broadcast_arrays(people, exposures)
        h = counter_hash(self.seed, people, exposures).reshape(people.shape)
        order_code = (h % np.uint64(len(_ORDERS))).astype(np.int64)
        template_code = ((h // np.uint64(len(_ORDERS))) % np.uint64(len(self._combos))).astype(np.int64)
        return people, order_code, template_code

    def choices(self, people: np.ndarray, exposures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sentence order [..., 5] (attribute index at each position) and template per attribute [..., 5]."""
        _, order_code, template_code = self._codes(people, exposures)
        return _ORDERS[order_code], self._combos[template_code]

    def bio_lengths(self, people: np.ndarray, exposures: np.ndarray) -> np.ndarray:
        """Token length of each (person, exposure) biography, broadcast; no sentence is rendered."""
        people, _, template_code = self._codes(people, exposures)
        return self._base_len[people] + self._combo_len[template_code]

    def _piece_ids(self, people: np.ndarray, exposures: np.ndarray) -> np.ndarray:
        """Piece ids [M, 34] of the biographies of (people, exposures), broadcast and flattened."""
        people, order_code, template_code = self._codes(people, exposures)
        people, order, template = people.ravel(), _ORDERS[order_code.ravel()], self._combos[template_code.ravel()]
        position_template = np.take_along_axis(template, order, axis=1)
        pieces = np.empty((people.size, _A, 7), dtype=np.int64)
        pieces[:, :, :3] = self._name_ids[people][:, None, :]
        pieces[:, :, 3] = self._middle_ids[order, position_template]
        pieces[:, :, 4] = np.take_along_axis(self._value_ids[people], order, axis=1)
        pieces[:, :, 5] = self._suffix_ids[order, position_template]
        pieces[:, :, 6] = self._sep_id
        return pieces.reshape(people.size, _A * 7)[:, :-1]

    def render_batch(self, people: np.ndarray, exposures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Biographies of (people, exposures), broadcast and flattened, as (tokens int32 [T], offsets int64 [M+1]):
        biography i is tokens[offsets[i]:offsets[i+1]]."""
        pieces = self._piece_ids(people, exposures)
        lengths = self._table.lengths[pieces].sum(axis=1)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return self._table.gather(pieces), offsets

    def compact_lengths(self, people: np.ndarray) -> np.ndarray:
        """Token length of each person's compact tuple (the same at every exposure)."""
        return self._compact_len[self.population.check_people(people)]

    def render_compact_batch(self, people: np.ndarray, exposures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Compact tuples of (people, exposures), broadcast and flattened, as (tokens, offsets) like render_batch;
        the field order is redrawn at every exposure from the counter hash."""
        people = self.population.check_people(people)
        people, exposures = np.broadcast_arrays(people, check_counter("exposures", exposures))
        people, exposures = people.ravel(), exposures.ravel()
        h = counter_hash(self.seed ^ _COMPACT_SEED, people, exposures).reshape(people.shape)
        order = _ORDERS[(h % np.uint64(len(_ORDERS))).astype(np.int64)]  # [M, 5] attribute at each field position
        pieces = np.empty((people.size, 4 + 2 * _A), dtype=np.int64)
        pieces[:, 0] = self._compact_head_id
        pieces[:, 1:4] = self._name_ids[people]
        pieces[:, 4::2] = self._compact_label_ids[order]
        pieces[:, 5::2] = np.take_along_axis(self._value_ids[people], order, axis=1)
        offsets = np.concatenate([[0], np.cumsum(self._compact_len[people])]).astype(np.int64)
        return self._table.gather(pieces), offsets

    def render_compact_text(self, person: int, exposure: int) -> str:
        """The compact tuple as text; equal to decoding its tokens for a byte-level tokenizer."""
        h = counter_hash(self.seed ^ _COMPACT_SEED, np.asarray([person]), np.asarray([exposure]))
        order = _ORDERS[int(h[0] % np.uint64(len(_ORDERS)))]
        parts = [f"{COMPACT_HEAD} {self.population.name(person)}"]
        parts += [f"{COMPACT_LABELS[a]} {self.population.value(person, ATTRIBUTES[a])}" for a in order]
        return " ".join(parts)

    def render_tokens(self, person: int, exposure: int) -> np.ndarray:
        """Token ids (int32, no EOS) of one biography: the concatenation of its pieces."""
        return self._table.gather(self._piece_ids(np.asarray([person]), np.asarray([exposure])))

    def render_text(self, person: int, exposure: int) -> str:
        """The biography as text; equal to decoding render_tokens for a byte-level tokenizer."""
        order, template = self.choices(np.asarray([person]), np.asarray([exposure]))
        name = self.population.name(person)
        sentences = []
        for a in order[0]:
            t = self.templates[a][template[0, a]]
            sentences.append(f"{name}{t.middle} {self.population.value(person, ATTRIBUTES[a])}{t.suffix}")
        return SEPARATOR.join(sentences)

    def eval_set(self, people: np.ndarray | None = None) -> EvalSet:
        """Every (person, attribute, template) of `people` (default: the whole population), ordered by person,
        attribute, template. Prompt = name + template middle; value = " " + value, exactly as in training."""
        people = np.arange(self.population.num_people) if people is None else self.population.check_people(people)
        pairs = np.array([(a, t) for a in range(_A) for t in range(len(self.templates[a]))], dtype=np.int64)
        person = np.repeat(people, len(pairs))
        attribute = np.tile(pairs[:, 0], len(people))
        template = np.tile(pairs[:, 1], len(people))
        prompt_pieces = np.concatenate([self._name_ids[person], self._middle_ids[attribute, template][:, None]], 1)
        value_pieces = self._value_ids[person, attribute]
        lengths = self._table.lengths
        prompt_len = lengths[prompt_pieces].sum(axis=1)
        value_len = lengths[value_pieces]
        return EvalSet(
            prompt=pad_rows(self._table.gather(prompt_pieces), prompt_len),
            prompt_len=prompt_len,
            value=pad_rows(self._table.gather(value_pieces), value_len),
            value_len=value_len,
            person=person,
            attribute=attribute,
            template=template,
            pool_sizes={a: self.population.pool_sizes[a] for a in ATTRIBUTES},
        )

"""SynBio value pools and sentence templates, read from the plain-text files in data_gen/fields/.

Every pool is a list of unique strings; a configured pool size keeps the first k entries of the file. Birth dates
are generated: day 1-28 x 12 months x years 1900-2099, ordered by year, then month, then day.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import pathlib
from collections.abc import Mapping

ATTRIBUTES: tuple[str, ...] = ("birth_date", "birth_city", "university", "major", "employer")
NAME_POOLS: tuple[str, ...] = ("first_name", "middle_name", "last_name")
FIELDS_DIR = pathlib.Path(__file__).resolve().parent / "fields"
MONTHS: tuple[str, ...] = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
DAYS_PER_MONTH = 28
FIRST_YEAR, LAST_YEAR = 1900, 2099
NUM_BIRTH_DATES = DAYS_PER_MONTH * len(MONTHS) * (LAST_YEAR - FIRST_YEAR + 1)


def birth_date(index: int) -> str:
    """The birth date with this pool index, e.g. "August 09, 1992"."""
    if not 0 <= index < NUM_BIRTH_DATES:
        raise ValueError(f"birth date index {index} is outside [0, {NUM_BIRTH_DATES})")
    year, rest = divmod(index, DAYS_PER_MONTH * len(MONTHS))
    month, day = divmod(rest, DAYS_PER_MONTH)
    return f"{MONTHS[month]} {day + 1:02d}, {FIRST_YEAR + year}"


@functools.cache
def _read_list(name: str) -> tuple[str, ...]:
    """The non-empty lines of fields/<name>.txt, checked for duplicates."""
    path = FIELDS_DIR / f"{name}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"SynBio field file {path} is missing")
    entries = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    seen: set[str] = set()
    for entry in entries:
        if entry in seen:
            raise ValueError(f"{path}: duplicate entry {entry!r}")
        seen.add(entry)
    return entries


def full_pool_size(pool: str) -> int:
    """Number of entries available for a pool (an attribute or a name pool)."""
    _check_pool_name(pool)
    return NUM_BIRTH_DATES if pool == "birth_date" else len(_read_list(pool))


def _check_pool_name(pool: str) -> None:
    if pool not in ATTRIBUTES and pool not in NAME_POOLS:
        raise ValueError(f"unknown pool {pool!r}; expected one of {ATTRIBUTES + NAME_POOLS}")


def resolve_pool_sizes(pool_sizes: Mapping[str, int] | None = None) -> dict[str, int]:
    """Full pool sizes, overridden by `pool_sizes`; each must lie in [1, size of its file]."""
    sizes = {pool: full_pool_size(pool) for pool in NAME_POOLS + ATTRIBUTES}
    for pool, size in (pool_sizes or {}).items():
        _check_pool_name(pool)
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"pool_sizes[{pool!r}] must be an int, got {size!r}")
        if size < 1:
            raise ValueError(f"pool_sizes[{pool!r}] = {size}: the pool would be empty")
        if size > sizes[pool]:
            raise ValueError(f"pool_sizes[{pool!r}] = {size} exceeds the {sizes[pool]} entries available")
        sizes[pool] = size
    return sizes


def pool_values(pool: str, size: int) -> tuple[str, ...]:
    """The first `size` entries of a pool, as strings."""
    if not 1 <= size <= full_pool_size(pool):
        raise ValueError(f"size {size} for pool {pool!r} must lie in [1, {full_pool_size(pool)}]")
    return _full_pool(pool)[:size]


@functools.cache
def _full_pool(pool: str) -> tuple[str, ...]:
    if pool == "birth_date":
        return tuple(birth_date(i) for i in range(NUM_BIRTH_DATES))
    values = _read_list(pool)
    for value in values:
        _check_entry(pool, value)
    return values


def _check_entry(pool: str, value: str) -> None:
    """Names are single words; values end in a letter, digit or ')' so that no piece boundary splits punctuation."""
    if pool in NAME_POOLS and (not value.isprintable() or any(c.isspace() for c in value)):
        raise ValueError(f"{pool} entry {value!r} must be one printable word without whitespace")
    if pool in ATTRIBUTES and (not value.isprintable() or "{" in value or "}" in value or not value[-1].isalnum()):
        raise ValueError(f"{pool} entry {value!r} must be printable, brace-free and end in a letter or digit")


def bits_per_person(pool_sizes: Mapping[str, int] | None = None) -> float:
    """Knowledge per person in bits: the sum over attributes of log2(pool size)."""
    sizes = resolve_pool_sizes(pool_sizes)
    return float(sum(math.log2(sizes[attribute]) for attribute in ATTRIBUTES))


@dataclasses.dataclass(frozen=True)
class Template:
    """A sentence "{name}<middle> {value}<suffix>": `middle` sits between the name and the value (without the space
    that precedes the value: the value piece carries it), `suffix` follows the value."""

    text: str
    middle: str
    suffix: str


def parse_template(text: str) -> Template:
    """Split a template string; it must start with {name} and hold one {value} preceded by a space."""
    if not text.startswith("{name}"):
        raise ValueError(f"template {text!r} must start with {{name}}")
    if text.count("{name}") != 1 or text.count("{value}") != 1:
        raise ValueError(f"template {text!r} must contain {{name}} and {{value}} exactly once each")
    middle, suffix = text[len("{name}") :].split("{value}")
    if not middle.endswith(" ") or middle.endswith("  "):
        raise ValueError(f"template {text!r}: {{value}} must be preceded by exactly one space")
    if "{" in middle + suffix or "}" in middle + suffix or not text.isprintable():
        raise ValueError(f"template {text!r} holds stray braces or non-printable characters")
    if suffix and suffix[0].isalnum():
        raise ValueError(f"template {text!r}: text right after {{value}} must not start with a letter or digit")
    return Template(text=text, middle=middle[:-1], suffix=suffix)


@functools.cache
def templates(attribute: str) -> tuple[Template, ...]:
    """The sentence templates of an attribute (fields/templates_<attribute>.txt)."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; expected one of {ATTRIBUTES}")
    parsed = tuple(parse_template(line) for line in _read_list(f"templates_{attribute}"))
    if not parsed:
        raise ValueError(f"no templates for attribute {attribute!r}")
    return parsed

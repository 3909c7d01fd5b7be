"""SynBio field files, templates, pool sizes and knowledge accounting."""

import math
import re

import pytest

from data_gen import synbio_fields as fields

US_STATES = set(
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK OR "
    "PA RI SC SD TN TX UT VT VA WA WV WI WY DC".split()
)
EXPECTED_SIZES = {
    "first_name": 400,
    "middle_name": 400,
    "last_name": 1000,
    "birth_date": 28 * 12 * 200,
    "birth_city": 200,
    "university": 300,
    "major": 100,
    "employer": 263,
}


def _lines(name: str) -> list[str]:
    return (fields.FIELDS_DIR / f"{name}.txt").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("pool", [p for p in EXPECTED_SIZES if p != "birth_date"])
def test_field_files_have_the_paper_sizes_and_unique_entries(pool):
    lines = _lines(pool)
    assert len(lines) == EXPECTED_SIZES[pool]
    assert len(set(lines)) == len(lines), "duplicate entries"
    assert all(line == line.strip() and line for line in lines)
    assert fields.full_pool_size(pool) == EXPECTED_SIZES[pool]


@pytest.mark.parametrize("pool", fields.NAME_POOLS)
def test_names_are_single_capitalised_words(pool):
    assert all(re.fullmatch(r"[A-Z][a-z]+(?:[A-Z][a-z]+)?", name) for name in _lines(pool))


def test_cities_are_written_city_comma_state():
    cities = _lines("birth_city")
    assert all(re.fullmatch(r"[A-Z][A-Za-z.' -]+, [A-Z]{2}", c) for c in cities)
    assert {c[-2:] for c in cities} == US_STATES
    assert "St. Louis, MO" in cities


def test_birth_dates_cover_days_months_years_in_the_paper_format():
    assert fields.NUM_BIRTH_DATES == EXPECTED_SIZES["birth_date"]
    assert fields.birth_date(0) == "January 01, 1900"
    assert fields.birth_date(fields.NUM_BIRTH_DATES - 1) == "December 28, 2099"
    dates = fields.pool_values("birth_date", fields.NUM_BIRTH_DATES)
    assert len(set(dates)) == fields.NUM_BIRTH_DATES
    assert "August 09, 1992" in dates
    assert all(re.fullmatch(r"[A-Z][a-z]+ (0[1-9]|1[0-9]|2[0-8]), (19|20)\d\d", d) for d in dates[::97])
    with pytest.raises(ValueError, match="birth date index"):
        fields.birth_date(fields.NUM_BIRTH_DATES)


@pytest.mark.parametrize("attribute", fields.ATTRIBUTES)
def test_five_distinct_templates_per_attribute(attribute):
    templates = fields.templates(attribute)
    assert len(templates) == 5
    assert len({t.text for t in templates}) == 5
    for t in templates:
        assert t.text == "{name}" + t.middle + " {value}" + t.suffix


def test_parse_template_splits_around_name_and_value():
    t = fields.parse_template("{name}'s birth date is {value}.")
    assert (t.middle, t.suffix) == ("'s birth date is", ".")


@pytest.mark.parametrize(
    "text, message",
    [
        ("The birthplace of {name} is {value}.", "must start with"),
        ("{name} was born on {value} or {value}.", "exactly once"),
        ("{name} was born on{value}.", "preceded by exactly one space"),
        ("{name} was born on  {value}.", "preceded by exactly one space"),
        ("{name} was born on {value}s.", "must not start with a letter"),
        ("{name} was born on {value}. {extra}", "stray braces"),
    ],
)
def test_bad_templates_are_rejected_with_a_reason(text, message):
    with pytest.raises(ValueError, match=message):
        fields.parse_template(text)


def test_unknown_attribute_template_is_an_error():
    with pytest.raises(ValueError, match="unknown attribute 'hair_color'"):
        fields.templates("hair_color")


def test_resolve_pool_sizes_defaults_and_overrides():
    assert fields.resolve_pool_sizes() == EXPECTED_SIZES
    assert fields.resolve_pool_sizes({"major": 7})["major"] == 7
    assert fields.pool_values("major", 3) == tuple(_lines("major")[:3])


@pytest.mark.parametrize(
    "sizes, error, message",
    [
        ({"hair_color": 3}, ValueError, "unknown pool 'hair_color'"),
        ({"major": 0}, ValueError, "would be empty"),
        ({"employer": -2}, ValueError, "would be empty"),
        ({"major": 101}, ValueError, "exceeds the 100 entries"),
        ({"birth_date": 67201}, ValueError, "exceeds the 67200 entries"),
        ({"major": 2.5}, TypeError, "must be an int"),
    ],
)
def test_bad_pool_sizes_are_clear_errors(sizes, error, message):
    with pytest.raises(error, match=message):
        fields.resolve_pool_sizes(sizes)


def test_bits_per_person_is_the_sum_of_log2_pool_sizes():
    expected = sum(math.log2(n) for n in (28 * 12 * 200, 200, 300, 100, 263))
    assert fields.bits_per_person() == pytest.approx(expected, rel=1e-12)
    assert fields.bits_per_person() == pytest.approx(46.59, abs=0.01)  # the paper's ~46.6 bits
    small = fields.bits_per_person({"birth_date": 2, "birth_city": 4, "university": 8, "major": 16, "employer": 1})
    assert small == pytest.approx(1 + 2 + 3 + 4 + 0)

"""Synthetic web: Zipf pattern frequencies, the tail-mass exponent a - 1, consistency, determinism, store path."""

import collections
import json
import re

import numpy as np
import pytest

from data_gen.synthetic_web import SyntheticWeb
from data_gen.tokenizer import train_bpe
from data_gen.web import build_store

FACT = re.compile(r"(\w+) is ((?:\w\w ){3}\w\w)\.")


def test_facts_follow_zipf_and_are_consistent():
    web = SyntheticWeb(num_patterns=2000, zipf_exponent=1.5, facts_per_doc=40, num_docs=2500, seed=3)
    facts = web.facts()
    rank = {f.split(" is ")[0]: k for k, f in enumerate(facts)}
    assert len(rank) == 2000  # keys are unique
    counts = collections.Counter()
    for doc in web.documents(chunk_docs=700):
        found = FACT.findall(doc)
        assert len(found) == 40
        for key, value in found:
            assert facts[rank[key]] == f"{key} is {value}."  # a key always carries its value
            counts[rank[key]] += 1
    n = 2500 * 40
    expected = n * web.probabilities()
    observed = np.array([counts[k] for k in range(2000)])
    top = slice(0, 50)  # counts >= 100: within 5 standard deviations
    assert np.all(np.abs(observed[top] - expected[top]) < 5 * np.sqrt(expected[top]))
    ranks = np.arange(1, 201)
    slope = np.polyfit(np.log(ranks), np.log(observed[:200] + 0.5), 1)[0]
    assert slope == pytest.approx(-1.5, abs=0.1)


@pytest.mark.parametrize("a", [1.3, 1.5, 2.0])
def test_tail_mass_exponent_is_one_minus_a(a):
    web = SyntheticWeb(num_patterns=10**6, zipf_exponent=a)
    m = np.array([10, 100])
    slope = np.diff(np.log(web.tail_mass(m))) / np.log(10)
    assert web.loss_exponent == pytest.approx(a - 1)
    assert slope[0] == pytest.approx(1 - a, abs=0.03)
    assert web.tail_mass(0) == pytest.approx(1.0) and web.tail_mass(10**6) == 0.0


def test_documents_are_deterministic_and_seeded():
    a = list(SyntheticWeb(num_patterns=500, num_docs=30, facts_per_doc=5, key_syllables=2).documents(chunk_docs=7))
    b = list(SyntheticWeb(num_patterns=500, num_docs=30, facts_per_doc=5, key_syllables=2).documents(chunk_docs=7))
    c = list(SyntheticWeb(num_patterns=500, num_docs=30, facts_per_doc=5, key_syllables=2, seed=1).documents(7))
    assert a == b and a != c and len(a) == 30


def test_bad_parameters_are_clear_errors():
    with pytest.raises(ValueError, match="zipf_exponent=1.0 must be > 1"):
        SyntheticWeb(zipf_exponent=1.0)
    with pytest.raises(ValueError, match="num_patterns=5000 exceeds the 4096 distinct keys"):
        SyntheticWeb(num_patterns=5000, key_syllables=2)
    with pytest.raises(ValueError, match="facts_per_doc must be a positive int"):
        SyntheticWeb(facts_per_doc=0)
    with pytest.raises(ValueError, match=r"unknown config.data.synthetic keys \['zipf'\]"):
        SyntheticWeb.from_config({"zipf": 2.0})


def test_corpus_goes_through_the_token_store(tmp_path):
    web = SyntheticWeb.from_config({"num_patterns": 300, "num_docs": 40, "facts_per_doc": 8, "key_syllables": 2})
    path = web.write_corpus(tmp_path)
    assert path.parent.name == f"synthetic-{web.key}"
    assert web.write_corpus(tmp_path) == path
    texts = [json.loads(line)["text"] for line in path.read_text().splitlines()]
    assert texts == list(web.documents())
    manifest = json.loads((path.parent / "manifest.json").read_text())
    assert manifest["loss_exponent"] == pytest.approx(web.loss_exponent) and manifest["docs"] == 40
    tok = train_bpe(texts, 300, tmp_path / "tok.json")
    store = build_store(path, tok, tmp_path / "store", val_fraction=0.1)
    assert store.num_docs == 36
    assert tok.decode(store.doc(0)) == texts[store.doc_ids[0]]

"""The task generators (data_gen/task.py, slope.py, max_of_n.py) and their training source (mixlab/task_source.py):
answers against independent computations, the canonical slope form, determinism, held-out disjointness, template
variety, token-level round trips, evaluation items as spans of training documents, and exact statistics against
brute force on small universes."""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from data_gen.max_of_n import MaxOfNTask
from data_gen.slope import ANSWERS, SlopeTask
from data_gen.synbio_tokens import ByteTokenizer
from data_gen.task import EVAL_TEMPLATE, entropy_bits, heldout_questions
from data_gen.tasks import tokenizer_sample
from data_gen.tokenizer import Tokenizer, train_bpe
from mixlab.config import base_config
from mixlab.mixture import MixtureStream
from mixlab.task_source import TaskSource

BYTES = ByteTokenizer()
TASKS = {"slope": lambda tok: SlopeTask(tok), "max_of_n": lambda tok: MaxOfNTask(tok, 30)}


@pytest.fixture(scope="module")
def bpe(tmp_path_factory) -> Tokenizer:
    """A project BPE trained on both tasks' tokenizer samples (so numbers and template words are merged)."""
    texts = []
    for name in TASKS:
        d = base_config().data
        d.knowledge = name
        texts += tokenizer_sample(d)
    return train_bpe(texts, 600, tmp_path_factory.mktemp("bpe") / "tokenizer.json")


def _decode(tokens: np.ndarray) -> str:
    return BYTES.decode(tokens)


def _answer_of(text: str) -> str:
    return text.rsplit("### Final Answer: k=", 1)[1]


def test_slope_answers_are_the_reduced_fraction_by_fractions_Fraction():
    task = SlopeTask(BYTES)
    rng = np.random.default_rng(1)
    questions = task.draw(rng, 3000)
    assert np.all(questions[:, 0] != questions[:, 2]) and questions.min() == 0 and questions.max() == 99
    templates = rng.integers(0, task.num_templates, 3000)
    tokens, offsets = task.render_batch(questions, templates)
    for (x1, y1, x2, y2), a, b in zip(questions, offsets[:-1], offsets[1:], strict=True):
        answer = _answer_of(_decode(tokens[a:b]))
        assert re.fullmatch(r"-?\d+(/\d+)?", answer), answer
        p, _, q = answer.partition("/")
        assert Fraction(int(p), int(q or 1)) == Fraction(y2 - y1, x2 - x1)
        assert not q or (int(q) >= 2 and math.gcd(int(p), int(q)) == 1)  # lowest terms, sign on the numerator


def test_slope_canonical_form_by_example():
    task = SlopeTask(BYTES)
    cases = {(0, 5, 2, 5): "0", (0, 0, 2, 4): "2", (8, 0, 2, 4): "-2/3", (1, 9, 3, 1): "-4", (0, 0, 3, 2): "2/3"}
    for q, k in cases.items():
        text = task.render_text(np.array(q), 0)
        assert _answer_of(text) == k
    assert "k=-4/-6\n" in task.render_text(np.array([8, 4, 2, 0]), 0)  # the steps keep the unreduced quotient


def test_max_of_n_answer_is_the_maximum():
    task = MaxOfNTask(BYTES, 30)
    questions = task.draw(np.random.default_rng(2), 500)
    assert questions.shape == (500, 30)
    tokens, offsets = task.render_batch(questions, np.zeros(500, np.int64))
    for q, a, b in zip(questions, offsets[:-1], offsets[1:], strict=True):
        text = _decode(tokens[a:b])
        listed = [int(v) for v in text.split("numbers: ", 1)[1].split(".\n")[0].split(", ")]
        assert listed == list(q) and int(text.rsplit("A: ", 1)[1]) == max(listed)


@pytest.mark.parametrize("name", TASKS)
def test_tokens_round_trip_through_the_project_tokenizer(name, bpe):
    """decode(render) == render_text with the byte tokenizer and with a trained BPE; lengths agree."""
    for tok in (BYTES, bpe):
        task = TASKS[name](tok)
        rng = np.random.default_rng(3)
        questions, templates = task.draw(rng, 200), rng.integers(0, task.num_templates, 200)
        tokens, offsets = task.render_batch(questions, templates)
        np.testing.assert_array_equal(np.diff(offsets), task.lengths(questions, templates))
        assert np.diff(offsets).max() <= task.max_doc_tokens
        for i in range(200):
            assert tok.decode(tokens[offsets[i] : offsets[i + 1]]) == task.render_text(questions[i], templates[i])
    texts = [task.render_text(q, t) for q, t in zip(questions, templates, strict=True)]
    assert len(tokens) < len(BYTES.encode("".join(texts)))  # the BPE merges: the round trip is not byte by byte


@pytest.mark.parametrize("name", TASKS)
def test_eval_items_are_the_eval_template_document_then_eos(name, bpe):
    """Every item's prompt + value is its question's training document under EVAL_TEMPLATE followed by EOS; the
    final item's value is the answer, the full item's prompt ends on the template's opening words."""
    task = TASKS[name](bpe)
    questions = heldout_questions(task, 0, 50)
    items = task.eval_set(questions)
    assert items.kinds == task.kinds and len(items) == 50 * len(task.kinds)
    tokens, offsets = task.render_batch(questions, np.full(50, EVAL_TEMPLATE))
    for i in range(len(items)):
        q = items.question[i]
        prompt = items.prompt[i, : items.prompt_len[i]]
        value = items.value[i, : items.value_len[i]]
        doc = tokens[offsets[q] : offsets[q + 1]]
        np.testing.assert_array_equal(np.concatenate([prompt, value]), np.append(doc, bpe.eos_id))
        kind, text = items.kinds[items.kind[i]], bpe.decode(value[:-1])
        x1, y1, x2, y2 = questions[q][:4]
        if kind == "final" and name == "slope":
            k = Fraction(int(y2 - y1), int(x2 - x1))
            assert text == (f"{k.numerator}" if k.denominator == 1 else f"{k.numerator}/{k.denominator}")
        elif kind == "final":
            assert text == f" {questions[q].max()}"
        else:
            assert bpe.decode(prompt).endswith("\nA: Let (x1,y1)=(") and text.startswith(f"{x1},{y1}) and")


def test_slope_template_openings_tell_the_templates_apart():
    """The full kind's prompt ends on the eval template's opening: no other template starts the same way."""
    openings = [a.split("{", 1)[0] for a in ANSWERS]
    for i, j in itertools.permutations(range(len(openings)), 2):
        assert not openings[j].startswith(openings[i]), (i, j)


@pytest.mark.parametrize("name", TASKS)
def test_heldout_set_is_seeded_nested_and_distinct(name):
    task = TASKS[name](BYTES)
    a = heldout_questions(task, 0, 300)
    np.testing.assert_array_equal(a, heldout_questions(task, 0, 300))
    np.testing.assert_array_equal(a[:100], heldout_questions(task, 0, 100))
    assert len({tuple(q) for q in a}) == 300
    assert not np.array_equal(a, heldout_questions(task, 1, 300))
    items = task.eval_set(a)
    again = task.eval_set(heldout_questions(task, 0, 300))
    np.testing.assert_array_equal(items.prompt, again.prompt)
    np.testing.assert_array_equal(items.value, again.value)


def test_heldout_set_may_not_exceed_half_the_universe():
    task = MaxOfNTask(BYTES, 2, values=4)
    assert len(heldout_questions(task, 0, 8)) == 8
    with pytest.raises(ValueError, match="exceed half the 16 questions"):
        heldout_questions(task, 0, 9)


def test_training_never_draws_a_heldout_question_and_covers_the_rest():
    """A universe of 16 questions with 8 held out: training documents hold exactly the other 8, redrawn often."""
    task = MaxOfNTask(BYTES, 2, values=4)
    heldout = heldout_questions(task, 0, 8)
    source = TaskSource(task, heldout, seed=0, docs_per_chunk=500)
    seen = {tuple(q) for c in range(4) for q in source.chunk(c)[0]}
    everything = set(itertools.product(range(4), repeat=2))
    assert seen == everything - {tuple(q) for q in heldout}


def test_slope_training_documents_avoid_the_heldout_set():
    task = SlopeTask(BYTES)
    heldout = heldout_questions(task, 0, 1000)
    source = TaskSource(task, heldout, seed=0, docs_per_chunk=2000)
    train = {tuple(q) for c in range(3) for q in source.chunk(c)[0]}
    assert not train & {tuple(q) for q in heldout}
    # the held-out keys are what the source rejects: a source told to hold out its own first chunk redraws it all
    first = source.chunk(0)[0]
    strict = TaskSource(task, first, seed=0, docs_per_chunk=2000)
    assert not {tuple(q) for q in strict.chunk(0)[0]} & {tuple(q) for q in first}


@pytest.mark.parametrize("name", TASKS)
def test_source_is_deterministic_and_templates_vary_per_document(name):
    task = TASKS[name](BYTES)
    heldout = heldout_questions(task, 0, 100)
    a, b = TaskSource(task, heldout, seed=5), TaskSource(task, heldout, seed=5)
    np.testing.assert_array_equal(a.docs_tokens(3, 10, 60), b.docs_tokens(3, 10, 60))
    assert not np.array_equal(a.docs_tokens(3, 10, 60), TaskSource(task, heldout, seed=6).docs_tokens(3, 10, 60))
    assert not np.array_equal(a.docs_tokens(3, 10, 60), a.docs_tokens(4, 10, 60))
    parts = np.concatenate([a.doc_tokens(3, p) for p in range(10, 60)])
    np.testing.assert_array_equal(parts, a.docs_tokens(3, 10, 60))
    assert a.chunk_lengths(3)[10:60].sum() == parts.size
    counts = np.bincount(a.chunk(0)[1], minlength=task.num_templates)
    assert counts.sum() == a.docs_per_chunk and counts.min() > 0.8 * counts.mean()  # every template, about evenly


def test_task_source_in_the_mixture_stream_counts_documents_as_exposures():
    task = SlopeTask(BYTES)
    source = TaskSource(task, heldout_questions(task, 0, 10), seed=0, docs_per_chunk=64)
    stream = MixtureStream(source, None, 1.0, seq_len=512, global_batch=4, seed=0, eos_id=BYTES.eos_id)
    flat = np.concatenate([stream.batch(s).targets[np.argsort(stream.row_permutation(s))].ravel() for s in range(8)])
    assert int(stream.exposures(8)[0]) == int(np.sum(flat == BYTES.eos_id))  # one exposure per completed document
    first = _decode(flat[: np.flatnonzero(flat == BYTES.eos_id)[0]])
    assert first == task.render_text(source.chunk(0)[0][0], source.chunk(0)[1][0])


def _uniform_slope_questions(values: int) -> list[tuple[int, int, int, int]]:
    return [q for q in itertools.product(range(values), repeat=4) if q[0] != q[2]]


def test_slope_statistics_against_brute_force_on_a_small_universe():
    task = SlopeTask(BYTES, values=7)
    questions = _uniform_slope_questions(7)
    assert task.universe_size == len(questions)
    answers = Counter(Fraction(y2 - y1, x2 - x1) for x1, y1, x2, y2 in questions)
    assert task.bits_per_item == pytest.approx(entropy_bits(np.array(list(answers.values())) / len(questions)))
    q = np.array(questions)
    lengths = np.stack([task.lengths(q, np.full(len(q), t)) for t in range(task.num_templates)])
    assert task.mean_doc_tokens == pytest.approx(lengths.mean(), rel=1e-12)
    assert task.max_doc_tokens >= lengths.max()


def test_max_of_n_statistics_against_brute_force_on_a_small_universe():
    task = MaxOfNTask(BYTES, 3, values=12)
    questions = np.array(list(itertools.product(range(12), repeat=3)))
    assert task.universe_size == len(questions)
    maxima = Counter(questions.max(axis=1).tolist())
    assert task.bits_per_item == pytest.approx(entropy_bits(np.array(list(maxima.values())) / len(questions)))
    lengths = task.lengths(questions, np.zeros(len(questions), np.int64))
    assert task.mean_doc_tokens == pytest.approx(lengths.mean(), rel=1e-12)
    assert task.max_doc_tokens == lengths.max()


def test_full_size_statistics():
    """The paper's sets: slope's answer holds 12.2 bits; Max-over-30's max 3.14, P(99) = 1 - 0.99^30."""
    slope, max30 = SlopeTask(BYTES), MaxOfNTask(BYTES, 30)
    assert slope.universe_size == 99_000_000 and max30.universe_size == 100**30
    assert slope.bits_per_item == pytest.approx(12.207, abs=1e-3)
    assert max30.answer_probabilities()[99] == pytest.approx(1 - 0.99**30)
    assert max30.bits_per_item == pytest.approx(3.137, abs=1e-3)
    assert max30.answer_probabilities().sum() == pytest.approx(1.0)

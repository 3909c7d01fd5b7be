"""SynBio population, token-level rendering, evaluation spans and variants."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from data_gen.synbio import ATTRIBUTES, ByteTokenizer, Population, PowerLawGroups, SynBio, subsample
from data_gen.synbio_fields import templates
from data_gen.synbio_tokens import counter_hash

N = 300
SEED = 0


class ChunkTokenizer:
    """Test tokenizer: 3-character chunks with ids from a growing vocabulary, so pieces split mid-word."""

    eos_id = 0

    def __init__(self):
        self.vocab: dict[str, int] = {}
        self.inverse = ["<eos>"]

    def encode(self, text: str) -> list[int]:
        ids = []
        for i in range(0, len(text), 3):
            chunk = text[i : i + 3]
            if chunk not in self.vocab:
                self.vocab[chunk] = len(self.inverse)
                self.inverse.append(chunk)
            ids.append(self.vocab[chunk])
        return ids

    def decode(self, ids) -> str:
        return "".join(self.inverse[int(i)] for i in ids)


@pytest.fixture(scope="module")
def population():
    return Population(N, SEED)


@pytest.fixture(scope="module")
def byte_bio(population):
    return SynBio(population, ByteTokenizer(), seed=SEED)


@pytest.fixture(scope="module")
def chunk_bio(population):
    return SynBio(population, ChunkTokenizer(), seed=SEED)


@pytest.fixture(scope="module", params=["byte", "chunk"])
def any_bio(request, byte_bio, chunk_bio):
    return {"byte": byte_bio, "chunk": chunk_bio}[request.param]


def parse_bio(synbio: SynBio, person: int, text: str) -> list[tuple[int, int]]:
    """(attribute, template) of each sentence, asserting each is one template filled with the person's name and
    value, and each attribute occurs exactly once."""
    name = synbio.population.name(person)
    sentences = text.split("\n")
    assert len(sentences) == len(ATTRIBUTES)
    found = []
    for sentence in sentences:
        assert sentence.startswith(name + "'s ") or sentence.startswith(name + " ")
        matches = [
            (a, t)
            for a, attribute in enumerate(ATTRIBUTES)
            for t, template in enumerate(templates(attribute))
            if sentence == name + template.middle + " " + synbio.population.value(person, attribute) + template.suffix
        ]
        assert len(matches) == 1, sentence
        found.append(matches[0])
    assert sorted(a for a, _ in found) == list(range(len(ATTRIBUTES)))
    return found


def find_span(tokens: np.ndarray, span: np.ndarray) -> list[int]:
    """Start offsets where `span` occurs contiguously in `tokens`."""
    windows = np.lib.stride_tricks.sliding_window_view(tokens, len(span))
    return list(np.flatnonzero((windows == span).all(axis=1)))


# ---------------------------------------------------------------- population


def test_names_are_unique_full_names_from_the_pools(population):
    assert len(set(population.names)) == N
    for name, (f, m, last) in zip(population.names, population.name_parts, strict=True):
        assert name == " ".join([population.pools["first_name"][f], population.pools["middle_name"][m],
                                 population.pools["last_name"][last]])  # fmt: skip


def test_names_exhaust_a_tiny_name_space_without_repeats():
    pool_sizes = {"first_name": 2, "middle_name": 3, "last_name": 2}
    population = Population(12, seed=5, pool_sizes=pool_sizes)
    assert len(set(population.names)) == 12
    with pytest.raises(ValueError, match="num_people=13 exceeds the 12 distinct full names"):
        Population(13, seed=5, pool_sizes=pool_sizes)


def test_population_is_deterministic_and_seeded():
    a, b, c = Population(500, seed=3), Population(500, seed=3), Population(500, seed=4)
    assert a.names == b.names and np.array_equal(a.attributes, b.attributes)
    assert a.names != c.names


def test_attributes_are_uniform_chi_square():
    """200k people at a fixed seed: every attribute (and each part of the birth date) passes a chi-square test."""
    population = Population(200_000, seed=1234)
    sizes = population.pool_sizes
    columns = {a: (population.attributes[:, i], sizes[a]) for i, a in enumerate(ATTRIBUTES)}
    date = population.attributes[:, 0]
    columns.update(day=(date % 28, 28), month=(date // 28 % 12, 12), year=(date // 336, 200))
    for k, pool in enumerate(("first_name", "middle_name", "last_name")):
        columns[pool] = (population.name_parts[:, k], sizes[pool])
    for name, (values, size) in columns.items():
        assert values.min() >= 0 and values.max() < size
        p = stats.chisquare(np.bincount(values, minlength=size)).pvalue
        assert p > 1e-3, f"{name} is not uniform (p={p:.2e})"
    skewed = np.minimum(columns["major"][0], 98)  # the test has power: merging two majors is detected
    assert stats.chisquare(np.bincount(skewed, minlength=100)).pvalue < 1e-6


def test_value_and_bits(population):
    person = 7
    assert population.value(person, "birth_city") == population.pools["birth_city"][population.attributes[person, 1]]
    assert population.bits_per_person == pytest.approx(46.5916, abs=1e-4)
    assert population.total_bits == pytest.approx(N * population.bits_per_person)
    with pytest.raises(ValueError, match="unknown attribute 'hair_color'"):
        population.value(0, "hair_color")
    with pytest.raises(ValueError, match="out of range"):
        population.value(N, "major")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_people": 0, "seed": 0}, "num_people must be an int >= 1"),
        ({"num_people": -5, "seed": 0}, "num_people must be an int >= 1"),
        ({"num_people": 2.5, "seed": 0}, "num_people must be an int >= 1"),
        ({"num_people": True, "seed": 0}, "num_people must be an int >= 1"),
        ({"num_people": 10, "seed": -1}, "seed must be an int >= 0"),
        ({"num_people": 160_000_001, "seed": 0}, "exceeds the 160000000 distinct full names"),
        ({"num_people": 10, "seed": 0, "pool_sizes": {"major": 0}}, "would be empty"),
        ({"num_people": 10, "seed": 0, "pool_sizes": {"eye_color": 3}}, "unknown pool 'eye_color'"),
        ({"num_people": 10, "seed": 0, "pool_sizes": {"university": 301}}, "exceeds the 300 entries"),
    ],
)
def test_bad_population_parameters_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Population(**kwargs)


def test_pool_subset_restricts_values():
    population = Population(2000, seed=1, pool_sizes={"major": 3, "birth_date": 10})
    assert set(population.attributes[:, 3]) == {0, 1, 2}
    assert population.pools["major"] == population.pools["major"][:3]
    assert all(population.value(p, "birth_date").endswith("1900") for p in range(50))
    assert population.bits_per_person < Population(10, seed=1).bits_per_person


# ---------------------------------------------------------------- rendering


@settings(max_examples=40, deadline=None)
@given(person=st.integers(0, N - 1), exposure=st.integers(0, 2**32 - 1))
def test_bio_holds_each_value_once_and_the_name_in_every_sentence(byte_bio, person, exposure):
    text = byte_bio.render_text(person, exposure)
    found = parse_bio(byte_bio, person, text)
    order, template = byte_bio.choices(np.array(person), np.array(exposure))
    assert [a for a, _ in found] == list(order)
    assert [t for _, t in sorted(found)] == list(template)


@settings(max_examples=30, deadline=None)
@given(person=st.integers(0, N - 1), exposure=st.integers(0, 10**6))
def test_text_and_tokens_agree(any_bio, person, exposure):
    tokens = any_bio.render_tokens(person, exposure)
    assert tokens.dtype == np.int32
    assert any_bio.tokenizer.decode(tokens) == any_bio.render_text(person, exposure)


def test_rendering_is_deterministic_across_instances(population):
    a = SynBio(population, ByteTokenizer(), seed=11)
    b = SynBio(Population(N, SEED), ByteTokenizer(), seed=11)
    c = SynBio(population, ByteTokenizer(), seed=12)
    for person, exposure in [(0, 0), (5, 3), (N - 1, 2**32 - 1)]:
        assert np.array_equal(a.render_tokens(person, exposure), b.render_tokens(person, exposure))
        assert a.render_text(person, exposure) == b.render_text(person, exposure)
    texts_a = [a.render_text(p, 0) for p in range(50)]
    assert sum(t != c.render_text(p, 0) for p, t in enumerate(texts_a)) > 40  # the seed matters


def _reference_hash(seed: int, a: int, b: int) -> int:
    """counter_hash in plain Python integers (SplitMix64 finaliser, two rounds)."""
    mask = 2**64 - 1

    def fmix(x: int) -> int:
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
        return x ^ (x >> 31)

    seed_key = fmix((seed * 0x9E3779B97F4A7C15 + 1) & mask)
    return fmix(fmix(((a << 32 | b) * 0x9E3779B97F4A7C15 + seed_key) & mask) ^ seed_key)


def test_counter_hash_golden_values():
    """Pinned outputs: a change here re-renders every existing SynBio stream, so update only deliberately."""
    a, b = np.array([0, 1, 0, 123456]), np.array([0, 0, 1, 789])
    h = counter_hash(0, a, b)
    assert h.dtype == np.uint64
    assert [int(x) for x in h] == [0x122621FA2B69FD57, 0x761AD0F77F6DF866, 0x8B122FC410FF7C98, 0xA0AAB1C2D4A0C5C1]
    assert int(counter_hash(7, np.array([0]), np.array([0]))[0]) == 0x44E55E704F92C143
    for seed, x, y in [(0, 5, 9), (3, 2**32 - 1, 2**32 - 1), (2**40, 17, 0)]:
        assert int(counter_hash(seed, np.array([x]), np.array([y]))[0]) == _reference_hash(seed, x, y)


def test_a_new_exposure_changes_order_or_templates(byte_bio):
    people = np.arange(N)
    order0, template0 = byte_bio.choices(people, np.int64(0))
    order1, template1 = byte_bio.choices(people, np.int64(1))
    same = (order0 == order1).all(axis=1) & (template0 == template1).all(axis=1)
    assert same.sum() <= 2  # a repeat has probability 1/375000 per person
    texts = {byte_bio.render_text(0, e) for e in range(20)}
    assert len(texts) == 20


def test_order_and_templates_are_uniform_and_independent(byte_bio):
    people = np.arange(N)[:, None]
    exposures = np.arange(400)[None, :]
    order, template = byte_bio.choices(people, exposures)  # [N, 400, 5]
    order_code = np.unique(order.reshape(-1, 5), axis=0, return_inverse=True)[1].ravel()
    assert len(np.unique(order_code)) == 120
    assert stats.chisquare(np.bincount(order_code, minlength=120)).pvalue > 1e-3
    for a in range(5):
        assert stats.chisquare(np.bincount(template[..., a].ravel(), minlength=5)).pvalue > 1e-3
    joint = template[..., 0].ravel() * 5 + template[..., 1].ravel()
    assert stats.chisquare(np.bincount(joint, minlength=25)).pvalue > 1e-3
    consecutive = np.zeros((5, 5))
    np.add.at(consecutive, (order[:, :-1, 0].ravel(), order[:, 1:, 0].ravel()), 1)
    assert stats.chi2_contingency(consecutive).pvalue > 1e-3  # first sentence of exposure e vs e+1


def test_render_batch_and_lengths_match_single_renders(any_bio):
    people = np.array([3, 3, 0, N - 1, 17, 42])
    exposures = np.array([0, 1, 5, 2**32 - 1, 9, 9])
    flat, offsets = any_bio.render_batch(people, exposures)
    assert offsets[0] == 0 and offsets[-1] == flat.size and flat.dtype == np.int32
    lengths = any_bio.bio_lengths(people, exposures)
    for i, (p, e) in enumerate(zip(people, exposures, strict=True)):
        single = any_bio.render_tokens(int(p), int(e))
        assert np.array_equal(flat[offsets[i] : offsets[i + 1]], single)
        assert lengths[i] == len(single)
    grid = any_bio.bio_lengths(np.arange(4)[:, None], np.arange(3)[None, :])
    assert grid.shape == (4, 3) and grid[2, 1] == len(any_bio.render_tokens(2, 1))


def test_mean_and_max_bio_tokens(byte_bio, population):
    lengths = byte_bio.bio_lengths(np.arange(N)[:, None], np.arange(200)[None, :])
    assert lengths.max() <= byte_bio.max_bio_tokens
    assert abs(lengths.mean() - byte_bio.mean_bio_tokens) < 0.005 * byte_bio.mean_bio_tokens
    longest_templates = sum(max(len(t.middle + t.suffix) for t in templates(a)) for a in ATTRIBUTES)
    longest_person = max(
        5 * len(population.name(p)) + sum(len(" " + population.value(p, a)) for a in ATTRIBUTES) for p in range(N)
    )
    assert byte_bio.max_bio_tokens == longest_person + longest_templates + 4  # 4 newline separators


@pytest.mark.parametrize(
    "person, exposure, message",
    [(N, 0, "out of range"), (-1, 0, r"people must lie in \[0, 2\^32\)"), (0, -1, "exposures must lie"),
     (0, 2**32, "exposures must lie")],
)  # fmt: skip
def test_bad_render_arguments_are_clear_errors(byte_bio, person, exposure, message):
    with pytest.raises(ValueError, match=message):
        byte_bio.render_tokens(person, exposure)
    with pytest.raises(ValueError, match=message):
        byte_bio.bio_lengths(np.array([person]), np.array([exposure]))


# ---------------------------------------------------------------- evaluation set


@pytest.fixture(scope="module")
def byte_eval(byte_bio):
    return byte_bio.eval_set()


def test_eval_set_shape_and_contents(byte_bio, byte_eval, population):
    ev = byte_eval
    assert len(ev) == N * 25
    assert ev.pool_sizes == {a: population.pool_sizes[a] for a in ATTRIBUTES}
    assert np.array_equal(ev.person, np.repeat(np.arange(N), 25))
    tok = byte_bio.tokenizer
    for i in [0, 1, 7, 24, 25 * 17 + 13, len(ev) - 1]:
        p, a, t = int(ev.person[i]), int(ev.attribute[i]), int(ev.template[i])
        template = templates(ATTRIBUTES[a])[t]
        assert tok.decode(ev.prompt[i, : ev.prompt_len[i]]) == population.name(p) + template.middle
        assert tok.decode(ev.value[i, : ev.value_len[i]]) == " " + population.value(p, ATTRIBUTES[a])
        assert not ev.prompt[i, ev.prompt_len[i] :].any() and not ev.value[i, ev.value_len[i] :].any()


@settings(max_examples=25, deadline=None)
@given(person=st.integers(0, N - 1), exposure=st.integers(0, 2**32 - 1))
def test_eval_spans_are_contiguous_in_training_tokens(byte_bio, byte_eval, person, exposure):
    tokens = byte_bio.render_tokens(person, exposure)
    sep = np.asarray(byte_bio.tokenizer.encode("\n"))
    _, template = byte_bio.choices(np.array(person), np.array(exposure))
    for a in range(5):
        for t in range(5):
            i = person * 25 + a * 5 + t
            assert (byte_eval.person[i], byte_eval.attribute[i], byte_eval.template[i]) == (person, a, t)
            span = np.concatenate([byte_eval.prompt[i, : byte_eval.prompt_len[i]],
                                   byte_eval.value[i, : byte_eval.value_len[i]]])  # fmt: skip
            starts = find_span(tokens, span)
            if t == template[a]:
                assert len(starts) == 1
                start = starts[0]
                assert start == 0 or np.array_equal(tokens[start - len(sep) : start], sep)  # at a sentence start
            else:
                assert starts == []


def test_eval_spans_contiguous_with_chunk_tokenizer(chunk_bio):
    ev = chunk_bio.eval_set(np.array([4, 9]))
    assert set(ev.person) == {4, 9}
    for person in (4, 9):
        for exposure in range(6):
            tokens = chunk_bio.render_tokens(person, exposure)
            _, template = chunk_bio.choices(np.array(person), np.array(exposure))
            rows = np.flatnonzero((ev.person == person) & (ev.template == template[ev.attribute]))
            assert len(rows) == 5
            for i in rows:
                span = np.concatenate([ev.prompt[i, : ev.prompt_len[i]], ev.value[i, : ev.value_len[i]]])
                assert find_span(tokens, span), (person, exposure, i)


def test_eval_subset_matches_direct_construction(byte_bio, byte_eval):
    people = np.array([250, 3, 77])
    sub, direct = byte_eval.subset(people), byte_bio.eval_set(np.sort(people))
    assert np.array_equal(sub.person, direct.person) and np.array_equal(sub.template, direct.template)
    for i in range(len(sub)):
        assert np.array_equal(sub.prompt[i, : sub.prompt_len[i]], direct.prompt[i, : direct.prompt_len[i]])
        assert np.array_equal(sub.value[i, : sub.value_len[i]], direct.value[i, : direct.value_len[i]])
    assert sub.pool_sizes == byte_eval.pool_sizes


# ---------------------------------------------------------------- real byte-level BPE


@pytest.fixture(scope="module")
def bpe_bio(population, byte_bio, tmp_path_factory):
    from data_gen.tokenizer import train_bpe

    texts = [byte_bio.render_text(p, e) for p in range(N) for e in range(2)]
    tokenizer = train_bpe(texts, vocab_size=700, out_path=tmp_path_factory.mktemp("bpe") / "tokenizer.json")
    return SynBio(population, tokenizer, seed=SEED)


def test_bpe_rendering_is_the_canonical_tokenization(bpe_bio):
    """Pieces split only at pre-token boundaries (values carry their leading space, sentences end in '\\n'), so the
    concatenation equals encoding the whole text: training tokens look like ordinary BPE text."""
    tokenizer = bpe_bio.tokenizer
    for person in range(0, N, 7):
        for exposure in (0, 1, 12345):
            tokens = bpe_bio.render_tokens(person, exposure)
            text = bpe_bio.render_text(person, exposure)
            assert tokenizer.decode(tokens) == text
            assert tokenizer.encode(text) == tokens.tolist()
    assert bpe_bio.mean_bio_tokens < 0.5 * len(bpe_bio.render_text(0, 0))


def test_bpe_eval_spans_are_contiguous(bpe_bio):
    ev = bpe_bio.eval_set(np.arange(0, N, 29))
    for person in np.unique(ev.person):
        for exposure in (0, 3):
            tokens = bpe_bio.render_tokens(int(person), exposure)
            _, template = bpe_bio.choices(np.array(person), np.array(exposure))
            rows = np.flatnonzero((ev.person == person) & (ev.template == template[ev.attribute]))
            for i in rows:
                span = np.concatenate([ev.prompt[i, : ev.prompt_len[i]], ev.value[i, : ev.value_len[i]]])
                assert len(find_span(tokens, span)) == 1
                prompt_text = bpe_bio.tokenizer.decode(ev.prompt[i, : ev.prompt_len[i]])
                assert not prompt_text.endswith(" ")  # the prompt ends on a word; the value brings the space


# ---------------------------------------------------------------- variants


def test_subsample_is_a_seeded_sorted_fraction():
    ids = subsample(1000, 0.25, seed=3)
    assert len(ids) == 250 and np.all(np.diff(ids) > 0) and ids.min() >= 0 and ids.max() < 1000
    assert np.array_equal(ids, subsample(1000, 0.25, seed=3))
    assert not np.array_equal(ids, subsample(1000, 0.25, seed=4))
    assert np.array_equal(subsample(10, 1.0, seed=0), np.arange(10))
    assert len(subsample(10, 0.01, seed=0)) == 1


@pytest.mark.parametrize("rho", [0.0, -0.1, 1.5, float("nan")])
def test_subsample_rejects_bad_rho(rho):
    with pytest.raises(ValueError, match="rho must lie in"):
        subsample(100, rho, seed=0)


def test_power_law_groups():
    groups = PowerLawGroups(num_groups=100, group_size=100, beta=1.5)
    w = groups.group_weights
    assert w.shape == (100,) and w.sum() == pytest.approx(1.0)
    assert w[0] / w[1] == pytest.approx(2**1.5) and w[9] / w[99] == pytest.approx(10**1.5)
    assert groups.num_people == 10_000
    assert groups.person_probs.sum() == pytest.approx(1.0)
    assert groups.person_probs[150] == pytest.approx(w[1] / 100)
    assert list(groups.group_of(np.array([0, 99, 100, 9999]))) == [0, 0, 1, 99]
    with pytest.raises(ValueError, match="people must lie in"):
        groups.group_of(np.array([10_000]))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"num_groups": 0, "group_size": 5}, "num_groups"), ({"num_groups": 5, "group_size": 0}, "group_size"),
     ({"num_groups": 5, "group_size": 5, "beta": -1.0}, "beta"),
     ({"num_groups": 5, "group_size": 5, "beta": float("inf")}, "beta")],
)  # fmt: skip
def test_power_law_groups_reject_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PowerLawGroups(**kwargs)

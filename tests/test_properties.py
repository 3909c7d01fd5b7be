"""Property tests (hypothesis, derandomized): the mixture stream on real sources, SynBio invariants on random
populations, and the analysis fits on small or degenerate inputs (a result or ok=False with a reason, never a crash).
"""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from analysis.curves import Curve
from analysis.growth import fit_growth
from analysis.jump import MIN_POINTS, jump_test
from analysis.predict import Interval, predict_thresholds
from analysis.scaling import fit_power_law, fit_web_loss
from analysis.simulate import simulate_results
from analysis.thresholds import crossing, fit_sigmoid
from data_gen.synbio import ATTRIBUTES, ByteTokenizer, Population, PowerLawGroups, SynBio, subsample
from data_gen.synbio_fields import NAME_POOLS, full_pool_size, templates
from data_gen.web import WebSource, build_store
from mixlab.mixture import MixtureStream, Prefetcher
from mixlab.sources import PowerLawSource, SynBioSource

TOKENIZER = ByteTokenizer()
EOS = TOKENIZER.eos_id
PEOPLE = 24  # the mixture's knowledge set: 4 power-law groups of 6


def props(max_examples: int):
    """Fast and deterministic: a fixed seed per test (derandomize), no example database, no deadline."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


# ------------------------------------------------------------------------------------------------ mixture stream


@pytest.fixture(scope="module")
def synbio() -> SynBio:
    return SynBio(Population(PEOPLE, seed=0), TOKENIZER, seed=0)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A web store of 12 short documents (an epoch of a few hundred tokens, so slices cross epochs)."""
    words = "the of and to in is was for on that with as by at from an are be this which".split()
    rng = np.random.default_rng(0)
    docs = [" ".join(rng.choice(words, rng.integers(1, 12))) + "." for _ in range(12)]
    return build_store(docs, TOKENIZER, tmp_path_factory.mktemp("web"), val_fraction=0.0, seed=0)


def knowledge(synbio: SynBio, kind: str, seed: int):
    if kind == "passes":
        return SynBioSource(synbio, seed)
    return PowerLawSource(synbio, seed, PowerLawGroups(4, PEOPLE // 4, beta=1.5), docs_per_chunk=10)


def stream_of(synbio, store, kind, ratio, B, L, seed) -> MixtureStream:
    """A fresh stream (fresh sources, so no cache is shared with another one)."""
    return MixtureStream(knowledge(synbio, kind, seed), WebSource(store, seed, EOS), ratio, L, B, seed, EOS)


stream_args = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["passes", "power_law"]),
        "ratio": st.one_of(st.sampled_from([0.0, 1.0, 0.5, 1e-4, 1 - 1e-4]), st.floats(0.0, 1.0)),
        "B": st.integers(1, 4),
        "extra_L": st.integers(0, 40),  # seq_len = the longest biography + extra_L
        "seed": st.integers(0, 2**31 - 1),
    }
)


def make_stream(synbio, store, args) -> MixtureStream | None:
    """The stream of `args`, or None where the ratio rounds to no knowledge or no web slot (a ValueError)."""
    L, B, ratio = synbio.max_bio_tokens + args["extra_L"], args["B"], args["ratio"]
    ks = round(ratio * B * L)
    if (ratio > 0 and ks == 0) or (ratio < 1 and ks == B * L):
        with pytest.raises(ValueError, match="rounds to 0"):
            stream_of(synbio, store, args["kind"], ratio, B, L, args["seed"])
        return None
    return stream_of(synbio, store, args["kind"], ratio, B, L, args["seed"])


def assert_same_batch(a, b) -> None:
    for field in ("tokens", "targets", "loss_mask", "source"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert (a.step, a.knowledge_tokens, a.web_tokens) == (b.step, b.knowledge_tokens, b.web_tokens)


@props(40)
@given(args=stream_args, step=st.integers(0, 30), process_count=st.sampled_from([1, 2, 4]))
def test_every_batch_holds_exactly_the_promised_knowledge_tokens(synbio, store, args, step, process_count):
    stream = make_stream(synbio, store, args)
    if stream is None:
        return
    B, L = stream.global_batch, stream.seq_len
    ks = round(args["ratio"] * B * L)
    junction = int(0 < ks < B * L)
    process_count = process_count if B % process_count == 0 else 1
    parts = [stream.batch(step, p, process_count) for p in range(process_count)]
    source = np.concatenate([b.source for b in parts])
    targets = np.concatenate([b.targets for b in parts])
    mask = np.concatenate([b.loss_mask for b in parts])
    assert stream.knowledge_tokens_per_batch == ks == int((source == 1).sum())
    assert all(b.knowledge_tokens == ks and b.web_tokens == B * L - ks - junction for b in parts)
    assert mask[source == 1].min(initial=1.0) == 1.0 and mask.sum() == B * L - junction
    assert abs(ks / (B * L) - args["ratio"]) <= 1 / (2 * B * L) + 1e-12
    # a knowledge EOS target completes a document: the batch's count is the step's rise in exposures
    completed = int(stream.exposures(step + 1).sum() - stream.exposures(step).sum())
    assert int((targets[source == 1] == EOS).sum()) == completed


@props(25)
@given(args=stream_args, step=st.integers(0, 6))
def test_the_stream_is_deterministic_and_random_access_equals_iteration(synbio, store, args, step):
    direct = make_stream(synbio, store, args)
    if direct is None:
        return
    again = stream_of(synbio, store, args["kind"], direct.ratio, direct.global_batch, direct.seq_len, args["seed"])
    assert_same_batch(direct.batch(step), again.batch(step))
    iterated = stream_of(synbio, store, args["kind"], direct.ratio, direct.global_batch, direct.seq_len, args["seed"])
    with Prefetcher(iterated, start_step=0) as batches:
        for _ in range(step + 1):
            reached = next(batches)
    assert_same_batch(reached, direct.batch(step))
    np.testing.assert_array_equal(iterated.exposures(step), again.exposures(step))


@props(40)
@given(
    seed=st.integers(0, 2**31 - 1),
    start=st.integers(0, 3000),
    lengths=st.lists(st.integers(0, 400), min_size=1, max_size=4),
)
def test_web_slices_are_random_access_into_one_stream(store, seed, start, lengths):
    web = WebSource(store, seed, EOS)
    whole = WebSource(store, seed, EOS).tokens(0, start + sum(lengths))
    pieces = []
    for n in lengths:
        pieces.append(web.tokens(start + sum(map(len, pieces)), n))
    np.testing.assert_array_equal(np.concatenate(pieces), whole[start:])
    epoch = web.tokens_per_epoch  # the epoch holding `start`: every document once, each followed by EOS
    tokens = web.tokens(start // epoch * epoch, epoch)
    assert tokens[-1] == EOS and int((tokens == EOS).sum()) == store.num_docs
    np.testing.assert_array_equal(np.sort(tokens[tokens != EOS]), np.sort(np.asarray(store.tokens, np.int32)))


@props(20)
@given(kind=st.sampled_from(["passes", "power_law"]), seed=st.integers(0, 2**31 - 1), chunk=st.integers(0, 50))
def test_knowledge_chunks_agree_with_their_documents(synbio, kind, seed, chunk):
    source = knowledge(synbio, kind, seed)
    people, lengths = source.chunk_people(chunk), source.chunk_lengths(chunk)
    docs = [source.doc_tokens(chunk, p) for p in range(source.docs_per_chunk)]
    assert [len(d) for d in docs] == lengths.tolist() and lengths.max() <= source.max_doc_tokens
    np.testing.assert_array_equal(source.docs_tokens(chunk, 0, source.docs_per_chunk), np.concatenate(docs))
    assert people.min() >= 0 and people.max() < PEOPLE
    if kind == "passes":
        assert sorted(people.tolist()) == list(range(PEOPLE))


# ------------------------------------------------------------------------------------------------------- SynBio


@st.composite
def populations(draw) -> Population:
    """A population over random pool sizes (names kept small, so that some runs exhaust the name space)."""
    caps = {"first_name": 6, "middle_name": 4, "last_name": 8}
    sizes = {p: draw(st.integers(1, caps.get(p, full_pool_size(p)))) for p in NAME_POOLS + ATTRIBUTES}
    names = sizes["first_name"] * sizes["middle_name"] * sizes["last_name"]
    return Population(draw(st.integers(1, min(names, 40))), draw(st.integers(0, 2**31 - 1)), sizes)


@props(30)
@given(population=populations(), seed=st.integers(0, 2**31 - 1), exposures=st.lists(st.integers(0, 2**32 - 1)))
def test_every_biography_states_each_value_and_its_tokens_agree(population, seed, exposures):
    synbio = SynBio(population, TOKENIZER, seed)
    people = np.arange(population.num_people)
    exposure = np.resize(np.asarray(exposures or [0], np.int64), people.size)
    tokens, offsets = synbio.render_batch(people, exposure)
    np.testing.assert_array_equal(np.diff(offsets), synbio.bio_lengths(people, exposure))
    assert np.diff(offsets).max() <= synbio.max_bio_tokens
    assert len(set(population.names)) == population.num_people
    order, template = synbio.choices(people, exposure)
    for p, e in zip(people.tolist(), exposure.tolist(), strict=True):
        single = synbio.render_tokens(p, e)
        np.testing.assert_array_equal(tokens[offsets[p] : offsets[p + 1]], single)
        sentences = []  # one per attribute, in the drawn order: "{name}<middle> {value}<suffix>"
        for a in order[p]:
            t = templates(ATTRIBUTES[a])[template[p, a]]
            sentences.append(f"{population.name(p)}{t.middle} {population.value(p, ATTRIBUTES[a])}{t.suffix}")
        assert sorted(order[p]) == list(range(len(ATTRIBUTES)))
        assert TOKENIZER.decode(single) == "\n".join(sentences) == synbio.render_text(p, e)


@props(20)
@given(population=populations(), seed=st.integers(0, 2**31 - 1), exposure=st.integers(0, 2**32 - 1))
def test_eval_items_carry_the_populations_values_as_rendered(population, seed, exposure):
    synbio = SynBio(population, TOKENIZER, seed)
    ev = synbio.eval_set()
    assert len(ev) == population.num_people * sum(len(templates(a)) for a in ATTRIBUTES)
    _, chosen = synbio.choices(np.arange(population.num_people), np.full(population.num_people, exposure))
    for i in range(len(ev)):
        p, a, t = int(ev.person[i]), int(ev.attribute[i]), int(ev.template[i])
        prompt = TOKENIZER.decode(ev.prompt[i, : ev.prompt_len[i]])
        value = TOKENIZER.decode(ev.value[i, : ev.value_len[i]])
        assert value == " " + population.value(p, ATTRIBUTES[a])
        assert prompt == population.name(p) + templates(ATTRIBUTES[a])[t].middle
        if chosen[p, a] == t:  # the template this exposure uses: prompt + value is a span of the biography
            assert prompt + value in synbio.render_text(p, exposure)


@props(20)
@given(population=populations(), seed=st.integers(0, 2**31 - 1), exposure=st.integers(0, 2**32 - 1))
def test_synbio_is_a_pure_function_of_its_seeds(population, seed, exposure):
    twin = Population(population.num_people, population.seed, population.pool_sizes)
    np.testing.assert_array_equal(twin.attributes, population.attributes)
    np.testing.assert_array_equal(twin.name_parts, population.name_parts)
    a, b = SynBio(population, TOKENIZER, seed), SynBio(twin, ByteTokenizer(), seed)
    people = np.arange(population.num_people)
    np.testing.assert_array_equal(a.render_batch(people, exposure)[0], b.render_batch(people, exposure)[0])
    np.testing.assert_array_equal(a.eval_set().prompt, b.eval_set().prompt)


@props(60)
@given(num_people=st.integers(1, 5000), rho=st.floats(1e-6, 1.0), seed=st.integers(0, 2**31 - 1))
def test_subsamples_are_seeded_sorted_distinct_and_sized(num_people, rho, seed):
    ids = subsample(num_people, rho, seed)
    assert len(ids) == max(1, round(rho * num_people))
    assert np.all(np.diff(ids) > 0) and ids.min() >= 0 and ids.max() < num_people
    np.testing.assert_array_equal(ids, subsample(num_people, rho, seed))


@props(60)
@given(num_groups=st.integers(1, 500), group_size=st.integers(1, 50), beta=st.floats(0.0, 20.0))
def test_power_law_group_weights_are_a_decreasing_distribution(num_groups, group_size, beta):
    groups = PowerLawGroups(num_groups, group_size, beta)
    w = groups.group_weights
    assert w.shape == (num_groups,) and np.all(w > 0) and math.isclose(w.sum(), 1.0, rel_tol=1e-9)
    assert np.all(np.diff(w) <= 0)
    assert math.isclose(groups.person_probs.sum(), 1.0, rel_tol=1e-9)
    np.testing.assert_array_equal(
        groups.group_of(np.arange(groups.num_people)), np.arange(groups.num_people) // group_size
    )


# --------------------------------------------------------------------------------------------------------- fits

POSITIVE = st.one_of(st.sampled_from([1e-4, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 1e3, 1e9]), st.floats(1e-6, 1e12))
BAD = st.sampled_from([0.0, -1.0, math.nan, math.inf, -math.inf])


@st.composite
def spoiled(draw, values: np.ndarray) -> np.ndarray:
    """The values, or (one time in three) a copy with one entry replaced by a bad number."""
    if len(values) and draw(st.integers(0, 2)) == 0:
        values = values.copy()
        values[draw(st.integers(0, len(values) - 1))] = draw(BAD)
    return values


@st.composite
def curves(draw, max_points: int = 9) -> Curve:
    """Counts of a small accuracy curve (x with repeats): random, all 0, all correct, rising, NaN-holed or with
    n_eval 0; any of x, k or n possibly spoiled by one bad number."""
    rows = draw(st.integers(0, max_points))
    x = np.asarray(draw(st.lists(POSITIVE, min_size=rows, max_size=rows)), float)
    n = np.asarray(draw(st.lists(st.sampled_from([1, 2, 50, 400]), min_size=rows, max_size=rows)), float)
    mode = draw(st.sampled_from(["random", "zeros", "ones", "rising", "rising", "nan", "empty"]))
    rank = np.argsort(np.argsort(x, kind="stable"), kind="stable")
    k = {
        "random": np.floor(n * np.asarray(draw(st.lists(st.floats(0, 1), min_size=rows, max_size=rows)))),
        "zeros": 0 * n,
        "ones": n,
        "rising": np.floor(n * (rank + 0.5) / max(rows, 1)),
        "nan": np.where(np.arange(rows) % 2, np.nan, n / 2),
        "empty": 0 * n,
    }[mode]
    if mode == "empty":
        n = 0 * n
    which = draw(st.sampled_from(["x", "k", "n", None]))
    x, k, n = (draw(spoiled(v)) if which == name else v for name, v in (("x", x), ("k", k), ("n", n)))
    return Curve.from_arrays(x, k, n, seed=draw(st.lists(st.integers(0, 2), min_size=rows, max_size=rows)))


@st.composite
def points(draw) -> tuple[np.ndarray, np.ndarray]:
    """0-7 points (x, y): random positive numbers or near a power law, either possibly spoiled by a bad number."""
    n = draw(st.integers(0, 7))
    x = np.asarray(draw(st.lists(POSITIVE, min_size=n, max_size=n)), float)
    if draw(st.booleans()):
        y = 2.0 * x**-0.3 * np.exp(np.asarray(draw(st.lists(st.floats(-0.1, 0.1), min_size=n, max_size=n))))
    else:
        y = np.asarray(draw(st.lists(POSITIVE, min_size=n, max_size=n)), float)
    return draw(spoiled(x)), draw(spoiled(y))


def assert_failed_with_reason(result) -> None:
    assert not result.ok and isinstance(result.reason, str) and result.reason.strip()


@props(80)
@given(curve=curves(), n_boot=st.sampled_from([1, 2, 20]))
def test_sigmoid_fits_give_a_threshold_with_a_ci_or_a_reason(curve, n_boot):
    fit = fit_sigmoid(curve, n_boot=n_boot)
    if fit.ok:
        assert np.isfinite([fit.x_star, fit.w, fit.lo, fit.hi]).all() and len(fit.ci["x_star"]) == 2
    else:
        assert_failed_with_reason(fit)
        assert math.isnan(fit.x_star)


@props(100)
@given(curve=curves(), target=st.floats(0.01, 0.99), n_boot=st.sampled_from([1, 2, 20]))
def test_crossings_give_a_threshold_with_a_ci_or_a_reason(curve, target, n_boot):
    result = crossing(curve, target, n_boot=n_boot)
    if result.ok:
        assert np.isfinite(result.x_cross) and len(result.ci) == 2
    else:
        assert_failed_with_reason(result)


@props(30)
@given(curve=curves(max_points=MIN_POINTS + 3))
@example(curve=Curve.from_arrays([1e-4, 0.01, 0.05, 0.1, 0.2, 0.3], [0] * 6, [0] * 6))  # raised in numpy's binomial
def test_the_jump_test_runs_or_says_why_not(curve):
    result = jump_test(curve, n_draws=9)
    if result.tested:
        assert 0 < result.p_value <= 1 and np.isfinite(result.lr)
    else:
        assert result.reason.strip()


@props(80)
@given(xy=points(), n_boot=st.sampled_from([1, 2, 50]), pairs=st.sampled_from([None, True, False]))
@example(xy=([1.0435e11, 1.0318e11, 7.6192e10, 7.5329e10], [1e-4, 1e-4, 1e-4, 1.0]), n_boot=1, pairs=None)  # C = inf
def test_power_law_fits_give_an_exponent_with_a_ci_or_a_reason(xy, n_boot, pairs):
    fit = fit_power_law(*xy, n_boot=n_boot, pairs=pairs)
    if fit.ok:
        assert np.isfinite([fit.C, fit.k]).all() and len(fit.ci["k"]) == 2
    else:
        assert_failed_with_reason(fit)


@props(40)
@given(xy=points(), n_boot=st.sampled_from([1, 20]))
def test_web_loss_fits_give_parameters_with_cis_or_a_reason(xy, n_boot):
    fit = fit_web_loss(*xy, n_boot=n_boot)
    if fit.ok:
        assert np.isfinite([fit.E, fit.A, fit.alpha]).all() and len(fit.ci["alpha"]) == 2
    else:
        assert_failed_with_reason(fit)


@props(80)
@given(
    runs=st.lists(
        st.tuples(st.floats(0.01, 0.99), POSITIVE, st.sampled_from(["interval", "right", "left"])),
        min_size=0,
        max_size=8,
    )
)
def test_growth_fits_give_a_preference_or_a_reason(runs):
    ratio, tokens, censoring = (list(c) for c in zip(*runs, strict=True)) if runs else ([], [], [])
    t = np.asarray(tokens, float)
    table = pd.DataFrame(
        {
            "ratio": ratio,
            "tokens_to_target": np.where(np.array(censoring) == "interval", t, np.nan) if runs else [],
            "tokens_lo": t / 2,
            "tokens_hi": np.where(np.array(censoring) == "right", np.inf, 2 * t) if runs else [],
            "censoring": censoring,
            "ok": [True] * len(runs),
        }
    )
    result = fit_growth(table)
    if result.ok:
        assert result.preferred in ("power law", "exponential", "inconclusive")
        assert all(np.isfinite([law.a, law.b, law.sigma]).all() for law in result.laws.values())
    else:
        assert_failed_with_reason(result)


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    """A simulated results table with a known r*(M): mixture, web-only and knowledge-only runs, several evals each."""
    return simulate_results(seed=0)


@props(12)
@given(
    keep=st.floats(0.02, 1.0),
    rows_seed=st.integers(0, 2**31 - 1),
    blank=st.sampled_from([None, "web_loss", "n_correct", "acc", "num_people", "params_non_embedding"]),
    size=st.sampled_from(["2M", "70M", 1e4]),
    ratio=st.sampled_from([None, 0.2]),
)
def test_predictions_give_intervals_or_refusals_with_reasons(simulated, keep, rows_seed, blank, size, ratio):
    df = simulated[np.random.default_rng(rows_seed).random(len(simulated)) < keep]
    if df.empty:  # no parameter counts at all: ResultsFormatError, an input error
        return
    if blank:
        df = df.assign(**{blank: np.nan})
    pred = predict_thresholds(df, size, 30_000, ratio, n_boot=20)
    for route in pred.routes:
        if route.ok:
            assert isinstance(route.r_star, Interval) and isinstance(route.r_star.value, float)
        else:
            assert route.reason.strip() and f"{route.route} route refused: {route.reason}" in pred.refusals

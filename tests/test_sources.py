"""SynBioSource, CompactMixSource and PowerLawSource on real SynBio (byte tokenizer), the stream with a real
WebSource, and the run's stream built from a config (knowledge_source, mixture_stream)."""

import numpy as np
import pytest

from data_gen.prepare import Prepared
from data_gen.synbio import ByteTokenizer, Population, PowerLawGroups, SynBio
from data_gen.web import WebSource, build_store
from mixlab.config import ConfigError, base_config
from mixlab.mixture import MixtureStream
from mixlab.sources import CompactMixSource, PowerLawSource, SynBioSource, knowledge_source, mixture_stream

TOKENIZER = ByteTokenizer()


@pytest.fixture(scope="module")
def synbio() -> SynBio:
    return SynBio(Population(40, seed=0), TOKENIZER, seed=0)


def test_passes_are_fresh_permutations_of_the_training_people(synbio):
    source = SynBioSource(synbio, seed=1)
    chunks = [source.chunk_people(c) for c in range(4)]
    assert source.docs_per_chunk == 40 and source.num_people == 40
    assert all(sorted(c) == list(range(40)) for c in chunks)
    assert len({tuple(c) for c in chunks}) == 4
    np.testing.assert_array_equal(SynBioSource(synbio, seed=1).chunk_people(2), chunks[2])
    assert not np.array_equal(SynBioSource(synbio, seed=2).chunk_people(2), chunks[2])


def test_subsampled_passes_cover_only_the_chosen_people(synbio):
    people = np.array([3, 17, 5, 30])
    source = SynBioSource(synbio, seed=0, people=people)
    assert source.docs_per_chunk == 4 and source.num_people == 40
    assert sorted(source.chunk_people(7)) == [3, 5, 17, 30]


def test_documents_are_exposure_c_renderings(synbio):
    source = SynBioSource(synbio, seed=0)
    chunk = 3
    people = source.chunk_people(chunk)
    docs = [synbio.render_tokens(int(person), chunk) for person in people]
    np.testing.assert_array_equal(source.chunk_lengths(chunk), [len(d) for d in docs])
    for p in [0, 11, 39]:
        np.testing.assert_array_equal(source.doc_tokens(chunk, p), docs[p])
    np.testing.assert_array_equal(source.docs_tokens(chunk, 5, 9), np.concatenate(docs[5:9]))
    assert source.max_doc_tokens == synbio.max_bio_tokens >= max(map(len, docs))


@pytest.mark.parametrize("tau", [0.1, 0.3])
def test_compact_tuples_are_worth_tau_of_the_biographies(synbio, tau):
    source = CompactMixSource(synbio, seed=2, tau=tau)
    n, t = 40, source.num_compact
    mean_compact = synbio.compact_lengths(np.arange(n)).mean()
    assert source.docs_per_chunk == n + t and t == round(tau * n * synbio.mean_bio_tokens / mean_compact)
    bio_tokens = compact_tokens = 0
    for chunk in range(30):
        people, exposures, compact = source._layout(chunk)
        assert sorted(people[~compact]) == list(range(n)) and np.all(exposures[~compact] == chunk)
        lengths = source.chunk_lengths(chunk)
        bio_tokens, compact_tokens = bio_tokens + lengths[~compact].sum(), compact_tokens + lengths[compact].sum()
    assert compact_tokens / bio_tokens == pytest.approx(tau, rel=0.1)
    # every person gets tuples evenly: counts over the first passes differ by at most one
    counts = np.bincount(np.concatenate([source._layout(c)[0][source._layout(c)[2]] for c in range(30)]), minlength=n)
    assert counts.max() - counts.min() <= 1


def test_compact_documents_render_in_stream_order(synbio):
    source = CompactMixSource(synbio, seed=0, tau=0.3)
    people, exposures, compact = source._layout(5)
    docs = [
        synbio.render_compact_batch(np.array([p]), np.array([e]))[0] if c else synbio.render_tokens(int(p), int(e))
        for p, e, c in zip(people, exposures, compact, strict=True)
    ]
    np.testing.assert_array_equal(source.chunk_lengths(5), [len(d) for d in docs])
    np.testing.assert_array_equal(source.docs_tokens(5, 3, 20), np.concatenate(docs[3:20]))
    first = int(np.flatnonzero(compact)[0])
    text = bytes(docs[first].tolist()).decode()
    assert text == synbio.render_compact_text(int(people[first]), int(exposures[first])) and text.startswith("Bio: N ")
    for attribute in ("birth_date", "university", "employer"):
        assert synbio.population.value(int(people[first]), attribute) in text
    orders = {synbio.render_compact_text(0, e).split(" ")[5] for e in range(20)}
    assert len(orders) > 1  # the field order is redrawn per exposure
    np.testing.assert_array_equal(CompactMixSource(synbio, 0, 0.3).docs_tokens(5, 0, 44), source.docs_tokens(5, 0, 44))
    assert source.max_doc_tokens >= max(map(len, docs))


def test_compact_share_too_small_is_refused(synbio):
    d = base_config().data
    d.update(num_people=40, ckm_tau=1e-4)
    with pytest.raises(ConfigError, match=r"data.ckm_tau=0.0001: tau=0.0001 gives no compact tuple per pass"):
        knowledge_source(d, synbio, 0)
    d.ckm_tau = 0.2
    assert isinstance(knowledge_source(d, synbio, 0), CompactMixSource)


def test_power_law_draws_follow_the_group_weights(synbio):
    groups = PowerLawGroups(num_groups=4, group_size=10, beta=1.5)
    source = PowerLawSource(synbio, seed=0, groups=groups, docs_per_chunk=2000)
    draws = np.concatenate([source.chunk_people(c) for c in range(10)])
    freq = np.bincount(groups.group_of(draws), minlength=4) / draws.size
    se = np.sqrt(groups.group_weights * (1 - groups.group_weights) / draws.size)
    assert np.all(np.abs(freq - groups.group_weights) < 5 * se), (freq, groups.group_weights)
    members = draws[groups.group_of(draws) == 0] % 10
    assert set(members.tolist()) == set(range(10))
    np.testing.assert_array_equal(PowerLawSource(synbio, 0, groups, 2000).chunk_people(4), source.chunk_people(4))


def test_power_law_documents_render_the_global_document_index(synbio):
    source = PowerLawSource(synbio, seed=0, groups=PowerLawGroups(4, 10), docs_per_chunk=16)
    person = int(source.chunk_people(2)[5])
    np.testing.assert_array_equal(source.doc_tokens(2, 5), synbio.render_tokens(person, 2 * 16 + 5))
    lengths = [len(synbio.render_tokens(int(p), 2 * 16 + i)) for i, p in enumerate(source.chunk_people(2))]
    np.testing.assert_array_equal(source.chunk_lengths(2), lengths)


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda sb: SynBioSource(sb, seed=0, people=np.array([1, 1])), "distinct"),
        (lambda sb: SynBioSource(sb, seed=0, people=np.array([], np.int64)), "non-empty"),
        (lambda sb: SynBioSource(sb, seed=0, people=np.array([40])), "out of range"),
        (lambda sb: SynBioSource(sb, seed=-1), "seed"),
        (lambda sb: SynBioSource(sb, seed=0).chunk_people(-1), "chunk"),
        (lambda sb: PowerLawSource(sb, 0, PowerLawGroups(3, 10)), "power-law groups cover 30 people"),
        (lambda sb: PowerLawSource(sb, 0, PowerLawGroups(4, 10), docs_per_chunk=0), "docs_per_chunk"),
    ],
)
def test_source_errors(synbio, build, match):
    with pytest.raises(ValueError, match=match):
        build(synbio)


@pytest.fixture(scope="module")
def web(tmp_path_factory) -> WebSource:
    words = "the of and to in is was for on that with as by at from an are be this which".split()
    rng = np.random.default_rng(0)
    docs = [" ".join(rng.choice(words, rng.integers(5, 60))) + "." for _ in range(30)]
    store = build_store(docs, TOKENIZER, tmp_path_factory.mktemp("web"), val_fraction=0.1, seed=0)
    return WebSource(store, seed=0, eos_id=TOKENIZER.eos_id)


def test_stream_with_real_sources_decodes_to_biographies_and_web_text(synbio, web):
    people = np.arange(0, 40, 2)
    source = SynBioSource(synbio, seed=0, people=people)
    stream = MixtureStream(source, web, ratio=0.4, seq_len=512, global_batch=4, seed=0, eos_id=TOKENIZER.eos_id)
    K, W, steps = stream.knowledge_tokens_per_batch, stream.web_tokens_per_batch, 20
    knowledge, web_tokens = [], []
    for s in range(steps):
        batch = stream.batch(s)
        order = np.argsort(stream.row_permutation(s))
        targets, source_ids = batch.targets[order].reshape(-1), batch.source[order].reshape(-1)
        assert (source_ids[:K] == 1).all() and (source_ids[K:] == 0).all()
        knowledge.append(targets[:K])
        web_tokens.append(targets[K:])
    np.testing.assert_array_equal(np.concatenate(web_tokens), web.tokens(0, steps * W))

    # brute force: decode the knowledge stream, identify each completed biography by its name
    stream_tokens = np.concatenate(knowledge)
    eos = np.flatnonzero(stream_tokens == TOKENIZER.eos_id)
    starts = np.concatenate([[0], eos[:-1] + 1])
    complete = [TOKENIZER.decode(stream_tokens[a:b]) for a, b in zip(starts, eos, strict=True)]
    names = {name: i for i, name in enumerate(synbio.population.names)}
    counts = np.zeros(40, np.int64)
    for i, bio in enumerate(complete):
        person = next(names[n] for n in sorted(names, key=len, reverse=True) if bio.startswith(n))
        chunk = i // len(people)
        assert bio == synbio.render_text(person, chunk)
        counts[person] += 1
    np.testing.assert_array_equal(stream.exposures(steps), counts)
    assert counts[1::2].sum() == 0 and counts[people].min() >= 1 and len(complete) > len(people)


def test_knowledge_source_follows_the_data_config(synbio):
    d = base_config().data
    assert isinstance(knowledge_source(d, synbio, 0), SynBioSource)
    d.subsample = 0.5
    source = knowledge_source(d, synbio, 0)
    assert isinstance(source, SynBioSource) and len(source.people) == 20
    d.subsample, d.power_law_groups = 1.0, 4
    assert isinstance(knowledge_source(d, synbio, 0), PowerLawSource)


@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
def test_mixture_stream_of_a_run(synbio, web, ratio):
    config = base_config()
    config.seed, config.data.subsample = 3, 0.5
    config.data.ratio, config.data.seq_len, config.data.global_batch = ratio, 512, 2
    prepared = Prepared(TOKENIZER, web.store, None, synbio, synbio.eval_set())
    stream, people, _ = mixture_stream(config, prepared)
    source = knowledge_source(config.data, synbio, config.seed)
    np.testing.assert_array_equal(people, source.people)  # the training people, at r = 0 too
    assert (stream.knowledge is None) == (ratio == 0) and (stream.web is None) == (ratio == 1)
    expected = MixtureStream(
        source if ratio > 0 else None, WebSource(web.store, 3, TOKENIZER.eos_id) if ratio < 1 else None,
        ratio, 512, 2, 3, TOKENIZER.eos_id,
    )  # fmt: skip
    np.testing.assert_array_equal(stream.batch(5).targets, expected.batch(5).targets)

"""MixtureStream and Prefetcher on fake sources: exact ratio, layout, determinism, resume, slices, exposures."""

import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixlab.mixture import Batch, KnowledgeSource, MixtureStream, Prefetcher

EOS = 0
WEB_BASE = 5000  # web tokens are >= WEB_BASE, knowledge tokens (and EOS) are below it


class FakeKnowledge(KnowledgeSource):
    """Variable-length docs; the first token of a doc is 1 + person, the rest depend on the global doc index."""

    def __init__(self, num_people: int = 5, docs_per_chunk: int = 7, max_doc_tokens: int = 9, seed: int = 0):
        self.num_people, self.docs_per_chunk, self.max_doc_tokens, self.seed = (
            num_people,
            docs_per_chunk,
            max_doc_tokens,
            seed,
        )

    def chunk_people(self, chunk: int) -> np.ndarray:
        return np.random.default_rng([self.seed, chunk, 0]).integers(0, self.num_people, self.docs_per_chunk)

    def chunk_lengths(self, chunk: int) -> np.ndarray:
        return np.random.default_rng([self.seed, chunk, 1]).integers(1, self.max_doc_tokens + 1, self.docs_per_chunk)

    def doc_tokens(self, chunk: int, position: int) -> np.ndarray:
        person, n = self.chunk_people(chunk)[position], self.chunk_lengths(chunk)[position]
        doc_id = chunk * self.docs_per_chunk + position
        rest = [1 + self.num_people + (doc_id * 7 + k) % 97 for k in range(1, n)]
        return np.array([1 + person, *rest], np.int32)


class FakeWeb:
    """The web stream is a fixed array repeated."""

    def __init__(self, size: int = 101):
        self.array = (WEB_BASE + (np.arange(size) * 13) % 1000).astype(np.int32)
        self.tokens_per_epoch = size

    def tokens(self, start: int, length: int) -> np.ndarray:
        assert start >= 0 and length >= 0
        return self.array[(start + np.arange(length)) % self.tokens_per_epoch]


def make(ratio=0.3, seq_len=16, global_batch=8, seed=1, **knowledge_kwargs) -> MixtureStream:
    return MixtureStream(FakeKnowledge(**knowledge_kwargs), FakeWeb(), ratio, seq_len, global_batch, seed, EOS)


def reference_knowledge(source: FakeKnowledge, n: int) -> np.ndarray:
    """The first n tokens of "doc EOS doc EOS ...", by plain iteration."""
    out, chunk = [], 0
    while sum(map(len, out)) < n:
        for p in range(source.docs_per_chunk):
            out += [source.doc_tokens(chunk, p), np.array([EOS], np.int32)]
        chunk += 1
    return np.concatenate([np.zeros(0, np.int32), *out])[:n]


def unpermuted(stream: MixtureStream, batch: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flat layout [B*L + 1], source slots [B*L], loss mask slots [B*L]) of a full global batch."""
    inverse = np.argsort(stream.row_permutation(batch.step))
    tokens, targets = batch.tokens[inverse], batch.targets[inverse]
    assert np.array_equal(tokens[:, 1:], targets[:, :-1])
    assert np.array_equal(tokens[1:, 0], targets[:-1, -1])  # consecutive rows share one token
    flat = np.concatenate([tokens.reshape(-1), targets[-1, -1:]])
    return flat, batch.source[inverse].reshape(-1), batch.loss_mask[inverse].reshape(-1)


def assert_batches_equal(a: Batch, b: Batch) -> None:
    for field in ("tokens", "targets", "loss_mask", "source"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    for field in ("step", "knowledge_tokens", "web_tokens"):
        assert getattr(a, field) == getattr(b, field), field


GRID = [0.0, 0.05, 0.25, 0.5, 0.77, 1.0]


@settings(max_examples=60, deadline=None)
@given(
    ratio=st.one_of(st.sampled_from(GRID), st.floats(0.0, 1.0)),
    global_batch=st.sampled_from([1, 2, 4, 6]),
    seq_len=st.integers(9, 24),
    step=st.integers(0, 40),
    process_count=st.sampled_from([1, 2]),
)
def test_knowledge_slots_are_exact(ratio, global_batch, seq_len, step, process_count):
    slots = global_batch * seq_len
    ks = round(ratio * slots)
    if (ratio > 0 and ks == 0) or (ratio < 1 and ks == slots):
        with pytest.raises(ValueError, match="rounds to 0"):
            make(ratio, seq_len, global_batch)
        return
    process_count = process_count if global_batch % process_count == 0 else 1
    stream = make(ratio, seq_len, global_batch)
    parts = [stream.batch(step, p, process_count) for p in range(process_count)]
    source = np.concatenate([b.source for b in parts])
    targets = np.concatenate([b.targets for b in parts])
    mask = np.concatenate([b.loss_mask for b in parts])
    junction = int(0 < ks < slots)
    assert stream.knowledge_tokens_per_batch == ks == int((source == 1).sum())
    assert (targets[source == 1] < WEB_BASE).all() and (targets[source == 0] >= WEB_BASE).all()
    assert mask[source == 1].min(initial=1) == 1
    assert mask.sum() == slots - junction
    assert parts[0].knowledge_tokens == ks and parts[0].web_tokens == slots - ks - junction


@pytest.mark.parametrize("ratio", GRID)
@pytest.mark.parametrize("global_batch,seq_len", [(8, 16), (3, 9), (1, 20)])
def test_layout_matches_reference_streams(ratio, global_batch, seq_len):
    stream = make(ratio, seq_len, global_batch)
    ks, ws, steps = stream.knowledge_tokens_per_batch, stream.web_tokens_per_batch, 6
    kref = np.concatenate([[EOS], reference_knowledge(stream.knowledge, steps * ks)])  # kref[i + 1] = kstream[i]
    web = stream.web
    for s in range(steps):
        flat, source, mask = unpermuted(stream, stream.batch(s))
        expected = kref[s * ks : (s + 1) * ks + 1] if ks else np.zeros(0, np.int32)
        web_start = s * ws if ks else s * ws - 1
        wref = web.tokens(max(web_start, 0), (s + 1) * ws - max(web_start, 0))
        if web_start < 0:
            wref = np.concatenate([[EOS], wref])
        np.testing.assert_array_equal(flat, np.concatenate([expected, wref]))
        np.testing.assert_array_equal(source, np.arange(global_batch * seq_len) < ks)
        assert np.flatnonzero(mask == 0).tolist() == ([ks] if 0 < ks < global_batch * seq_len else [])


def test_deterministic_across_instances_and_seed_dependent():
    a, b = make(seed=3), make(seed=3)
    for s in [0, 5, 2]:
        assert_batches_equal(a.batch(s), b.batch(s))
    other = make(seed=4).batch(0)
    assert not np.array_equal(a.batch(0).tokens, other.tokens)


def test_rows_are_permuted_per_step():
    stream = make(ratio=0.25, global_batch=8)
    perms = [stream.row_permutation(s) for s in range(10)]
    assert all(sorted(p) == list(range(8)) for p in perms)
    first_rows_sources = {int(stream.batch(s).source[0, 0]) for s in range(10)}
    assert first_rows_sources == {0, 1}
    assert len({tuple(p) for p in perms}) > 1


def test_resume_at_step_k_gives_the_same_batches():
    sequential = make(docs_per_chunk=3)
    batches = [sequential.batch(s) for s in range(12)]
    resumed = make(docs_per_chunk=3)
    for s in [9, 10, 11, 4]:
        assert_batches_equal(resumed.batch(s), batches[s])


@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("process_count", [2, 4, 8])
def test_process_slices_reassemble(ratio, process_count):
    stream = make(ratio=ratio, global_batch=8)
    for s in [0, 3]:
        whole = stream.batch(s)
        parts = [make(ratio=ratio, global_batch=8).batch(s, p, process_count) for p in range(process_count)]
        for field in ("tokens", "targets", "loss_mask", "source"):
            np.testing.assert_array_equal(np.concatenate([getattr(b, field) for b in parts]), getattr(whole, field))
        for b in parts:
            assert b.tokens.shape == (8 // process_count, 16)
            assert (b.knowledge_tokens, b.web_tokens) == (whole.knowledge_tokens, whole.web_tokens)


@pytest.mark.parametrize("ratio,docs_per_chunk", [(0.3, 7), (1.0, 2), (0.05, 3)])
def test_exposures_equal_brute_force(ratio, docs_per_chunk):
    stream = make(ratio=ratio, docs_per_chunk=docs_per_chunk)
    P, ks, steps = stream.knowledge.num_people, stream.knowledge_tokens_per_batch, 14
    counts, in_doc, person, expected = np.zeros(P, np.int64), False, -1, [np.zeros(P, np.int64)]
    for s in range(steps):
        batch = stream.batch(s)
        flat, _, _ = unpermuted(stream, batch)
        for token in flat[1 : ks + 1]:  # this batch's knowledge targets, in stream order
            if token == EOS:
                counts[person] += 1
                in_doc = False
            elif not in_doc:
                person, in_doc = token - 1, True
        expected.append(counts.copy())
    for s in [3, steps, 0, 7, 1]:  # out of order, to exercise the cache reset
        np.testing.assert_array_equal(stream.exposures(s), expected[s], err_msg=f"step {s}")
    assert expected[steps].sum() > 2 * docs_per_chunk


def test_extreme_ratios_accept_a_missing_source():
    web_only = MixtureStream(None, FakeWeb(), 0.0, 16, 4, 0, EOS)
    assert (web_only.batch(2).source == 0).all()
    assert web_only.exposures(3).size == 0
    knowledge_only = MixtureStream(FakeKnowledge(), None, 1.0, 16, 4, 0, EOS)
    batch = knowledge_only.batch(2)
    assert (batch.source == 1).all() and batch.loss_mask.all() and batch.web_tokens == 0


def test_default_docs_tokens_concatenates_documents():
    source = FakeKnowledge()
    expected = np.concatenate([source.doc_tokens(2, p) for p in range(1, 5)])
    np.testing.assert_array_equal(source.docs_tokens(2, 1, 5), expected)


class WrongLengths(FakeKnowledge):
    def chunk_lengths(self, chunk: int) -> np.ndarray:
        return super().chunk_lengths(chunk) + 1


class ShortDocs(FakeKnowledge):
    def doc_tokens(self, chunk: int, position: int) -> np.ndarray:
        return super().doc_tokens(chunk, position)[:-1]


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: make(ratio=-0.1), "ratio must be in"),
        (lambda: make(ratio=1.5), "ratio must be in"),
        (lambda: make(ratio=float("nan")), "ratio must be in"),
        (lambda: make(seq_len=8, max_doc_tokens=9), "seq_len=8 is shorter than the longest knowledge document"),
        (lambda: make(seed=-1), "seed"),
        (lambda: MixtureStream(None, FakeWeb(), 0.5, 16, 4, 0, EOS), "needs a knowledge source"),
        (lambda: MixtureStream(FakeKnowledge(), None, 0.5, 16, 4, 0, EOS), "needs a web source"),
        (lambda: make().batch(0, 0, 3), "global_batch=8 is not divisible by process_count=3"),
        (lambda: make().batch(0, 2, 2), "process_index"),
        (lambda: make().batch(-1), "step"),
        (lambda: make().exposures(-1), "step"),
        (lambda: MixtureStream(ShortDocs(), FakeWeb(), 0.5, 16, 4, 0, EOS).batch(0), "chunk_lengths say"),
        (lambda: MixtureStream(WrongLengths(), FakeWeb(), 0.5, 16, 4, 0, EOS).batch(0), "outside"),
        (lambda: MixtureStream(object(), FakeWeb(), 0.5, 16, 4, 0, EOS), "KnowledgeSource lacks"),
        (lambda: MixtureStream(FakeKnowledge(), object(), 0.5, 16, 4, 0, EOS), "WebStream lacks"),
    ],
)
def test_clear_errors(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()


def test_seq_len_equal_to_longest_document_is_allowed():
    assert make(seq_len=9, max_doc_tokens=9).batch(0).tokens.shape == (8, 9)


class SlowStream:
    def __init__(self, stream: MixtureStream, delay: float, fail_at: int | None = None):
        self.stream, self.delay, self.fail_at = stream, delay, fail_at

    def batch(self, step: int, process_index: int = 0, process_count: int = 1) -> Batch:
        if step == self.fail_at:
            raise KeyError("boom")
        time.sleep(self.delay)
        return self.stream.batch(step, process_index, process_count)


def test_prefetcher_yields_the_stream_from_start_step():
    stream = make()
    with Prefetcher(stream, start_step=5, process_index=1, process_count=2) as prefetcher:
        got = [next(prefetcher) for _ in range(4)]
    for i, batch in enumerate(got):
        assert_batches_equal(batch, stream.batch(5 + i, 1, 2))
    assert not prefetcher._thread.is_alive()


def test_prefetcher_reports_time_waited():
    slow = Prefetcher(SlowStream(make(), delay=0.05), start_step=0)
    for _ in range(4):
        next(slow)
    slow.close()
    assert slow.wait_seconds >= 0.1
    fast = Prefetcher(make(), start_step=0, depth=3)
    time.sleep(0.2)  # the queue fills while the consumer is busy
    t0 = time.perf_counter()
    for _ in range(3):
        next(fast)
    fast.close()
    assert fast.wait_seconds <= time.perf_counter() - t0 < 0.05


def test_prefetcher_reraises_producer_errors_and_stops():
    prefetcher = Prefetcher(SlowStream(make(), delay=0.0, fail_at=2), start_step=0)
    next(prefetcher), next(prefetcher)
    with pytest.raises(RuntimeError, match="prefetch thread") as info:
        next(prefetcher)
    assert isinstance(info.value.__cause__, KeyError)
    assert not prefetcher._thread.is_alive()
    with pytest.raises(StopIteration):
        next(prefetcher)


def test_stream_is_thread_safe_under_concurrent_use():
    stream, reference = make(docs_per_chunk=3), make(docs_per_chunk=3)
    results: dict[int, Batch] = {}
    threads = [threading.Thread(target=lambda s=s: results.__setitem__(s, stream.batch(s))) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in range(8):
        assert_batches_equal(results[s], reference.batch(s))

"""The exact, stateless mixture stream: knowledge documents and web text packed into [B, L] batches.

Layout of global batch s (B rows of L target slots, flattened to B*L slots in row-major order), with
ks = round(ratio * B * L) knowledge slots (Python's round; MixtureStream.knowledge_tokens_per_batch) and
ws = B*L - ks web slots (web_tokens_per_batch):
- The ks knowledge target slots come first, then the ws web target slots.
- The knowledge stream is "doc_0 EOS doc_1 EOS ..." over all chunks of the knowledge source; batch s takes its
  slice [s*ks, (s+1)*ks). The web stream is WebStream.tokens(); batch s takes [s*ws, (s+1)*ws). Every stream token
  is a target slot exactly once over training, and the input before it is its true predecessor in the stream (the
  token at stream position -1 is EOS).
- The flat layout `flat` of batch s has B*L + 1 tokens: kstream[s*ks - 1 : (s+1)*ks] followed by
  wstream[s*ws : (s+1)*ws] (or wstream[s*ws - 1 : (s+1)*ws] when ks = 0). Row i is flat[i*L : i*L + L + 1], with
  tokens = row[:-1] and targets = row[1:], so consecutive rows share one token.
- A document that crosses a sequence boundary simply continues in the next row (and, across the batch boundary,
  in the first knowledge row of the next batch); the continuation is predicted without the earlier context.
- The junction: when 0 < ks < B*L, target slot ks (the first web target) has the last knowledge token as input;
  its loss_mask is 0. Every other slot has loss_mask 1.
- Rows are then permuted by a seeded per-step permutation; process p of P gets rows [p*B/P, (p+1)*B/P) of the
  permuted batch and builds only those rows.

What is exact, in every global batch: exactly ks target slots have source 1 (knowledge), all with loss_mask 1;
ws slots have source 0 (web), of which ws - [0 < ks < B*L] carry loss. ks/(B*L) differs from ratio by at most
1/(2*B*L). Exposures: a document is completed in the step whose knowledge slice holds its EOS.

Clear errors: ratio outside [0, 1]; 0 < ratio < 1 that rounds ks to 0 or to B*L; a missing source that the ratio
needs (r = 0 needs no knowledge source, r = 1 no web source); seq_len < knowledge.max_doc_tokens (the longest
document, without EOS); global_batch not divisible by process_count; a source whose lengths and tokens disagree.
Shape letters (B, L) follow the alphabet in mixlab/model.py; Bp = global_batch // process_count.
"""

from __future__ import annotations

import bisect
import dataclasses
import queue
import threading
import time
from collections import OrderedDict
from typing import Protocol

import numpy as np

_PERMUTATION_TAG = 0x6D6978  # separates the row-permutation RNG stream from any source's RNG streams


class KnowledgeSource(Protocol):
    """An infinite sequence of documents in chunks of `docs_per_chunk`; a pure function of (seed, chunk, position).

    Subclass it to inherit `docs_tokens` (a loop over `doc_tokens`), or override `docs_tokens` with a vectorised
    version. `max_doc_tokens` bounds every document's length (without EOS).
    """

    num_people: int
    docs_per_chunk: int
    max_doc_tokens: int

    def chunk_people(self, chunk: int) -> np.ndarray:
        """Person id of each document in the chunk, [docs_per_chunk] int."""
        ...

    def chunk_lengths(self, chunk: int) -> np.ndarray:
        """Token length (without EOS) of each document in the chunk, [docs_per_chunk] int."""
        ...

    def doc_tokens(self, chunk: int, position: int) -> np.ndarray:
        """Tokens of one document (without EOS), int32."""
        ...

    def docs_tokens(self, chunk: int, start: int, stop: int) -> np.ndarray:
        """Tokens of documents start..stop-1 of the chunk, concatenated without EOS, int32."""
        parts = [np.asarray(self.doc_tokens(chunk, p), dtype=np.int32) for p in range(start, stop)]
        return np.concatenate(parts) if parts else np.zeros(0, np.int32)


class WebStream(Protocol):
    """An infinite token stream "d(0) EOS d(1) EOS ..." with random access (data_gen.web.WebSource is one)."""

    def tokens(self, start: int, length: int) -> np.ndarray:
        """Slice [start, start + length) of the stream, int32."""
        ...


@dataclasses.dataclass(frozen=True)
class Batch:
    """This process's rows (Bp = global_batch // process_count) of one global batch; counters are global."""

    tokens: np.ndarray  # [Bp, L] int32
    targets: np.ndarray  # [Bp, L] int32
    loss_mask: np.ndarray  # [Bp, L] float32
    source: np.ndarray  # [Bp, L] int8: 1 = the target is a knowledge token, 0 = web
    step: int
    knowledge_tokens: int  # knowledge target slots in the global batch
    web_tokens: int  # loss-bearing web target slots in the global batch


def _require(obj: object, names: tuple[str, ...], what: str) -> None:
    missing = [n for n in names if not hasattr(obj, n)]
    if missing:
        raise TypeError(f"{what} lacks {missing}; it must implement the {what} protocol in mixlab/mixture.py")


class _KnowledgeIndex:
    """Random access into the knowledge stream via per-chunk cumulative document ends (cached)."""

    def __init__(self, source: KnowledgeSource, eos_id: int, cache_chunks: int = 4):
        self.source = source
        self.eos_id = eos_id
        self.docs_per_chunk = int(source.docs_per_chunk)
        self._starts = [0]  # stream offset of each chunk computed so far, plus the end of the last one
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_chunks = cache_chunks

    def chunk(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """(lengths, ends), each [docs_per_chunk] int64: length without EOS, absolute stream end incl. its EOS."""
        if c in self._cache:
            self._cache.move_to_end(c)
            return self._cache[c]
        lengths = np.asarray(self.source.chunk_lengths(c), dtype=np.int64)
        if lengths.shape != (self.docs_per_chunk,):
            raise ValueError(f"chunk_lengths({c}) has shape {lengths.shape}, expected ({self.docs_per_chunk},)")
        if lengths.size and (lengths.min() < 0 or lengths.max() > self.source.max_doc_tokens):
            raise ValueError(
                f"chunk_lengths({c}) outside [0, max_doc_tokens={self.source.max_doc_tokens}]: "
                f"min {lengths.min()}, max {lengths.max()}"
            )
        ends = self.start(c) + np.cumsum(lengths + 1)
        if c + 1 == len(self._starts):
            self._starts.append(int(ends[-1]))
        self._cache[c] = (lengths, ends)
        if len(self._cache) > self._cache_chunks:
            self._cache.popitem(last=False)
        return lengths, ends

    def start(self, c: int) -> int:
        """Stream offset of chunk c (computes the lengths of every earlier chunk once)."""
        while len(self._starts) <= c:
            self.chunk(len(self._starts) - 1)
        return self._starts[c]

    def chunk_of(self, pos: int) -> int:
        """The chunk holding stream position pos >= 0."""
        while self._starts[-1] <= pos:
            self.chunk(len(self._starts) - 1)
        return bisect.bisect_right(self._starts, pos) - 1

    def tokens(self, start: int, stop: int) -> np.ndarray:
        """Knowledge stream [start, stop), start >= -1 (position -1 is EOS)."""
        parts = []
        if start < 0:
            parts.append(np.full(1, self.eos_id, np.int32))
            start = 0
        while start < stop:
            c = self.chunk_of(start)
            lengths, ends = self.chunk(c)
            p0 = int(np.searchsorted(ends, start, side="right"))
            p1 = 1 + min(int(np.searchsorted(ends, stop, side="left")), self.docs_per_chunk - 1)
            toks = np.asarray(self.source.docs_tokens(c, p0, p1), dtype=np.int32)
            lens = lengths[p0:p1]
            if toks.size != int(lens.sum()):
                raise ValueError(
                    f"docs_tokens({c}, {p0}, {p1}) gave {toks.size} tokens, chunk_lengths say {lens.sum()}"
                )
            seg = np.full(toks.size + lens.size, self.eos_id, np.int32)
            is_doc = np.ones(seg.size, bool)
            is_doc[np.cumsum(lens + 1) - 1] = False
            seg[is_doc] = toks
            seg_start = int(ends[p0] - lens[0] - 1)
            seg_stop = min(stop, int(ends[p1 - 1]))
            parts.append(seg[start - seg_start : seg_stop - seg_start])
            start = seg_stop
        return np.concatenate(parts) if len(parts) != 1 else parts[0]

    def completed(self, end: int) -> tuple[int, int]:
        """(chunk c, n): the documents completed within stream [0, end) are all of chunks < c and n of chunk c."""
        c = self.chunk_of(end)
        _, ends = self.chunk(c)
        return c, int(np.searchsorted(ends, end, side="right"))


class MixtureStream:
    """Batches mixing a knowledge source and a web source at an exact token ratio; see the module docstring."""

    def __init__(
        self,
        knowledge: KnowledgeSource | None,
        web: WebStream | None,
        ratio: float,
        seq_len: int,
        global_batch: int,
        seed: int,
        eos_id: int,
    ):
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"ratio must be in [0, 1], got {ratio}")
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        if global_batch < 1:
            raise ValueError(f"global_batch must be >= 1, got {global_batch}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        slots = global_batch * seq_len
        self.knowledge_tokens_per_batch = round(ratio * slots)
        self.web_tokens_per_batch = slots - self.knowledge_tokens_per_batch
        if 0.0 < ratio and self.knowledge_tokens_per_batch == 0:
            raise ValueError(f"ratio={ratio} rounds to 0 knowledge tokens in a batch of {slots} target slots")
        if ratio < 1.0 and self.web_tokens_per_batch == 0:
            raise ValueError(f"ratio={ratio} rounds to 0 web tokens in a batch of {slots} target slots")
        if self.knowledge_tokens_per_batch:
            if knowledge is None:
                raise ValueError(f"ratio={ratio} > 0 needs a knowledge source, got None")
            _require(knowledge, ("num_people", "docs_per_chunk", "max_doc_tokens", "chunk_people"), "KnowledgeSource")
            _require(knowledge, ("chunk_lengths", "doc_tokens", "docs_tokens"), "KnowledgeSource")
            if seq_len < knowledge.max_doc_tokens:
                raise ValueError(
                    f"seq_len={seq_len} is shorter than the longest knowledge document "
                    f"(knowledge.max_doc_tokens={knowledge.max_doc_tokens})"
                )
            if knowledge.docs_per_chunk < 1:
                raise ValueError(f"knowledge.docs_per_chunk must be >= 1, got {knowledge.docs_per_chunk}")
        if self.web_tokens_per_batch:
            if web is None:
                raise ValueError(f"ratio={ratio} < 1 needs a web source, got None")
            _require(web, ("tokens",), "WebStream")
        self.knowledge, self.web = knowledge, web
        self.ratio, self.seq_len, self.global_batch = ratio, seq_len, global_batch
        self.seed, self.eos_id = seed, eos_id
        self._index = _KnowledgeIndex(knowledge, eos_id) if self.knowledge_tokens_per_batch else None
        self._junction = 0 < self.knowledge_tokens_per_batch < slots
        self._lock = threading.Lock()
        # exposure counts of all chunks before chunk c, cached so that evaluating at rising steps is incremental
        self._whole_chunks = (0, np.zeros(knowledge.num_people if self._index else 0, np.int64))

    def row_permutation(self, step: int) -> np.ndarray:
        """perm [B]: row j of the global batch is row perm[j] of the flat layout."""
        rng = np.random.default_rng([self.seed, step, _PERMUTATION_TAG])
        return rng.permutation(self.global_batch)

    def batch(self, step: int, process_index: int = 0, process_count: int = 1) -> Batch:
        """This process's rows of global batch `step`: a pure function of (seed, step, process_index, process_count)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if process_count < 1 or not 0 <= process_index < process_count:
            raise ValueError(f"need 0 <= process_index < process_count, got {process_index}, {process_count}")
        if self.global_batch % process_count:
            raise ValueError(f"global_batch={self.global_batch} is not divisible by process_count={process_count}")
        rows_per_process = self.global_batch // process_count
        rows = self.row_permutation(step)[process_index * rows_per_process : (process_index + 1) * rows_per_process]
        with self._lock:
            tokens, targets = self._rows(step, rows)
        ks, L = self.knowledge_tokens_per_batch, self.seq_len
        knowledge_in_row = np.clip(ks - rows * L, 0, L)  # knowledge slots of each row come first in it
        loss_mask = np.ones(tokens.shape, np.float32)
        if self._junction:
            loss_mask[rows == ks // L, ks % L] = 0.0
        return Batch(
            tokens=tokens,
            targets=targets,
            loss_mask=loss_mask,
            source=(np.arange(L, dtype=np.int32) < knowledge_in_row[:, None].astype(np.int32)).view(np.int8),
            step=step,
            knowledge_tokens=self.knowledge_tokens_per_batch,
            web_tokens=self.web_tokens_per_batch - int(self._junction),
        )

    def exposures(self, step: int) -> np.ndarray:
        """[num_people] int64: documents per person completed in steps 0..step-1."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if self._index is None:
            num_people = self.knowledge.num_people if self.knowledge is not None else 0
            return np.zeros(num_people, np.int64)
        num_people = self.knowledge.num_people
        with self._lock:
            c, n = self._index.completed(step * self.knowledge_tokens_per_batch)
            if self._whole_chunks[0] > c:
                self._whole_chunks = (0, np.zeros(num_people, np.int64))
            done, counts = self._whole_chunks
            counts = counts.copy()
            for chunk in range(done, c):
                counts += np.bincount(self.knowledge.chunk_people(chunk), minlength=num_people)
            self._whole_chunks = (c, counts.copy())
            counts += np.bincount(self.knowledge.chunk_people(c)[:n], minlength=num_people)
        return counts

    def _rows(self, step: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(tokens, targets) [len(rows), L] int32 of the given flat-layout rows, built from runs of consecutive
        row indices (one source call per run)."""
        L = self.seq_len
        order = np.argsort(rows)
        sorted_rows = rows[order]
        tokens, targets = np.empty((2, rows.size, L), np.int32)
        run_starts = np.flatnonzero(np.diff(sorted_rows, prepend=-2) != 1)
        for a, b in zip(run_starts, [*run_starts[1:], rows.size], strict=True):
            i0, i1 = int(sorted_rows[a]), int(sorted_rows[b - 1]) + 1
            flat = self._flat(step, i0 * L, i1 * L)
            tokens[order[a:b]] = flat[:-1].reshape(i1 - i0, L)
            targets[order[a:b]] = flat[1:].reshape(i1 - i0, L)
        return tokens, targets

    def _flat(self, step: int, a: int, b: int) -> np.ndarray:
        """flat[a : b + 1] of the flat layout of batch `step` (see the module docstring)."""
        ks, ws = self.knowledge_tokens_per_batch, self.web_tokens_per_batch
        parts = []
        if ks and a <= ks:
            parts.append(self._index.tokens(step * ks - 1 + a, step * ks + min(b, ks)))
        first_web = max(a, ks + 1) if ks else a
        if first_web <= b:
            parts.append(self._web_tokens(step * ws + first_web - ks - 1, step * ws + b - ks))
        flat = np.concatenate(parts) if len(parts) > 1 else np.ascontiguousarray(parts[0], dtype=np.int32)
        if flat.shape != (b - a + 1,):
            raise AssertionError(f"flat layout slice has {flat.shape}, expected ({b - a + 1},)")
        return flat

    def _web_tokens(self, start: int, stop: int) -> np.ndarray:
        lead = start < 0
        toks = np.asarray(self.web.tokens(start + lead, stop - start - lead), dtype=np.int32)
        if toks.shape != (stop - start - lead,):
            raise ValueError(f"web.tokens({start + lead}, {stop - start - lead}) returned shape {toks.shape}")
        return np.concatenate([np.full(1, self.eos_id, np.int32), toks]) if lead else toks


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher:
    """Builds stream.batch(step) for step = start_step, start_step + 1, ... in a background thread.

    Iterate it for batches; `wait_seconds` is the total time the consumer spent blocked in `next()`. An error in
    the producer is re-raised in the consumer. Use as a context manager, or call `close()`.
    """

    def __init__(self, stream, start_step: int, process_index: int = 0, process_count: int = 1, depth: int = 2):
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.wait_seconds = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._produce, args=(stream, start_step, process_index, process_count), daemon=True
        )
        self._thread.start()

    def _produce(self, stream, step: int, process_index: int, process_count: int) -> None:
        while not self._stop.is_set():
            try:
                item = stream.batch(step, process_index, process_count)
            except Exception as error:  # handed to the consumer, which re-raises it
                item = _Failure(error)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, _Failure):
                return
            step += 1

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> Batch:
        if self._stop.is_set():
            raise StopIteration
        t0 = time.perf_counter()
        item = self._queue.get()
        self.wait_seconds += time.perf_counter() - t0
        if isinstance(item, _Failure):
            self.close()
            raise RuntimeError("the data stream failed in the prefetch thread") from item.error
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

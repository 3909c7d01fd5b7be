"""TaskSource: a knowledge source of fresh task questions (data_gen/task.py) for the mixture stream.

Document p of chunk c is one question with one answer template, both drawn by a generator seeded by (seed, c):
the templates first, then the questions; a held-out question is redrawn (from the same generator) until none is
left, so the chunk is a pure function of (task, held-out set, seed, c) and no held-out question is ever trained
on. Each document is a new question: `num_people` is 1 (the task is one unit), so `MixtureStream.exposures` counts
the training documents completed, the run's "exposures".
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from data_gen.task import Task, row_keys
from mixlab.mixture import KnowledgeSource

_TASK_TAG = 0x7461736B  # RNG stream tag, apart from the SynBio sources' and the row permutation's
DOCS_PER_CHUNK = 4096


class TaskSource(KnowledgeSource):
    """Fresh questions of `task` other than `heldout` [n, width], seeded by `seed` (see the module docstring)."""

    num_people = 1

    def __init__(
        self, task: Task, heldout: np.ndarray, seed: int, docs_per_chunk: int = DOCS_PER_CHUNK, cache_chunks: int = 2
    ):
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        if docs_per_chunk < 1:
            raise ValueError(f"docs_per_chunk must be >= 1, got {docs_per_chunk}")
        self.task, self.seed, self.docs_per_chunk = task, int(seed), int(docs_per_chunk)
        self.max_doc_tokens = task.max_doc_tokens
        self.mean_doc_tokens = float(task.mean_doc_tokens)
        self._heldout = row_keys(np.asarray(heldout).reshape(-1, task.width))
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_chunks = cache_chunks

    def chunk(self, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(questions [docs_per_chunk, width], template ids [docs_per_chunk], lengths [docs_per_chunk]), cached."""
        if chunk < 0:
            raise ValueError(f"chunk must be >= 0, got {chunk}")
        if chunk not in self._cache:
            rng = np.random.default_rng([self.seed, chunk, _TASK_TAG])
            templates = rng.integers(0, self.task.num_templates, self.docs_per_chunk)
            questions = self.task.draw(rng, self.docs_per_chunk)
            redraw = np.flatnonzero(np.isin(row_keys(questions), self._heldout))
            while redraw.size:
                questions[redraw] = self.task.draw(rng, redraw.size)
                redraw = redraw[np.isin(row_keys(questions[redraw]), self._heldout)]
            self._cache[chunk] = (questions, templates, self.task.lengths(questions, templates))
            if len(self._cache) > self._cache_chunks:
                self._cache.popitem(last=False)
        return self._cache[chunk]

    def chunk_people(self, chunk: int) -> np.ndarray:
        if chunk < 0:
            raise ValueError(f"chunk must be >= 0, got {chunk}")
        return np.zeros(self.docs_per_chunk, np.int64)

    def chunk_lengths(self, chunk: int) -> np.ndarray:
        return self.chunk(chunk)[2]

    def doc_tokens(self, chunk: int, position: int) -> np.ndarray:
        return self.docs_tokens(chunk, position, position + 1)

    def docs_tokens(self, chunk: int, start: int, stop: int) -> np.ndarray:
        questions, templates, _ = self.chunk(chunk)
        return self.task.render_batch(questions[start:stop], templates[start:stop])[0]

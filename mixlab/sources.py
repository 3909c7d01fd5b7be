"""Knowledge sources over SynBio for the mixture stream (the KnowledgeSource protocol of mixlab/mixture.py).

SynBioSource: passes over the training people; chunk c is a fresh seeded permutation of them and every document in
it is that person's exposure c. CompactMixSource: the same passes, each with compact tuples mixed in (CKM).
PowerLawSource: i.i.d. draws of people, group k with probability ∝ k^-beta; the document at (chunk c, position p)
renders exposure index c * docs_per_chunk + p, so every draw gets a fresh augmentation. All are pure functions of
(seed, chunk, position) and render a range of documents in vectorised SynBio calls.

`knowledge_source` picks the source that config.data asks for; `mixture_stream` builds a run's MixtureStream from
its config and `data_gen.prepare.prepare`'s output, for the trainer and the demo alike; a task run
(config.data.knowledge "slope" or "max_of_n") streams mixlab/task_source.py's TaskSource instead.
"""

from __future__ import annotations

import abc
from collections import OrderedDict
from typing import TYPE_CHECKING

import ml_collections
import numpy as np

from data_gen.synbio import PowerLawGroups, SynBio, subsample
from data_gen.web import WebSource
from mixlab.config import ConfigError
from mixlab.mixture import KnowledgeSource, MixtureStream
from mixlab.task_source import TaskSource

if TYPE_CHECKING:
    from data_gen.prepare import Prepared

_PASS_TAG = 0x70617373  # RNG stream tags, so that the sources never share random numbers with each other
_POWER_LAW_TAG = 0x706C6177
_COMPACT_TAG = 0x636B6D


class _SynBioChunks(KnowledgeSource):
    """Shared machinery: people and exposure index of every document of a chunk, cached for a few chunks."""

    def __init__(self, synbio: SynBio, seed: int, docs_per_chunk: int, cache_chunks: int = 2):
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self.synbio, self.seed = synbio, int(seed)
        self.num_people = synbio.population.num_people
        self.docs_per_chunk = docs_per_chunk
        self.max_doc_tokens = synbio.max_bio_tokens
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_chunks = cache_chunks

    @abc.abstractmethod
    def _draw(self, chunk: int) -> np.ndarray:
        """Person id of every document of the chunk."""

    @abc.abstractmethod
    def _exposures(self, chunk: int, start: int, stop: int) -> np.ndarray | int:
        """Exposure index of documents start..stop-1 of the chunk (an int broadcasts)."""

    @property
    def mean_doc_tokens(self) -> float:
        """Mean document length (without EOS) over the population's biographies."""
        return float(self.synbio.mean_bio_tokens)

    def chunk_people(self, chunk: int) -> np.ndarray:
        if chunk < 0:
            raise ValueError(f"chunk must be >= 0, got {chunk}")
        if chunk not in self._cache:
            self._cache[chunk] = self._draw(chunk)
            if len(self._cache) > self._cache_chunks:
                self._cache.popitem(last=False)
        return self._cache[chunk]

    def chunk_lengths(self, chunk: int) -> np.ndarray:
        return self.synbio.bio_lengths(self.chunk_people(chunk), self._exposures(chunk, 0, self.docs_per_chunk))

    def doc_tokens(self, chunk: int, position: int) -> np.ndarray:
        return self.docs_tokens(chunk, position, position + 1)

    def docs_tokens(self, chunk: int, start: int, stop: int) -> np.ndarray:
        tokens, _ = self.synbio.render_batch(self.chunk_people(chunk)[start:stop], self._exposures(chunk, start, stop))
        return tokens


class SynBioSource(_SynBioChunks):
    """Passes over the training people (default: all): chunk c is a permutation seeded by (seed, c), exposure c."""

    def __init__(self, synbio: SynBio, seed: int, people: np.ndarray | None = None):
        population = synbio.population
        people = np.arange(population.num_people) if people is None else population.check_people(people)
        if people.ndim != 1 or people.size == 0 or np.unique(people).size != people.size:
            raise ValueError(f"people must be a non-empty 1-D array of distinct person ids, got shape {people.shape}")
        super().__init__(synbio, seed, docs_per_chunk=people.size)
        self.people = np.sort(people)

    def _draw(self, chunk: int) -> np.ndarray:
        return np.random.default_rng([self.seed, chunk, _PASS_TAG]).permutation(self.people)

    def _exposures(self, chunk: int, start: int, stop: int) -> int:
        return chunk


class PowerLawSource(_SynBioChunks):
    """I.i.d. people: group k (0-based) of `groups` with probability groups.group_weights[k], uniform inside it.

    docs_per_chunk defaults to the population size. The exposure index of (chunk c, position p) is
    c * docs_per_chunk + p and must stay below 2^32 (SynBio's counter range).
    """

    def __init__(self, synbio: SynBio, seed: int, groups: PowerLawGroups, docs_per_chunk: int | None = None):
        population = synbio.population
        if groups.num_people != population.num_people:
            raise ValueError(
                f"power-law groups cover {groups.num_people} people ({groups.num_groups} x {groups.group_size}), "
                f"the population has {population.num_people}"
            )
        docs_per_chunk = population.num_people if docs_per_chunk is None else docs_per_chunk
        if docs_per_chunk < 1:
            raise ValueError(f"docs_per_chunk must be >= 1, got {docs_per_chunk}")
        super().__init__(synbio, seed, docs_per_chunk)
        self.groups = groups
        self._cdf = np.cumsum(groups.group_weights)

    def _draw(self, chunk: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, chunk, _POWER_LAW_TAG])
        group = np.searchsorted(self._cdf, rng.random(self.docs_per_chunk) * self._cdf[-1], side="right")
        group = np.minimum(group, self.groups.num_groups - 1)
        return group * self.groups.group_size + rng.integers(0, self.groups.group_size, self.docs_per_chunk)

    def _exposures(self, chunk: int, start: int, stop: int) -> np.ndarray:
        return chunk * self.docs_per_chunk + np.arange(start, stop, dtype=np.int64)


class CompactMixSource(SynBioSource):
    """Compact knowledge mixing: each pass over the training people also holds T compact tuples
    (data_gen.synbio.SynBio.render_compact_batch), T = round(tau * people * mean biography tokens / mean tuple
    tokens), so that the tuples are worth tau x the biographies' tokens inside the same knowledge budget.

    Tuple j (over all passes) is about person perm[j mod n] of one seeded permutation of the training people, at
    exposure j // n, so every person gets tuples evenly; chunk c is a seeded shuffle of its n biographies (exposure c)
    and tuples c*T .. c*T+T-1. Exposures count both kinds of document about a person.
    """

    def __init__(self, synbio: SynBio, seed: int, tau: float, people: np.ndarray | None = None):
        super().__init__(synbio, seed, people)
        n = self.people.size
        self._mean_compact = float(synbio.compact_lengths(self.people).mean())
        self.num_compact = round(tau * n * synbio.mean_bio_tokens / self._mean_compact)
        if self.num_compact < 1:
            raise ValueError(f"tau={tau} gives no compact tuple per pass over {n} people")
        self.docs_per_chunk = n + self.num_compact
        self.max_doc_tokens = max(synbio.max_bio_tokens, synbio.max_compact_tokens)
        self._tuple_people = np.random.default_rng([self.seed, _COMPACT_TAG]).permutation(self.people)
        self._layouts: OrderedDict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()

    def _layout(self, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(person, exposure, is_compact) of every document of the chunk, in stream order."""
        if chunk not in self._layouts:
            n, t = self.people.size, self.num_compact
            j = chunk * t + np.arange(t, dtype=np.int64)
            people = np.concatenate([super()._draw(chunk), self._tuple_people[j % n]])
            exposures = np.concatenate([np.full(n, chunk, np.int64), j // n])
            compact = np.arange(n + t) >= n
            order = np.random.default_rng([self.seed, chunk, _COMPACT_TAG]).permutation(n + t)
            self._layouts[chunk] = (people[order], exposures[order], compact[order])
            if len(self._layouts) > self._cache_chunks:
                self._layouts.popitem(last=False)
        return self._layouts[chunk]

    def _draw(self, chunk: int) -> np.ndarray:
        return self._layout(chunk)[0]

    def chunk_lengths(self, chunk: int) -> np.ndarray:
        people, exposures, compact = self._layout(chunk)
        return np.where(compact, self.synbio.compact_lengths(people), self.synbio.bio_lengths(people, exposures))

    def docs_tokens(self, chunk: int, start: int, stop: int) -> np.ndarray:
        people, exposures, compact = (a[start:stop] for a in self._layout(chunk))
        bios, bio_offsets = self.synbio.render_batch(people[~compact], exposures[~compact])
        tuples, tuple_offsets = self.synbio.render_compact_batch(people[compact], exposures[compact])
        # the documents in stream order, gathered from the two renderings laid end to end
        begin, length = np.empty(len(compact), np.int64), np.empty(len(compact), np.int64)
        begin[~compact], length[~compact] = bio_offsets[:-1], np.diff(bio_offsets)
        begin[compact], length[compact] = len(bios) + tuple_offsets[:-1], np.diff(tuple_offsets)
        out_begin = np.cumsum(length) - length
        index = np.repeat(begin - out_begin, length) + np.arange(int(length.sum()))
        return np.concatenate([bios, tuples])[index]

    @property
    def mean_doc_tokens(self) -> float:
        n, t = self.people.size, self.num_compact
        return (n * self.synbio.mean_bio_tokens + t * self._mean_compact) / (n + t)


def knowledge_source(data_cfg: ml_collections.ConfigDict, synbio: SynBio, seed: int) -> _SynBioChunks:
    """SynBioSource over all people or a subsample (data.subsample), with compact tuples when data.ckm_tau > 0
    (CompactMixSource), or PowerLawSource (data.power_law_groups).

    `data_cfg` is a validated config.data (mixlab.config.validate: groups divide the people, no subsample or CKM
    with them). A CKM share too small for one tuple per pass is a ConfigError.
    """
    n, rho, groups = synbio.population.num_people, float(data_cfg.subsample), int(data_cfg.power_law_groups)
    tau = float(data_cfg.ckm_tau)
    if groups > 0:
        plg = PowerLawGroups(groups, n // groups, float(data_cfg.power_law_beta))
        return PowerLawSource(synbio, seed, plg)
    people = subsample(n, rho, int(data_cfg.synbio_seed)) if rho < 1.0 else None
    if tau > 0:
        try:
            return CompactMixSource(synbio, seed, tau, people)
        except ValueError as e:
            raise ConfigError(f"data.ckm_tau={tau}: {e}; raise data.ckm_tau or the people trained on") from None
    return SynBioSource(synbio, seed, people)


def mixture_stream(
    config: ml_collections.ConfigDict, prepared: Prepared
) -> tuple[MixtureStream, np.ndarray, _SynBioChunks | TaskSource]:
    """(the run's MixtureStream, ids of the people it trains on, its knowledge source) from the config and
    `prepare(config.data)`.

    The stream mixes the knowledge source (when data.ratio > 0) with the web training store (when data.ratio < 1),
    both seeded by config.seed. The training people are those of the knowledge source even at ratio 0, where the
    stream holds no knowledge (exposure statistics are taken over them); a task's one "person" is the task itself.
    """
    d, eos_id = config.data, int(prepared.tokenizer.eos_id)
    if prepared.task is not None:
        knowledge = TaskSource(prepared.task, prepared.eval_set.questions, config.seed)
    else:
        knowledge = knowledge_source(d, prepared.synbio, config.seed)
    web = WebSource(prepared.web_train, config.seed, eos_id) if d.ratio < 1 else None
    stream = MixtureStream(
        knowledge if d.ratio > 0 else None, web, d.ratio, d.seq_len, d.global_batch, config.seed, eos_id
    )
    people = knowledge.people if isinstance(knowledge, SynBioSource) else np.arange(knowledge.num_people)
    return stream, people, knowledge

"""Throughput of the SynBio knowledge stream on one CPU core, with fresh augmentation for every exposure.

    python -m experiments.benchmarks.synbio [--num_people=100000] [--seconds=3] [--tokenizer=tokenizer.json]

The stream walks passes: pass e is a seeded permutation of the people, each rendered at exposure e, in batches
through SynBio.render_batch. Without --tokenizer it measures a word-level tokenizer (every word with its leading
space, or punctuation run, is one token: no BPE has fewer tokens, so this is the lowest tokens/s of any BPE) and the
built-in byte-level tokenizer. It also times bio_lengths over one whole pass of 1M people.
"""

from __future__ import annotations

import os
import re
import time

import numpy as np
from absl import app, flags

from data_gen.synbio import ByteTokenizer, Population, SynBio

_NUM_PEOPLE = flags.DEFINE_integer("num_people", 100_000, "Population size for the stream benchmark.")
_SECONDS = flags.DEFINE_float("seconds", 3.0, "Minimum measured time per tokenizer.")
_BATCH = flags.DEFINE_integer("batch", 8192, "Biographies rendered per render_batch call.")
_TOKENIZER = flags.DEFINE_string("tokenizer", "", "tokenizer.json to benchmark (data_gen.tokenizer.Tokenizer).")
_CORE = flags.DEFINE_integer("core", 0, "CPU core to pin to (-1: do not pin).")

_WORD = re.compile(r" ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+")


class WordTokenizer:
    """Each regex pre-token (a word or number with its leading space, a punctuation run, whitespace) is one id."""

    eos_id = 0

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {"<eos>": 0}

    def encode(self, text: str) -> list[int]:
        return [self.vocab.setdefault(piece, len(self.vocab)) for piece in _WORD.findall(text)]


def stream_throughput(synbio: SynBio, seconds: float, batch: int, seed: int = 0) -> tuple[float, int, float]:
    """(tokens/s, tokens, elapsed s) rendering whole passes until `seconds` have elapsed."""
    num_people = synbio.population.num_people
    tokens, exposure = 0, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        order = np.random.default_rng([seed, exposure]).permutation(num_people)
        for i in range(0, num_people, batch):
            flat, _ = synbio.render_batch(order[i : i + batch], np.int64(exposure))
            tokens += flat.size
        exposure += 1
    elapsed = time.perf_counter() - start
    return tokens / elapsed, tokens, elapsed


def lengths_time(synbio: SynBio, repeats: int = 3) -> float:
    """Best wall time (s) of bio_lengths over one whole pass of the population."""
    people = np.arange(synbio.population.num_people)
    best = float("inf")
    for exposure in range(repeats):
        start = time.perf_counter()
        synbio.bio_lengths(people, np.int64(exposure))
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _CORE.value >= 0:
        os.sched_setaffinity(0, {_CORE.value})
    tokenizers: dict[str, object] = {"word-level": WordTokenizer(), "byte-level": ByteTokenizer()}
    if _TOKENIZER.value:
        from data_gen.tokenizer import Tokenizer

        tokenizers = {f"tokenizer {_TOKENIZER.value}": Tokenizer.load(_TOKENIZER.value)}
    population = Population(_NUM_PEOPLE.value, seed=0)
    print(f"SynBio-{population.num_people}, batch {_BATCH.value}, pinned to core {_CORE.value}")
    for name, tokenizer in tokenizers.items():
        synbio = SynBio(population, tokenizer, seed=0)
        rate, tokens, elapsed = stream_throughput(synbio, _SECONDS.value, _BATCH.value)
        print(
            f"{name}: {rate:,.0f} tokens/s ({tokens:,} tokens in {elapsed:.2f} s; "
            f"{synbio.mean_bio_tokens:.1f} tokens/bio, {rate / synbio.mean_bio_tokens:,.0f} bios/s)"
        )
    big = SynBio(Population(1_000_000, seed=0), WordTokenizer(), seed=0)
    print(f"bio_lengths over one pass of 1,000,000 people: {lengths_time(big):.3f} s")


if __name__ == "__main__":
    app.run(main)

"""Throughput of the mixture stream on one CPU core: MixtureStream.batch(step) with SynBio passes and a WebSource.

    python -m experiments.benchmarks.mixture [--num_people=100000] [--seconds=2] [--tokenizer=tokenizer.json]
                                             [--core=0] [--resume_step=20000]

For r in {0.1, 0.5}, seq_len 2048 and global batch 64 and 512, it times batch(step) for consecutive steps (after
one warm-up step) and prints tokens/s (B * L target tokens per batch). The baseline is the same stream with
per-document rendering (the KnowledgeSource default `docs_tokens`, one SynBio.render_tokens call per document)
instead of one vectorised SynBio.render_batch call per slice.

Without --tokenizer it trains a byte-level BPE (data_gen.tokenizer.train_bpe, --vocab_size) on SynBio renderings
and the web sample. The web corpus is synthetic: documents of words from the SynBio field files, with log-normal
lengths (median 500 words), tokenized into a TokenStore in a temporary directory; the web stream's cost depends on
the number of documents per token, not on their content. --resume_step=S also times what a restart at step S costs
a fresh stream (r = 0.2, B = 512): batch(S) (every earlier chunk's lengths) and the first exposures(S).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from data_gen.synbio import ByteTokenizer, Population, SynBio
from data_gen.tokenizer import Tokenizer, train_bpe
from data_gen.web import WebSource, build_store
from mixlab.mixture import KnowledgeSource, MixtureStream
from mixlab.sources import SynBioSource

SEQ_LEN = 2048
RATIOS = (0.1, 0.5)
BATCHES = (64, 512)


class PerDocument(KnowledgeSource):
    """The baseline: a source whose `docs_tokens` is the protocol default (one render call per document)."""

    def __init__(self, source: SynBioSource):
        self.source = source
        self.num_people, self.docs_per_chunk = source.num_people, source.docs_per_chunk
        self.max_doc_tokens = source.max_doc_tokens

    def chunk_people(self, chunk: int) -> np.ndarray:
        return self.source.chunk_people(chunk)

    def chunk_lengths(self, chunk: int) -> np.ndarray:
        return self.source.chunk_lengths(chunk)

    def doc_tokens(self, chunk: int, position: int) -> np.ndarray:
        return self.source.synbio.render_tokens(int(self.source.chunk_people(chunk)[position]), chunk)


def web_documents(num_docs: int, seed: int = 0) -> list[str]:
    """Synthetic web documents: words of the SynBio field files, log-normal lengths (median 500 words)."""
    fields = Path(__file__).resolve().parent.parent / "data_gen" / "fields"
    words = sorted({w for f in sorted(fields.glob("*.txt")) for w in f.read_text(encoding="utf-8").split()})
    rng = np.random.default_rng(seed)
    lengths = np.maximum(1, rng.lognormal(np.log(500), 1.0, num_docs).astype(int))
    return [" ".join(rng.choice(words, n)) for n in lengths]


def throughput(stream: MixtureStream, seconds: float, min_steps: int = 3) -> tuple[float, int, float]:
    """(tokens/s, steps, elapsed s) of stream.batch over consecutive steps after a warm-up step 0."""
    stream.batch(0)
    steps, start = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - start < seconds:
        steps += 1
        stream.batch(steps)
    elapsed = time.perf_counter() - start
    return steps * stream.global_batch * stream.seq_len / elapsed, steps, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_people", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum measured time per configuration")
    parser.add_argument("--tokenizer", default="", help="tokenizer.json to use instead of training a BPE")
    parser.add_argument("--vocab_size", type=int, default=8192)
    parser.add_argument("--web_docs", type=int, default=2000)
    parser.add_argument("--core", type=int, default=0, help="CPU core to pin to (-1: do not pin)")
    parser.add_argument("--resume_step", type=int, default=0, help="also time a fresh stream's first batch there")
    args = parser.parse_args()
    if args.core >= 0:
        os.sched_setaffinity(0, {args.core})
    population = Population(args.num_people, seed=0)
    docs = web_documents(args.web_docs)
    with tempfile.TemporaryDirectory() as tmp:
        if args.tokenizer:
            tokenizer = Tokenizer.load(args.tokenizer)
        else:
            sample = SynBio(population, ByteTokenizer(), seed=0)
            bios = [sample.render_text(p, 0) for p in range(min(2000, args.num_people))]
            tokenizer = train_bpe(bios + docs[:500], args.vocab_size, Path(tmp) / "tokenizer.json")
        web = WebSource(build_store(docs, tokenizer, Path(tmp) / "web", val_fraction=0.0), 0, tokenizer.eos_id)
        synbio = SynBio(population, tokenizer, seed=0)
        source = SynBioSource(synbio, seed=0)
        print(
            f"SynBio-{args.num_people}: {synbio.mean_bio_tokens:.1f} tokens/bio (max {synbio.max_bio_tokens}); "
            f"web: {web.num_docs} docs, {web.tokens_per_epoch / web.num_docs:.0f} tokens/doc incl. EOS; "
            f"{tokenizer!r}; core {args.core}; seq_len {SEQ_LEN}"
        )
        print(f"{'ratio':>5} {'batch':>5} {'tokens/s':>12} {'baseline tokens/s':>18} {'speed-up':>8}")
        for ratio in RATIOS:
            for batch in BATCHES:
                rate, _, _ = throughput(
                    MixtureStream(source, web, ratio, SEQ_LEN, batch, 0, tokenizer.eos_id), args.seconds
                )
                base, _, _ = throughput(
                    MixtureStream(PerDocument(source), web, ratio, SEQ_LEN, batch, 0, tokenizer.eos_id), args.seconds
                )
                print(f"{ratio:>5} {batch:>5} {rate:>12,.0f} {base:>18,.0f} {rate / base:>7.1f}x")
        if args.resume_step:
            resume(MixtureStream(source, web, 0.2, SEQ_LEN, 512, 0, tokenizer.eos_id), args.resume_step)


def resume(stream: MixtureStream, step: int) -> None:
    """Print the time a fresh stream takes for batch(step) and for its first exposures(step)."""
    start = time.perf_counter()
    stream.batch(step)
    batch_s = time.perf_counter() - start
    start = time.perf_counter()
    exposures = stream.exposures(step)
    print(
        f"resume at step {step} (r=0.2, B=512, {exposures.mean():.1f} mean exposures): batch {batch_s:.1f} s, "
        f"first exposures {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    main()

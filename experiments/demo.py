"""The main job (`make demo`): data preview, the demo sweep on a 2-core CPU, the accuracy grid, and the report.

    python -m experiments.demo [--runs_dir=runs] [--workers=0] [--sweep=experiments/configs/demo.py:main]

1. Builds (once) the default web corpus, the tokenizer and SynBio, and previews them: rendered biographies, the
   knowledge summary, a decoded mixed batch with the knowledge spans marked, and the stream's throughput.
2. Runs the demo sweep (experiments/configs/demo.py), idempotently: a second `make demo` re-uses every complete run.
3. Prints the accuracy grid (size x r) and the equal-exposure comparison, then writes the analysis report.

Bad input (a flag or sweep point out of range, a sweep or config file that is missing or raises, a damaged token
store) is refused in one line with exit status 2 before anything is built (mixlab/cli.py; --debug: the traceback).
"""

from __future__ import annotations

import time
from pathlib import Path

import ml_collections
import numpy as np
import pandas as pd
from absl import app, flags

from analysis.io import final_rows, load_results
from analysis.report import write_report
from analysis.verdicts import analyze, exposure_pairs, main_budget, verdicts
from data_gen.prepare import Prepared, prepare
from experiments import sweep as sweep_lib
from mixlab.cli import flags_parser, no_arguments, one_line_errors
from mixlab.config import loading
from mixlab.sources import mixture_stream

_RUNS_DIR = flags.DEFINE_string("runs_dir", "runs", "where sweeps write their run folders")
_WORKERS = flags.DEFINE_integer(
    "workers", 0, "local worker processes, each pinned to its share of the cores (0 = one per core)"
)
_SWEEP = flags.DEFINE_string("sweep", "experiments/configs/demo.py:main", "the sweep to run")

KNOWLEDGE_OPEN, KNOWLEDGE_CLOSE = "\u00ab", "\u00bb"  # marks knowledge spans in the decoded batch


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 100 - len(title)), flush=True)


def preview_knowledge(prepared: Prepared, num_bios: int = 3) -> None:
    synbio, population = prepared.synbio, prepared.synbio.population
    for person in range(num_bios):
        print(f"[person {person}, exposure 0]\n{synbio.render_text(person, 0)}\n")
    print(f"[person 0 as a compact tuple, data.ckm_tau > 0]\n{synbio.render_compact_text(0, 0)}\n")
    lengths = synbio.bio_lengths(np.arange(population.num_people), np.zeros(population.num_people, np.int64))
    print(
        f"SynBio-{population.num_people}: {population.bits_per_person:.2f} bits/person, "
        f"{population.total_bits / 1e3:.1f} kbit in all; tokens per biography: mean {lengths.mean():.1f}, "
        f"std {lengths.std():.1f}, max {lengths.max()} ({prepared.tokenizer.vocab_size}-entry BPE)"
    )
    store = prepared.web_train
    print(f"web corpus (train split): {store.num_docs} documents, {store.num_tokens / 1e6:.2f}M tokens")


def preview_batch(config: ml_collections.ConfigDict, prepared: Prepared, ratio: float) -> None:
    """Batch 0 of the run `config` trained at mixing ratio `ratio`, decoded, and the stream's throughput."""
    config = ml_collections.ConfigDict(config.to_dict())
    config.data.ratio = ratio
    stream, _, _ = mixture_stream(config, prepared)
    seq_len, global_batch = stream.seq_len, stream.global_batch
    batch = stream.batch(0)
    print(f"r = {ratio}: {batch.knowledge_tokens} knowledge + {batch.web_tokens} web target tokens in batch 0")
    for row in range(min(2, global_batch)):
        print(f"[row {row}] {decode_marked(prepared, batch.targets[row], batch.source[row])[:700]}\n")
    steps = 200
    start = time.perf_counter()
    for step in range(1, steps + 1):
        stream.batch(step)
    seconds = time.perf_counter() - start
    print(f"stream throughput: {steps * global_batch * seq_len / seconds / 1e6:.2f}M tokens/s ({steps} batches)")


def decode_marked(prepared: Prepared, tokens: np.ndarray, source: np.ndarray) -> str:
    """Decode a row, wrapping each run of knowledge tokens in guillemets."""
    pieces, start = [], 0
    for end in [*np.flatnonzero(np.diff(source)) + 1, len(tokens)]:
        text = prepared.tokenizer.decode(tokens[start:end].tolist())
        pieces.append(f"{KNOWLEDGE_OPEN}{text}{KNOWLEDGE_CLOSE}" if source[start] == 1 else text)
        start = end
    return "".join(pieces).replace("\n", " / ")


def accuracy_grid(fixed: pd.DataFrame) -> pd.DataFrame:
    """Final accuracy, size x r."""
    order = fixed.sort_values("params_total")["size"].unique()
    return fixed.pivot_table(index="size", columns="ratio", values="acc").reindex(order)


PROGRAM = "experiments.demo"


def main(argv: list[str]) -> None:
    with one_line_errors(PROGRAM):
        no_arguments(argv)
        _main()


def _main() -> None:
    t0 = time.perf_counter()
    with loading(f"--sweep={_SWEEP.value}"):
        sweep = sweep_lib.load_sweep(_SWEEP.value)
    config = sweep_lib.point_configs(sweep)[0]  # every point checked before anything is built
    workers = len(sweep_lib.cpu_slots(_WORKERS.value))
    section("data: default web corpus, tokenizer, SynBio")
    prepared = prepare(config.data)
    preview_knowledge(prepared)
    section("a mixed batch (knowledge spans in \u00ab\u00bb)")
    preview_batch(config, prepared, 0.2)

    section(f"sweep {sweep.name}: {len(sweep.points)} runs, {workers} workers")
    outcomes = sweep_lib.run_sweep(sweep, _RUNS_DIR.value, workers=_WORKERS.value)
    failed = sorted(rid for rid, outcome in outcomes.items() if outcome == "failed")
    sweep_dir = Path(_RUNS_DIR.value) / sweep.name
    table = sweep_dir / "results.csv"
    results = load_results(table)
    final = final_rows(results)

    section("final accuracy (rows: model size, columns: mixing ratio r)")
    fixed = main_budget(final)
    print(f"runs of {fixed['tokens'].iloc[0] / 1e6:.2f}M tokens each\n")
    print(accuracy_grid(fixed).to_string(float_format=lambda v: f"{v:.2f}"))
    section("same exposures per person, different r")
    pairs = exposure_pairs(final)
    print(pairs.to_string(index=False) if len(pairs) else "no equal-exposure pairs in this sweep")

    section("analysis report")
    analysis = analyze(results)
    report_path = write_report(analysis, sweep_dir / "report", source=str(table))
    for verdict in verdicts(analysis):
        print(f"[{verdict.status}] {verdict.claim}: {verdict.text}")

    section("where everything is")
    print(f"run folders:   {sweep_dir}/<run_id>/ (config.json, metrics.jsonl, eval.jsonl, train.log, checkpoints/)")
    print(f"results table: {table} (and results.parquet)")
    print(f"report:        {report_path} (figures beside it)")
    print(f"data:          {config.data.dir}/ (corpus, tokenizer, token stores)")
    print(f"total wall time of this demo: {time.perf_counter() - t0:.0f} s")
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed: {failed}; see their train.log, then rerun `make demo`")


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(PROGRAM))

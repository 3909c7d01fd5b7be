"""The main job (`make demo`): the theory's prediction first, then the mixtures, then every claim tested.

    python -m experiments.demo [--runs_dir=runs] [--workers=0] [--ensemble=10]
        [--calibration=experiments/configs/demo.py:calibrate] [--sweep=experiments/configs/demo.py:main]

0. Data: builds (once) the default web corpus, the tokenizer and SynBio, and previews them: rendered biographies,
   the knowledge summary, a decoded mixed batch with the knowledge spans marked, and the stream's throughput.
1. Calibration: the web-only (r = 0) and knowledge-only (r = 1) runs of every size.
2. Prediction: fits the web-loss law and the capacity to those runs alone and prints the theory's r*(M) and M*(r)
   with CIs; writes them, timestamped, to <runs_dir>/<sweep>/prediction.json before any mixture run starts (a
   prediction already there is kept: it was made first).
3. Mixtures: the grid of sizes x ratios and the equal-exposure control (experiments/configs/demo.py).
4. Analysis: the accuracy grid, the equal-exposure comparison, the report with a verdict per claim, and the
   prediction against the observation (the sign and size of each miss).
Every phase is idempotent: a second `make demo` re-uses every complete run and the prediction; an interrupted one
continues where it stopped. --calibration='' skips phases 1-2.

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

from analysis.forecast import FORECAST_FILE, Forecast, format_forecast, make_forecast, misses
from analysis.io import final_rows, load_results
from analysis.report import write_report
from analysis.verdicts import analyze, exposure_pairs, main_budget, verdicts
from data_gen.prepare import Prepared, prepare
from experiments import sweep as sweep_lib
from mixlab.cli import flags_parser, no_arguments, one_line_errors
from mixlab.config import ConfigError, loading
from mixlab.sources import mixture_stream

_RUNS_DIR = flags.DEFINE_string("runs_dir", "runs", "where sweeps write their run folders")
_WORKERS = flags.DEFINE_integer(
    "workers", 0, "local worker processes, each pinned to its share of the cores (0 = one per core)"
)
_SWEEP = flags.DEFINE_string("sweep", "experiments/configs/demo.py:main", "the mixture sweep")
_CALIBRATION = flags.DEFINE_string(
    "calibration",
    "experiments/configs/demo.py:calibrate",
    "the r = 0 / r = 1 sweep run first, whose fits predict r* before the mixtures ('' = no calibration phase)",
)
_ENSEMBLE = flags.DEFINE_integer(
    "ensemble", 10, "train up to this many compatible runs in one process (>= 1; 10: each size's mixtures in one)"
)

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
    if _ENSEMBLE.value < 1:
        raise ConfigError(f"--ensemble={_ENSEMBLE.value}: must be >= 1")
    with loading(f"--sweep={_SWEEP.value}"):
        sweep = sweep_lib.load_sweep(_SWEEP.value)
    calibration = None
    if _CALIBRATION.value:
        with loading(f"--calibration={_CALIBRATION.value}"):
            calibration = sweep_lib.load_sweep(_CALIBRATION.value)
        if calibration.name != sweep.name:
            raise ConfigError(
                f"--calibration={_CALIBRATION.value}: its sweep is named {calibration.name!r}, the mixtures' "
                f"{sweep.name!r}; they must share one sweep folder"
            )
        sweep_lib.point_configs(calibration)
    config = sweep_lib.point_configs(sweep)[0]  # every point checked before anything is built
    workers = len(sweep_lib.cpu_slots(_WORKERS.value))
    sweep_dir = Path(_RUNS_DIR.value) / sweep.name
    phases = 4 if calibration else 2
    section("data: default web corpus, tokenizer, SynBio")
    prepared = prepare(config.data)
    preview_knowledge(prepared)
    section("a mixed batch (knowledge spans in \u00ab\u00bb)")
    preview_batch(config, prepared, 0.2)

    failed, forecast = [], None
    if calibration:
        runs = f"{len(calibration.points)} runs (r = 0 and r = 1), {workers} workers"
        section(f"phase 1 of {phases}: calibration, {runs}")
        failed += _run(calibration, "calibration")
        section(f"phase 2 of {phases}: the theory's prediction, before any mixture run")
        forecast = predict_first(sweep_dir, calibration, sweep)
    section(f"phase {phases - 1} of {phases}: mixtures, {len(sweep.points)} runs, {workers} workers")
    failed += _run(sweep, "mixtures")

    section(f"phase {phases} of {phases}: analysis")
    table = sweep_dir / "results.csv"
    results = load_results(table)
    final = final_rows(results)
    fixed = main_budget(final[(final["ratio"] > 0) & (final["ratio"] < 1)])
    print(f"final accuracy (rows: model size, columns: mixing ratio r), runs of {fixed['tokens'].iloc[0] / 1e6:.2f}M"
          " tokens each\n")  # fmt: skip
    print(accuracy_grid(fixed).to_string(float_format=lambda v: f"{v:.2f}"))
    print("\nsame exposures per person, different r:")
    pairs = exposure_pairs(final)
    print(pairs.to_string(index=False) if len(pairs) else "no equal-exposure pairs in this sweep")
    analysis = analyze(results)
    if forecast:
        print("\nthe prediction made before the mixtures, against the observation:")
        print(format_misses(misses(forecast, analysis)))
    report_path = write_report(analysis, sweep_dir / "report", source=str(table), forecast=forecast)
    print()
    for verdict in verdicts(analysis):
        print(f"[{verdict.status}] {verdict.claim}: {verdict.text}")

    section("where everything is")
    print(f"run folders:   {sweep_dir}/<run_id>/ (config.json, metrics.jsonl, eval.jsonl, train.log, checkpoints/)")
    print(f"results table: {table} (and results.parquet)")
    if forecast:
        print(f"prediction:    {sweep_dir / FORECAST_FILE} (made at {forecast.made_at})")
    print(f"report:        {report_path} (figures beside it)")
    print(f"data:          {config.data.dir}/ (corpus, tokenizer, token stores)")
    print(f"total wall time of this demo: {time.perf_counter() - t0:.0f} s")
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed: {failed}; see their train.log, then rerun `make demo`")


def _run(sweep: sweep_lib.Sweep, phase: str) -> list[str]:
    """Train the sweep's incomplete runs; the ids of those that failed."""
    outcomes = sweep_lib.run_sweep(sweep, _RUNS_DIR.value, workers=_WORKERS.value, ensemble=_ENSEMBLE.value,
                                   label=phase)  # fmt: skip
    return sorted(rid for rid, outcome in outcomes.items() if outcome == "failed")


def predict_first(sweep_dir: Path, calibration: sweep_lib.Sweep, mixtures: sweep_lib.Sweep) -> Forecast:
    """The theory's prediction from the calibration runs alone, printed and written before the mixtures; the one
    already written is kept (and printed) on a rerun."""
    path = sweep_dir / FORECAST_FILE
    if path.exists():
        forecast = Forecast.read(path)
        print(f"kept the prediction in {path}")
    else:
        rows = load_results(sweep_dir / "results.csv")
        rows = rows[rows["run_id"].isin(calibration.run_ids())]
        ratios = sorted({float(p["data.ratio"]) for p in mixtures.points if 0 < float(p["data.ratio"]) < 1})
        try:
            forecast = make_forecast(rows, ratios)
        except ValueError as e:
            raise ConfigError(f"--calibration={_CALIBRATION.value}: {e}") from None
        forecast.write(path)
        print(f"wrote {path}")
    print("\n".join(format_forecast(forecast)))
    return forecast


def format_misses(table: pd.DataFrame) -> str:
    """One line per size: predicted and observed r*, observed / predicted [CI], and the direction of the miss."""
    lines = []
    for _, r in table.iterrows():
        if not np.isfinite(r["obs_pred"]):
            lines.append(f"  {r['size']}: predicted {r['predicted']:.3g}, observed {r['observed']:.3g}: not comparable")
            continue
        inside = r["obs_pred_lo"] <= 1 <= r["obs_pred_hi"]
        how = "within the CI" if inside else ("observed above" if r["obs_pred"] > 1 else "observed below")
        lines.append(
            f"  {r['size']}: predicted r* {r['predicted']:.3g}, observed {r['observed']:.3g}; observed / predicted "
            f"{r['obs_pred']:.2f} [{r['obs_pred_lo']:.2f}, {r['obs_pred_hi']:.2f}] ({how})"
            + ("" if r["same_as_report"] else "; NOT the report's prediction")
        )
    return "\n".join(lines)


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(PROGRAM))

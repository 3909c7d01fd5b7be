"""`python -m data_gen.synbio_cli`: write a SynBio population table, sample biographies and a knowledge summary.

    python -m data_gen.synbio_cli --num_people=1000 --seed=0 --out=/tmp/synbio_1k [--tokenizer=tokenizer.json]
Writes people.csv, people.parquet, samples.jsonl and summary.json into --out and prints samples and the summary.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd
from absl import app, flags

from data_gen.synbio import ATTRIBUTES, ByteTokenizer, Population, SynBio

_NUM_PEOPLE = flags.DEFINE_integer("num_people", 1000, "Number of people N (SynBio-N).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the population and of the rendering.")
_OUT = flags.DEFINE_string("out", None, "Output directory.")
_TOKENIZER = flags.DEFINE_string("tokenizer", "", "tokenizer.json for token counts; empty = built-in byte level.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 10, "People whose biographies (exposures 0 and 1) are written.")
_NUM_PRINT = flags.DEFINE_integer("num_print", 3, "Biographies printed to stdout.")
_STAT_EXPOSURES = flags.DEFINE_integer("stat_exposures", 8, "Exposures per person measured for token statistics.")
_POOL_SIZES = flags.DEFINE_list("pool_sizes", [], "Pool overrides, e.g. major=20,birth_city=50.")


def parse_pool_sizes(items: list[str]) -> dict[str, int]:
    """["major=20", ...] -> {"major": 20, ...}."""
    sizes = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not value.strip().lstrip("-").isdigit():
            raise ValueError(f"--pool_sizes entry {item!r} must look like name=integer")
        sizes[key.strip()] = int(value)
    return sizes


def load_tokenizer(path: str) -> tuple[object, dict]:
    """The tokenizer at `path` (data_gen.tokenizer.Tokenizer), or the built-in byte-level one when empty."""
    if not path:
        return ByteTokenizer(), {"kind": "built-in byte-level (UTF-8 bytes)", "fingerprint": ByteTokenizer.fingerprint}
    from data_gen.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(path)
    return tokenizer, {"kind": "data_gen.tokenizer.Tokenizer", "path": str(path), "fingerprint": tokenizer.fingerprint}


def people_table(population: Population) -> pd.DataFrame:
    """One row per person: id, full name and the five attribute values."""
    columns = {"person": np.arange(population.num_people), "name": population.names}
    for a, attribute in enumerate(ATTRIBUTES):
        pool = np.asarray(population.pools[attribute], dtype=object)
        columns[attribute] = pool[population.attributes[:, a]]
    return pd.DataFrame(columns)


def summary(synbio: SynBio, tokenizer_info: dict, stat_exposures: int) -> dict:
    """Knowledge accounting and token statistics (measured over people x exposures 0..stat_exposures-1)."""
    population = synbio.population
    if stat_exposures < 1:
        raise ValueError(f"stat_exposures must be >= 1, got {stat_exposures}")
    lengths = synbio.bio_lengths(np.arange(population.num_people)[:, None], np.arange(stat_exposures)[None, :])
    return {
        "num_people": population.num_people,
        "seed": population.seed,
        "pool_sizes": population.pool_sizes,
        "bits_per_person": population.bits_per_person,
        "total_bits": population.total_bits,
        "tokenizer": tokenizer_info,
        "tokens_per_bio": {
            "mean": float(lengths.mean()),
            "std": float(lengths.std()),
            "min": int(lengths.min()),
            "max": int(lengths.max()),
            "expected_mean": synbio.mean_bio_tokens,
            "max_possible": synbio.max_bio_tokens,
            "measured_over": f"{population.num_people} people x exposures 0..{stat_exposures - 1}",
        },
        "tokens_per_pass": int(lengths[:, 0].sum()),
    }


def write_outputs(out: pathlib.Path, synbio: SynBio, tokenizer_info: dict, num_samples: int, stat_exp: int) -> dict:
    """Write people.csv, people.parquet, samples.jsonl and summary.json into `out`; return the summary."""
    out.mkdir(parents=True, exist_ok=True)
    table = people_table(synbio.population)
    table.to_csv(out / "people.csv", index=False)
    table.to_parquet(out / "people.parquet", index=False)
    with open(out / "samples.jsonl", "w", encoding="utf-8") as f:
        for person in range(min(num_samples, synbio.population.num_people)):
            for exposure in (0, 1):
                tokens, text = synbio.render_tokens(person, exposure), synbio.render_text(person, exposure)
                row = {"person": person, "exposure": exposure, "num_tokens": len(tokens), "text": text}
                f.write(json.dumps(row) + "\n")
    result = summary(synbio, tokenizer_info, stat_exp)
    (out / "summary.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    tokenizer, info = load_tokenizer(_TOKENIZER.value)
    population = Population(_NUM_PEOPLE.value, _SEED.value, parse_pool_sizes(_POOL_SIZES.value) or None)
    synbio = SynBio(population, tokenizer, _SEED.value)
    out = pathlib.Path(_OUT.value)
    result = write_outputs(out, synbio, info, _NUM_SAMPLES.value, _STAT_EXPOSURES.value)
    for person in range(min(_NUM_PRINT.value, population.num_people)):
        print(f"--- person {person}, exposure 0 ---\n{synbio.render_text(person, 0)}")
    print(f"--- SynBio-{population.num_people} summary ({out / 'summary.json'}) ---")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    flags.mark_flag_as_required("out")
    app.run(main)

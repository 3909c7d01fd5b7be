"""`prepare(config.data)`: the data training reads — tokenizer, web stores, the knowledge set, eval set.

Idempotent: every artefact lives under config.data.dir at a path keyed by its inputs, is built once, and is
loaded afterwards (different corpora or vocabulary sizes never collide):
    .cache/debs/                        Debian packages of the "debian-docs" corpus
    corpus/<name>-<key>/                docs.jsonl + manifest.json (default, debian-docs or synthetic corpus)
    tokenizers/bpe<V>-<key>/            tokenizer.json + inputs.json (what it was trained on)
    stores/<corpus>-tok<fp>-val<f>/     the TokenStore (train/, val/, manifest.json)

config.data.web: "default" (a third of the Debian documentation, shipped in the package: data_gen.default_corpus),
"debian-docs" (all of it, from the Debian packages: data_gen.debian_docs), "synthetic" (data_gen.synthetic_web,
overrides in config.data.synthetic), "none" (knowledge only; needs ratio == 1), "tfds:<name>[:<split>]" (a TFDS
text data set prepared under config.data.dir/tfds, data_gen.tfds_corpus), or a path to a .txt/.parquet/.jsonl file
or a directory of them.

config.data.tokenizer: "" trains a byte-level BPE of config.data.vocab_size entries on a web sample
(TOKENIZER_WEB_CHARS characters) plus SynBio renderings of TOKENIZER_PEOPLE people of a fixed population, so every
N and seed of a sweep shares one tokenizer (its key holds the corpus name and the hash of those renderings). A task
run (config.data.knowledge "slope" or "max_of_n") adds data_gen.tasks.tokenizer_sample, a fixed sample of the
task's documents, and its hash to the key; a SynBio run's inputs, and so its tokenizer, are unchanged. A path
loads that tokenizer.json instead; config.data.vocab_size is then unused (the model takes
`prepared.tokenizer.vocab_size`).

config.data.knowledge: "synbio" builds `Prepared.synbio` and its eval set; a task (data_gen/tasks.py) builds
`Prepared.task` and its held-out `TaskEvalSet` instead (synbio is None).

    python -m data_gen.prepare --dir data --web default --vocab_size 8192

The CLI checks its values with the trainer's rules (mixlab.config.check_data) first; bad input (a value out of range,
a missing file, a damaged store, a store of another tokenizer) is one line and exit status 2 (mixlab/cli.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from data_gen.atomic import building
from data_gen.debian_docs import build_deb_corpus
from data_gen.default_corpus import build_default_corpus
from data_gen.hashing import short_hash
from data_gen.synbio import EvalSet, Population, SynBio
from data_gen.synbio_tokens import ByteTokenizer
from data_gen.synthetic_web import SyntheticWeb
from data_gen.task import Task, TaskEvalSet
from data_gen.tasks import make_task, task_eval_set, tokenizer_sample
from data_gen.tfds_corpus import TfdsCorpus, tfds_corpus
from data_gen.tokenizer import Tokenizer, train_bpe
from data_gen.web import TokenStore, build_store, list_files, read_documents
from mixlab import cli

TOKENIZER_WEB_CHARS = 8_000_000
TOKENIZER_PEOPLE = 4000
TOKENIZER_SAMPLE_VERSION = 1
VAL_FRACTION = 0.01


@dataclasses.dataclass
class Prepared:
    tokenizer: Tokenizer
    web_train: TokenStore | None
    web_val: TokenStore | None
    synbio: SynBio | None  # None for a task run
    eval_set: EvalSet | TaskEvalSet
    task: Task | None = None  # the task of a task run (config.data.knowledge), None for SynBio


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A web corpus on disk: its files and a name that identifies its content."""

    path: Path
    name: str

    def documents(self) -> Iterator[str]:
        for f in list_files(self.path):
            yield from read_documents(f)

    @property
    def bytes(self) -> int:
        return sum(f.stat().st_size for f in list_files(self.path))

    def store_input(self) -> tuple[Path, None]:
        """(the files, no description: data_gen.web.build_store hashes them) for build_store."""
        return self.path, None


def web_corpus(data_cfg, data_dir: Path) -> Corpus | TfdsCorpus | None:
    """The web corpus named by config.data.web (built on first use), or None for "none"."""
    web = str(data_cfg.web)
    if web == "none":
        return None
    if web.startswith("tfds:"):
        return tfds_corpus(web, data_dir)
    if web in ("default", "debian-docs"):
        path = (build_default_corpus if web == "default" else build_deb_corpus)(data_dir)
        return Corpus(path, path.parent.name)
    if web == "synthetic":
        path = SyntheticWeb.from_config(data_cfg.get("synthetic", None)).write_corpus(data_dir)
        return Corpus(path, path.parent.name)
    path = Path(web).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"config.data.web={web!r}: no such file or directory; expected 'default', 'debian-docs', 'synthetic', "
            "'none', 'tfds:<name>' or a path to .txt/.parquet/.jsonl files"
        )
    files = list_files(path)
    listing = [str(path.resolve())] + [[f.relative_to(path).as_posix() if f != path else f.name, f.stat().st_size]
                                       for f in files]  # fmt: skip
    return Corpus(path, f"local-{path.name}-{short_hash(listing)}")


def _web_sample(corpus: Corpus | TfdsCorpus, chars: int) -> Iterator[str]:
    """About `chars` characters of documents spread over the corpus (a seeded Bernoulli selection)."""
    keep = min(1.0, chars / max(1, corpus.bytes))
    rng = np.random.default_rng(TOKENIZER_SAMPLE_VERSION)
    total = 0
    for text in corpus.documents():
        if rng.random() < keep:
            yield text
            total += len(text)
            if total >= chars:
                return


def _synbio_sample(people: int) -> list[str]:
    """Biographies (exposure 0) of a fixed population of `people`, as text (byte-level rendering, decoded)."""
    synbio = SynBio(Population(people, seed=0), ByteTokenizer(), seed=0)
    tokens, offsets = synbio.render_batch(np.arange(people), np.zeros(people, np.int64))
    raw = tokens.astype(np.uint8).tobytes()
    return [raw[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def get_tokenizer(data_cfg, data_dir: Path, corpus: Corpus | TfdsCorpus | None) -> Tokenizer:
    """The tokenizer file named by config.data.tokenizer, or the BPE trained for this corpus and vocab size."""
    if str(data_cfg.tokenizer):
        return Tokenizer.load(Path(str(data_cfg.tokenizer)).expanduser())
    bios = _synbio_sample(TOKENIZER_PEOPLE)
    inputs = {
        "corpus": corpus.name if corpus else None,
        "vocab_size": int(data_cfg.vocab_size),
        "web_chars": TOKENIZER_WEB_CHARS,
        "synbio_people": TOKENIZER_PEOPLE,
        "synbio_sha256": hashlib.sha256("\0".join(bios).encode()).hexdigest(),
        "version": TOKENIZER_SAMPLE_VERSION,
    }
    task_docs = tokenizer_sample(data_cfg)
    if task_docs:  # only task runs: the SynBio key stays as it was
        inputs["task"] = str(data_cfg.knowledge)
        inputs["task_docs"] = len(task_docs)
        inputs["task_sha256"] = hashlib.sha256("\0".join(task_docs).encode()).hexdigest()
    out = data_dir / "tokenizers" / f"bpe{inputs['vocab_size']}-{short_hash(inputs)}"
    if (out / "tokenizer.json").exists():
        return Tokenizer.load(out / "tokenizer.json")

    def texts() -> Iterator[str]:
        if corpus is not None:
            yield from _web_sample(corpus, TOKENIZER_WEB_CHARS)
        yield from bios
        yield from task_docs

    with building(out) as tmp:
        train_bpe(texts(), inputs["vocab_size"], tmp / "tokenizer.json")
        (tmp / "inputs.json").write_text(json.dumps(inputs, indent=1) + "\n")
    return Tokenizer.load(out / "tokenizer.json")


def web_stores(corpus: Corpus | TfdsCorpus, tokenizer: Tokenizer, data_dir: Path) -> tuple[TokenStore, TokenStore]:
    """(train, val) stores of the corpus tokenized with `tokenizer`."""
    out = data_dir / "stores" / f"{corpus.name}-tok{tokenizer.fingerprint[:12]}-val{VAL_FRACTION:g}"
    source, sources = corpus.store_input()
    train = build_store(source, tokenizer, out, val_fraction=VAL_FRACTION, seed=0, sources=sources)
    return train, TokenStore.open(out, tokenizer, "val")


def prepare(data_cfg) -> Prepared:
    """Build (once) or load everything under data_cfg.dir."""
    data_dir = Path(str(data_cfg.dir))
    corpus = web_corpus(data_cfg, data_dir)
    tokenizer = get_tokenizer(data_cfg, data_dir, corpus)
    web_train, web_val = web_stores(corpus, tokenizer, data_dir) if corpus else (None, None)
    task = make_task(data_cfg, tokenizer)
    if task is not None:
        return Prepared(tokenizer, web_train, web_val, None, task_eval_set(data_cfg, task), task)
    pool_sizes = data_cfg.get("pool_sizes", None)
    population = Population(
        int(data_cfg.num_people), int(data_cfg.synbio_seed), dict(pool_sizes) if pool_sizes else None
    )
    synbio = SynBio(population, tokenizer, int(data_cfg.synbio_seed))
    return Prepared(
        tokenizer=tokenizer,
        web_train=web_train,
        web_val=web_val,
        synbio=synbio,
        eval_set=synbio.eval_set(),
    )


PROGRAM = "data_gen.prepare"


def main() -> None:
    parser = cli.ArgumentParser(prog=PROGRAM, description="Build the tokenizer, web stores and SynBio (idempotent).")
    parser.add_argument("--dir", default="data")
    parser.add_argument("--web", default="default")
    parser.add_argument("--tokenizer", default="")
    parser.add_argument("--vocab_size", type=int, default=1024)
    parser.add_argument("--num_people", type=int, default=1000)
    args = parser.parse_args()
    with cli.one_line_errors(PROGRAM):
        _main(args)


def _main(args) -> None:
    from mixlab.config import base_config, check_data  # the trainer's defaults and rules (mixlab depends on data_gen)

    cfg = base_config().data
    cfg.update(dir=args.dir, web=args.web, tokenizer=args.tokenizer, vocab_size=args.vocab_size)
    cfg.update(num_people=args.num_people, ratio=1.0)  # the ratio changes no prepared file; 1 fits every data.web
    check_data(cfg, files=True)
    t0 = time.perf_counter()
    p = prepare(cfg)
    print(f"prepared in {time.perf_counter() - t0:.1f}s: {p.tokenizer}")
    for store in (p.web_train, p.web_val):
        if store is not None:
            print(f"  {store}: {store.num_tokens / max(1, store.num_docs):.0f} tokens/doc")
    print(f"  SynBio-{args.num_people}: mean {p.synbio.mean_bio_tokens:.1f} tokens/bio, max {p.synbio.max_bio_tokens}")


if __name__ == "__main__":
    main()

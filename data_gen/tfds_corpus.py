"""A prepared TFDS text data set as the web corpus: config.data.web = "tfds:<name>[/<config>][:<version>][:<split>]".

TFDS's data_dir is <config.data.dir>/tfds, beside every other artefact of data_gen/prepare.py (TFDS's own default,
~/tensorflow_datasets or $TFDS_DATA_DIR, is not read). Nothing is downloaded or generated here: prepare the data set
there first, in array_record (or parquet) format; a directory of web text, for instance, with data_gen/tfds_web.py:

    python -c "from data_gen.tfds_web import build_tfds; build_tfds('/path/to/shards', 'data/tfds')"
    python -m mixlab.train ... --config.data.dir=data --config.data.web=tfds:mixlab_web_text

The documents are the split's `text` feature (split "train" unless named; slices such as "train[:10%]" work), read
through TFDS's random-access data source (what `tfds.data_source(..., download=False)` returns: no TensorFlow).
The corpus name holds the data set's full name (name/config/version), the split and a hash of its file listing
(resolved path, names and sizes), so token stores of different data sets, versions or splits never collide; a
prepared TFDS version is never rewritten, so the listing identifies the content without reading it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import tensorflow_datasets as tfds

from data_gen.hashing import short_hash

TEXT_FEATURE = "text"
_SPEC = re.compile(r"tfds:(?P<name>[^:\s]+(?::\d[\w.*]*)?)(?::(?P<split>\S+))?")
_READ_BATCH = 256


@dataclasses.dataclass(frozen=True)
class TfdsCorpus:
    """One split of a prepared TFDS data set: a name that identifies it, its documents and their rough size."""

    name: str
    bytes: int  # serialized size of the split's examples (sets data_gen/prepare.py's tokenizer sample rate)
    sources: dict  # what identifies the documents in a token store's manifest (data_gen.web.build_store)
    data_source: Sequence = dataclasses.field(repr=False, compare=False)

    def documents(self) -> Iterator[str]:
        """The `text` of every example, in the data source's order."""
        for start in range(0, len(self.data_source), _READ_BATCH):
            stop = min(start + _READ_BATCH, len(self.data_source))
            for example in self.data_source.__getitems__(range(start, stop)):
                text = example[TEXT_FEATURE]
                yield text.decode("utf-8") if isinstance(text, bytes) else str(text)

    def store_input(self) -> tuple[Iterator[str], dict]:
        """(documents, their description) for data_gen.web.build_store."""
        return self.documents(), self.sources


def tfds_corpus(web: str, data_dir: Path) -> TfdsCorpus:
    """The corpus that config.data.web = "tfds:..." names, read from data_dir/tfds (see the module docstring)."""
    match = _SPEC.fullmatch(web)
    if match is None:
        raise ValueError(f"config.data.web={web!r}: expected tfds:<name>[/<config>][:<version>][:<split>]")
    name, split = match["name"], match["split"] or "train"
    tfds_dir = data_dir / "tfds"
    try:
        builder = tfds.builder(name, data_dir=str(tfds_dir))
    except (ValueError, AssertionError):  # not found, or a config / version that a registered builder lacks
        builder = None
    if builder is None or not builder.is_prepared():
        raise FileNotFoundError(
            f"config.data.web={web!r}: no prepared TFDS data set {name!r} under {tfds_dir} (prepare it there first; "
            "see data_gen/tfds_corpus.py)"
        )
    info = builder.info
    if TEXT_FEATURE not in info.features:
        raise ValueError(
            f"config.data.web={web!r}: TFDS data set {info.full_name} has no {TEXT_FEATURE!r} feature "
            f"(features: {', '.join(info.features)})"
        )
    try:
        source = builder.as_data_source(split=split)
    except (ValueError, KeyError, NotImplementedError) as e:  # unknown split; a format without random access
        reason = str(e).splitlines()[0]
        raise ValueError(
            f"config.data.web={web!r}: cannot read {info.full_name} from {builder.data_dir}: {reason}"
        ) from None
    version_dir = Path(builder.data_dir).resolve()
    files = [[f.name, f.stat().st_size] for f in sorted(version_dir.iterdir()) if f.is_file()]
    sources = {"name": f"tfds:{info.full_name}:{split}", "path": str(version_dir), "split": split, "files": files}
    examples = sum(s.num_examples for s in info.splits.values())
    num_bytes = sum(s.num_bytes for s in info.splits.values()) * len(source) // max(1, examples)
    readable_split = re.sub(r"[^\w.-]+", "_", split).strip("_")
    corpus_name = f"tfds-{info.full_name.replace('/', '-')}-{readable_split}-{short_hash(sources)}"
    return TfdsCorpus(corpus_name, num_bytes, sources, source)

"""The default web corpus (config.data.web="default"): a fixed third of the Debian documentation corpus
(data_gen.debian_docs), shipped inside the package, so it builds with no network and no apt.

    data_gen/corpus/default_docs.jsonl.xz   the documents, one {"text", "source", "part"} per line
    data_gen/corpus/default_docs.json       what they are: packages, versions, .deb sha256, licences, selection,
                                            counts and the sha256 of the text
    data_gen/corpus/NOTICE, copyright/      the packages' licences and where their complete sources are

Selection: a document of the full corpus is kept when the first 8 bytes of sha256("<source>#<part>"), read as a
big-endian integer, are below SUBSET_FRACTION * 2**64, a hash-based draw that is independent of the order of the
documents and keeps about the same share of every package. SUBSET_SHA256 pins the sha256 of the decompressed
text; a shipped file that does not match it is refused with CorpusUnavailable, never used. `--build-subset` prints
whether the rebuilt text matches the pin; rebuilt from other .debs (newer versions), it does not, and the printed
sha256 is the new pin.

    python -m data_gen.default_corpus --dir data                  # the default corpus into data/corpus/
    python -m data_gen.default_corpus --debs --dir data           # the full corpus from the .debs (apt-get)
    python -m data_gen.default_corpus --build-subset --dir data   # rebuild data_gen/corpus/ from the .debs
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import shutil
from pathlib import Path

from data_gen.atomic import building
from data_gen.debian_docs import (
    CorpusUnavailable,
    build_deb_corpus,
    deb_copyright,
    deb_corpus,
    deb_source,
    fetch_debs,
    is_built,
)
from data_gen.hashing import sha256_file, short_hash

CORPUS_DIR = Path(__file__).parent / "corpus"
SUBSET_FILE = CORPUS_DIR / "default_docs.jsonl.xz"
INFO_FILE = CORPUS_DIR / "default_docs.json"
SUBSET_FRACTION = 1 / 3
SUBSET_SHA256 = "b3d054fde83972c9a54dbcf31182b7d116787f206842c0c6e0cf0e96409ac428"  # of the decompressed text
_REBUILD = "reinstall mixlab, or rebuild it from the .debs with `python -m data_gen.default_corpus --build-subset`"


def in_subset(doc: dict) -> bool:
    """Whether a document of the full corpus belongs to the shipped subset (see the module docstring)."""
    digest = hashlib.sha256(f"{doc['source']}#{doc['part']}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < SUBSET_FRACTION * 2**64


def corpus_key() -> str:
    """The key of the default corpus's directory: the pinned text."""
    return short_hash({"subset_sha256": SUBSET_SHA256})


def read_shipped() -> tuple[bytes, dict]:
    """(the shipped documents as docs.jsonl bytes, their description), checked against SUBSET_SHA256."""
    try:
        text = lzma.decompress(SUBSET_FILE.read_bytes())
        info = json.loads(INFO_FILE.read_text())
    except FileNotFoundError as e:
        raise CorpusUnavailable(f"the default corpus is not installed: {e.filename} is missing; {_REBUILD}") from None
    except (lzma.LZMAError, EOFError) as e:
        raise CorpusUnavailable(f"the default corpus {SUBSET_FILE} is damaged ({e}); {_REBUILD}") from None
    except ValueError as e:
        raise CorpusUnavailable(f"{INFO_FILE} is damaged ({e}); {_REBUILD}") from None
    digest = hashlib.sha256(text).hexdigest()
    if digest != SUBSET_SHA256:
        raise CorpusUnavailable(
            f"the default corpus {SUBSET_FILE} is damaged: its text has sha256 {digest}, expected {SUBSET_SHA256} "
            f"(data_gen.default_corpus.SUBSET_SHA256); {_REBUILD}"
        )
    if info.get("docs_sha256") != SUBSET_SHA256:
        raise CorpusUnavailable(
            f"{INFO_FILE} describes another text (docs_sha256 {info.get('docs_sha256')}, expected {SUBSET_SHA256}); "
            + _REBUILD
        )
    return text, info


def build_default_corpus(data_dir: str | os.PathLike) -> Path:
    """Path of docs.jsonl of the default corpus under data_dir/corpus/, written once from the shipped file."""
    out = Path(data_dir) / "corpus" / f"debian-docs-subset-{corpus_key()}"
    if is_built(out):
        return out / "docs.jsonl"
    text, info = read_shipped()
    if out.exists():
        shutil.rmtree(out)  # incomplete or corrupted: rewrite
    with building(out) as tmp:
        (tmp / "docs.jsonl").write_bytes(text)
        source = {"file": f"data_gen/corpus/{SUBSET_FILE.name}", "xz_sha256": sha256_file(SUBSET_FILE)}
        manifest = {**info, "key": corpus_key(), "source": source, "docs_sha256": sha256_file(tmp / "docs.jsonl")}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return out / "docs.jsonl"


def build_subset(data_dir: str | os.PathLike, out_dir: Path | None = None) -> dict:
    """Rebuild the shipped files in out_dir (default data_gen/corpus/) from the .debs; returns the description.

    The .xz is rewritten only when the text changed (xz output may differ between liblzma versions)."""
    out_dir = CORPUS_DIR if out_dir is None else Path(out_dir)
    debs = fetch_debs(data_dir)
    full_path = deb_corpus(debs, data_dir)
    full = json.loads((full_path.parent / "manifest.json").read_text())
    lines = [line for line in full_path.read_bytes().splitlines(keepends=True) if in_subset(json.loads(line))]
    if not lines:
        raise CorpusUnavailable(f"SUBSET_FRACTION={SUBSET_FRACTION} keeps none of the {full['docs']} documents")
    text = b"".join(lines)
    docs = [json.loads(line) for line in lines]
    packages = []
    for deb, record in zip(debs, full["packages"], strict=True):
        mine = [d for d in docs if d["source"].startswith(f"{deb.package.name}/")]
        source, source_version = deb_source(deb.path)
        packages.append(
            {
                "name": deb.package.name,
                "version": deb.version,
                "deb_sha256": deb.sha256,
                "pinned": deb.pinned,
                "license": deb.package.license,
                "source_package": source,
                "source_version": source_version,
                "docs": len(mine),
                "chars": sum(len(d["text"]) for d in mine),
                "full_docs": record["docs"],
            }
        )
    info = {
        "name": "debian-docs-subset",
        "selection": {"fraction": SUBSET_FRACTION, "hash": "sha256('<source>#<part>')[:8] big-endian < f * 2**64"},
        "docs": len(docs),
        "chars": sum(len(d["text"]) for d in docs),
        "bytes": len(text),
        "docs_sha256": hashlib.sha256(text).hexdigest(),
        "full_corpus": {
            k: full[k] for k in ("key", "extractor_version", "split_chars", "docs", "chars", "docs_sha256")
        },
        "packages": packages,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    xz = out_dir / SUBSET_FILE.name
    if not (xz.exists() and lzma.decompress(xz.read_bytes()) == text):
        xz.with_suffix(".tmp").write_bytes(lzma.compress(text, preset=9 | lzma.PRESET_EXTREME))
        os.replace(xz.with_suffix(".tmp"), xz)
    (out_dir / INFO_FILE.name).write_text(json.dumps(info, indent=1) + "\n")
    (out_dir / "copyright").mkdir(exist_ok=True)
    for deb in debs:
        (out_dir / "copyright" / deb.package.name).write_bytes(deb_copyright(deb.path, deb.package))
    (out_dir / "NOTICE").write_text(notice(info))
    return info


def notice(info: dict) -> str:
    """The NOTICE of the shipped corpus: every package, its version, licence and complete source."""
    lines = [
        f"{SUBSET_FILE.name}: English prose extracted from the Debian packages below (markup removed, code and",
        "tables dropped, split into documents at section titles), a fixed share of their documents (see",
        'default_docs.json). Each document\'s "source" field starts with the name of the package it comes from, and',
        "the text is distributed under that package's licence. copyright/<package> is the package's",
        "/usr/share/doc/<package>/copyright.",
        "",
    ]
    for p in info["packages"]:
        lines += [
            f"{p['name']} {p['version']} ({p['docs']} documents)",
            f"  licence:  {p['license']}",
            f"  .deb:     sha256 {p['deb_sha256']}",
            f"  source:   `apt-get source {p['source_package']}={p['source_version']}`, or",
            f"            https://snapshot.debian.org/package/{p['source_package']}/{p['source_version']}/",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default="data", help="data directory (config.data.dir)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--debs", action="store_true", help="build the full corpus from the .debs (apt-get download)")
    group.add_argument("--build-subset", action="store_true", help="rebuild data_gen/corpus/ from the .debs")
    args = parser.parse_args()
    if args.build_subset:
        info = build_subset(args.dir)
        pinned = "matches" if info["docs_sha256"] == SUBSET_SHA256 else "differs from"
        print(f"{SUBSET_FILE}: {info['docs']} docs, {info['chars']:,} chars, {info['bytes']:,} bytes "
              f"({SUBSET_FILE.stat().st_size:,} compressed)")  # fmt: skip
        print(f"  text sha256 {info['docs_sha256']} ({pinned} SUBSET_SHA256)")
        return
    path = build_deb_corpus(args.dir) if args.debs else build_default_corpus(args.dir)
    m = json.loads((path.parent / "manifest.json").read_text())
    print(f"{path}: {m['docs']} docs, {m['chars'] / 1e6:.1f}M chars, {m['bytes'] / 2**20:.1f} MiB")
    for p in m["packages"]:
        print(f"  {p['name']}={p['version']} ({p['license']}): {p['docs']} docs")
    print(f"  docs.jsonl sha256 {m['docs_sha256']}")


if __name__ == "__main__":
    main()

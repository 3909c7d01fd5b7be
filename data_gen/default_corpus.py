"""The default web corpus: English prose extracted from three pinned Debian bookworm documentation packages.

    python3.11-doc 3.11.2-6+deb12u8   reST sources of the Python 3.11 documentation        PSF License 2.0
    linux-doc-6.1  6.1.176-1          reST sources of the Linux kernel documentation       GPL-2.0
    debian-handbook 11.20220922       The Debian Administrator's Handbook (en-US HTML)     GPL-2.0+ or CC-BY-SA-3.0

The .deb files are fetched with `apt-get download NAME=VERSION` into <dir>/.cache/debs (nothing is installed),
checked against pinned sha256 sums, and read in Python (ar archive -> data.tar.xz); markup is stripped by
data_gen.markup (code, tables and navigation dropped). Files are processed in sorted order and split into documents
at section titles, so every machine gets a byte-identical docs.jsonl; its sha256, the package versions and the
hash of every source file are written to manifest.json next to it.

If apt-get is missing or a pinned version cannot be fetched, `CorpusUnavailable` names the alternatives; nothing
else is ever substituted silently.

    python -m data_gen.default_corpus --dir data
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from data_gen.atomic import building
from data_gen.hashing import sha256_file, short_hash
from data_gen.markup import html_to_blocks, rst_to_blocks, split_documents

EXTRACTOR_VERSION = 1
TARGET_CHARS, MAX_CHARS, MIN_CHARS = 6000, 24000, 400


@dataclass(frozen=True)
class DebPackage:
    """A pinned Debian package and which files of it hold prose."""

    name: str
    version: str
    sha256: str  # of the .deb file
    license: str
    root: str  # path prefix of the prose files inside the package
    suffix: str
    markup: str  # "rst" | "html"
    exclude: tuple[str, ...] = ()  # relative paths starting with any of these are skipped
    top_level_only: bool = False

    @property
    def deb_name(self) -> str:
        return f"{self.name}_{self.version.replace(':', '%3a')}_all.deb"


PACKAGES = (
    DebPackage(
        "python3.11-doc",
        "3.11.2-6+deb12u8",
        "50eb63e7f636c4281e9ce1b8f10386f1def42159eddce34fc1f41c46261df71b",
        "PSF-2.0",
        "usr/share/doc/python3.11/html/_sources/",
        ".rst.txt",
        "rst",
        exclude=("whatsnew/changelog",),
    ),
    DebPackage(
        "linux-doc-6.1",
        "6.1.176-1",
        "0d843674607703b9ef8c1db5e715c38ed52ff23574feabfe0d961d552126859f",
        "GPL-2.0",
        "usr/share/doc/linux-doc-6.1/html/_sources/",
        ".rst.txt",
        "rst",
        exclude=("translations/",),
    ),
    DebPackage(
        "debian-handbook",
        "11.20220922",
        "3d5dbeac1f1afc9c094eab9d0f701f6ecff99c4927d5a4794cf6c85678134faa",
        "GPL-2.0+ or CC-BY-SA-3.0",
        "usr/share/doc/debian-handbook/html/en-US/",
        ".html",
        "html",
        exclude=("index.html",),
        top_level_only=True,
    ),
)


class CorpusUnavailable(RuntimeError):
    """The default corpus cannot be fetched on this machine."""


def _alternatives(cache_dir: Path) -> str:
    pins = ", ".join(f"{p.deb_name} (sha256 {p.sha256[:12]}...)" for p in PACKAGES)
    return (
        "Alternatives: set config.data.web to a directory of .txt files or to FineWeb-Edu parquet/jsonl shards "
        "(config.data.web=/path/to/shards), choose the synthetic web explicitly (config.data.web=synthetic), "
        f"or copy the pinned .deb files into {cache_dir}: {pins}."
    )


def corpus_key() -> str:
    """Hash of everything the extracted corpus depends on (pins, extraction parameters)."""
    spec = {
        "extractor": EXTRACTOR_VERSION,
        "chars": [TARGET_CHARS, MAX_CHARS, MIN_CHARS],
        "packages": [asdict(p) for p in PACKAGES],
    }
    return short_hash(spec)


def _apt_download(pkg: DebPackage, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["apt-get", "download", f"{pkg.name}={pkg.version}"], cwd=cwd, capture_output=True, text=True)


def fetch_deb(pkg: DebPackage, cache_dir: Path) -> Path:
    """The pinned .deb in cache_dir, downloaded with `apt-get download` if absent; its sha256 is checked."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / pkg.deb_name
    if not path.exists():
        if shutil.which("apt-get") is None:
            raise CorpusUnavailable(
                "cannot fetch the default web corpus: apt-get not found (not a Debian system?). "
                + _alternatives(cache_dir)
            )
        with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
            proc = _apt_download(pkg, Path(tmp))
            if proc.returncode != 0 and hasattr(os, "geteuid") and os.geteuid() == 0:
                subprocess.run(["apt-get", "update"], capture_output=True, text=True)
                proc = _apt_download(pkg, Path(tmp))
            if proc.returncode != 0 or not (Path(tmp) / pkg.deb_name).exists():
                raise CorpusUnavailable(
                    f"`apt-get download {pkg.name}={pkg.version}` failed (needs Debian bookworm package lists; "
                    f"run `apt-get update` as root): {proc.stderr.strip()[-400:]}. {_alternatives(cache_dir)}"
                )
            os.replace(Path(tmp) / pkg.deb_name, path)
    digest = sha256_file(path)
    if digest != pkg.sha256:
        raise CorpusUnavailable(
            f"{path} has sha256 {digest}, expected {pkg.sha256} for {pkg.name}={pkg.version}; delete it to refetch. "
            + _alternatives(cache_dir)
        )
    return path


def _deb_data_tar(deb: Path) -> bytes:
    """The data.tar.* member of a .deb (an `ar` archive)."""
    raw = deb.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise ValueError(f"{deb} is not a Debian package (no ar header)")
    pos = 8
    while pos + 60 <= len(raw):
        name = raw[pos : pos + 16].decode().strip().rstrip("/")
        size = int(raw[pos + 48 : pos + 58].decode().strip())
        if name.startswith("data.tar"):
            return raw[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
    raise ValueError(f"{deb} has no data.tar member")


def deb_prose_files(deb: Path, pkg: DebPackage) -> dict[str, bytes]:
    """Relative path -> bytes of the package's prose files (regular files under pkg.root with pkg.suffix)."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(_deb_data_tar(deb)), mode="r:*") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if not (member.isfile() and name.startswith(pkg.root) and name.endswith(pkg.suffix)):
                continue
            rel = name[len(pkg.root) :]
            if rel.startswith(pkg.exclude) or (pkg.top_level_only and "/" in rel):
                continue
            files[rel] = tar.extractfile(member).read()
    return files


def extract_documents(files: dict[str, bytes], markup: str, source_prefix: str) -> list[dict]:
    """Documents ({"text", "source", "part"}) of prose files, in sorted path order."""
    to_blocks = {"rst": rst_to_blocks, "html": html_to_blocks}[markup]
    docs = []
    for rel in sorted(files):
        blocks = to_blocks(files[rel].decode("utf-8", errors="replace"))
        for part, text in enumerate(split_documents(blocks, TARGET_CHARS, MAX_CHARS, MIN_CHARS)):
            docs.append({"text": text, "source": f"{source_prefix}/{rel}", "part": part})
    return docs


def build_default_corpus(data_dir: str | os.PathLike) -> Path:
    """Path of docs.jsonl of the default corpus under data_dir/corpus/, built once (a no-op when present)."""
    data_dir = Path(data_dir)
    out = data_dir / "corpus" / f"debian-docs-{corpus_key()}"
    docs_path, manifest_path = out / "docs.jsonl", out / "manifest.json"
    if manifest_path.exists() and docs_path.exists():
        if json.loads(manifest_path.read_text())["docs_sha256"] == sha256_file(docs_path):
            return docs_path
    if out.exists():
        shutil.rmtree(out)  # incomplete or corrupted: rebuild
    cache_dir = data_dir / ".cache" / "debs"
    debs = [fetch_deb(p, cache_dir) for p in PACKAGES]
    with building(out) as tmp:
        _extract_corpus(debs, tmp)
    return docs_path


def _extract_corpus(debs: list[Path], out: Path) -> None:
    """Write docs.jsonl and manifest.json of the packages' prose into the directory out."""
    docs_path = out / "docs.jsonl"
    packages, total_docs, total_chars = [], 0, 0
    with open(docs_path, "w", encoding="utf-8") as f:
        for pkg, deb in zip(PACKAGES, debs, strict=True):
            files = deb_prose_files(deb, pkg)
            docs = extract_documents(files, pkg.markup, pkg.name)
            for d in docs:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
            chars = sum(len(d["text"]) for d in docs)
            total_docs, total_chars = total_docs + len(docs), total_chars + chars
            packages.append(
                {
                    "name": pkg.name,
                    "version": pkg.version,
                    "deb_sha256": pkg.sha256,
                    "license": pkg.license,
                    "docs": len(docs),
                    "chars": chars,
                    "files": {rel: hashlib.sha256(b).hexdigest() for rel, b in sorted(files.items())},
                }
            )
    if total_docs == 0:
        raise CorpusUnavailable(f"the default corpus extracted from {debs} is empty")
    manifest = {
        "name": "debian-docs",
        "key": corpus_key(),
        "extractor_version": EXTRACTOR_VERSION,
        "split_chars": {"target": TARGET_CHARS, "max": MAX_CHARS, "min": MIN_CHARS},
        "docs": total_docs,
        "chars": total_chars,
        "bytes": docs_path.stat().st_size,
        "docs_sha256": sha256_file(docs_path),
        "packages": packages,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default="data", help="data directory (config.data.dir)")
    path = build_default_corpus(parser.parse_args().dir)
    m = json.loads((path.parent / "manifest.json").read_text())
    print(f"{path}: {m['docs']} docs, {m['chars'] / 1e6:.1f}M chars, {m['bytes'] / 2**20:.1f} MiB")
    for p in m["packages"]:
        print(f"  {p['name']}={p['version']} ({p['license']}): {len(p['files'])} files, {p['docs']} docs")
    print(f"  docs.jsonl sha256 {m['docs_sha256']}")


if __name__ == "__main__":
    main()

"""The Debian documentation corpus: English prose extracted from three Debian bookworm documentation packages.

    python3.11-doc 3.11.2-6+deb12u8   reST sources of the Python 3.11 documentation        PSF License 2.0
    linux-doc-6.1  6.1.176-1          reST sources of the Linux kernel documentation       GPL-2.0
    debian-handbook 11.20220922       The Debian Administrator's Handbook (en-US HTML)     GPL-2.0+ or CC-BY-SA-3.0

`config.data.web="debian-docs"` builds it from the .deb files; the default corpus (`data.web="default"`,
data_gen.default_corpus) is a fixed third of it shipped inside the package, so it needs neither apt nor a network.

The .deb files are fetched with `apt-get download NAME=VERSION` into <dir>/.cache/debs (nothing is installed) and
checked against pinned sha256 sums. When a pinned version has left the mirror (every Debian point release drops
the previous ones), the newest version apt offers is fetched instead, checked against the sha256 apt lists for it,
and recorded as such in manifest.json. The .deb is read in Python (ar archive -> data.tar.xz); markup is stripped
by data_gen.markup (code, tables and navigation dropped). Files are processed in sorted order and split into
documents at section titles, so the same .debs give a byte-identical docs.jsonl on every machine; its sha256, the
package versions and the hash of every source file are written to manifest.json next to it.

If apt-get is missing or no version of a package can be fetched, `CorpusUnavailable` names the alternatives.

    python -m data_gen.default_corpus --debs --dir data
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
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
    """A web corpus cannot be built on this machine (or its shipped copy is damaged)."""


@dataclass(frozen=True)
class FetchedDeb:
    """A .deb on disk: the pinned package, or the newest version apt offers once the pinned one has gone."""

    package: DebPackage
    path: Path
    version: str
    sha256: str

    @property
    def pinned(self) -> bool:
        return (self.version, self.sha256) == (self.package.version, self.package.sha256)


def _alternatives(cache_dir: Path) -> str:
    pins = ", ".join(f"{p.deb_name} (sha256 {p.sha256[:12]}...)" for p in PACKAGES)
    return (
        "Alternatives: the shipped default corpus (config.data.web=default, no apt needed), a directory of .txt "
        "files or FineWeb-Edu parquet/jsonl shards (config.data.web=/path/to/shards), the synthetic web "
        f"(config.data.web=synthetic), or copy the pinned .deb files into {cache_dir}: {pins}."
    )


def corpus_key(debs: list[FetchedDeb] | None = None) -> str:
    """Hash of everything the extracted corpus depends on: extraction parameters and the packages (the pins, or
    the versions and sha256 of the .debs actually fetched)."""
    if debs is None:
        packages = [asdict(p) for p in PACKAGES]
    else:
        packages = [asdict(dataclasses.replace(d.package, version=d.version, sha256=d.sha256)) for d in debs]
    spec = {"extractor": EXTRACTOR_VERSION, "chars": [TARGET_CHARS, MAX_CHARS, MIN_CHARS], "packages": packages}
    return short_hash(spec)


def _apt_download(spec: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["apt-get", "download", spec], cwd=cwd, capture_output=True, text=True)


def _apt_print_uris(name: str) -> subprocess.CompletedProcess:
    """`apt-get download --print-uris NAME`: "'URI' FILENAME SIZE SHA256:HEX" of the newest version, no download."""
    return subprocess.run(["apt-get", "download", "--print-uris", name], capture_output=True, text=True)


def _download(spec: str, filename: str, cache_dir: Path, update: bool = False) -> str:
    """`apt-get download SPEC` into cache_dir/filename; "" on success, else apt's error. With `update`, as root, a
    failure runs `apt-get update` once and retries."""
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        proc = _apt_download(spec, Path(tmp))
        if proc.returncode != 0 and update and hasattr(os, "geteuid") and os.geteuid() == 0:
            subprocess.run(["apt-get", "update"], capture_output=True, text=True)
            proc = _apt_download(spec, Path(tmp))
        if proc.returncode != 0 or not (Path(tmp) / filename).exists():
            return " ".join(proc.stderr.split())[-400:] or f"no {filename} written"
        os.replace(Path(tmp) / filename, cache_dir / filename)
    return ""


def _check_sha256(path: Path, expected: str, what: str, cache_dir: Path) -> None:
    digest = sha256_file(path)
    if digest != expected:
        raise CorpusUnavailable(
            f"{path} has sha256 {digest}, expected {expected} for {what}; delete it to refetch. "
            + _alternatives(cache_dir)
        )


def fetch_deb(pkg: DebPackage, cache_dir: Path) -> FetchedDeb:
    """The pinned .deb in cache_dir, downloaded with `apt-get download` if absent; if apt no longer has the pinned
    version, the newest version it offers (see `_fetch_newest`). Every .deb's sha256 is checked."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / pkg.deb_name
    if not path.exists():
        if shutil.which("apt-get") is None:
            raise CorpusUnavailable(
                f"cannot fetch {pkg.name}={pkg.version}: apt-get not found (not a Debian system?). "
                + _alternatives(cache_dir)
            )
        error = _download(f"{pkg.name}={pkg.version}", pkg.deb_name, cache_dir, update=True)
        if error:
            return _fetch_newest(pkg, cache_dir, error)
    _check_sha256(path, pkg.sha256, f"{pkg.name}={pkg.version}", cache_dir)
    return FetchedDeb(pkg, path, pkg.version, pkg.sha256)


def _fetch_newest(pkg: DebPackage, cache_dir: Path, pinned_error: str) -> FetchedDeb:
    """The newest version of pkg that apt offers, checked against the sha256 apt lists for it (reused when cached)."""
    proc = _apt_print_uris(pkg.name)
    lines = [line.split() for line in proc.stdout.splitlines() if line.startswith("'")]
    if proc.returncode != 0 or len(lines) != 1 or len(lines[0]) != 4 or not lines[0][3].startswith("SHA256:"):
        raise CorpusUnavailable(
            f"`apt-get download {pkg.name}={pkg.version}` failed ({pinned_error}) and apt offers no other version "
            f"of {pkg.name} ({' '.join(proc.stderr.split())[-200:] or 'no download URI'}); this needs Debian "
            f"bookworm package lists (run `apt-get update` as root). {_alternatives(cache_dir)}"
        )
    filename, sha256 = lines[0][1], lines[0][3].removeprefix("SHA256:").lower()
    version = filename.removeprefix(f"{pkg.name}_").rsplit("_", 1)[0].replace("%3a", ":")
    path = cache_dir / filename
    if not path.exists():
        error = _download(f"{pkg.name}={version}", filename, cache_dir)
        if error:
            raise CorpusUnavailable(
                f"`apt-get download {pkg.name}={pkg.version}` failed ({pinned_error}), and so did "
                f"`apt-get download {pkg.name}={version}` ({error}). {_alternatives(cache_dir)}"
            )
    _check_sha256(path, sha256, f"{pkg.name}={version} (as apt lists it)", cache_dir)
    logging.getLogger(__name__).warning(
        "%s=%s is not available; using %s=%s instead", pkg.name, pkg.version, pkg.name, version
    )
    return FetchedDeb(pkg, path, version, sha256)


def _deb_member(deb: Path, prefix: str) -> bytes:
    """The first member of a .deb (an `ar` archive) whose name starts with prefix ("data.tar", "control.tar")."""
    raw = deb.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise ValueError(f"{deb} is not a Debian package (no ar header)")
    pos = 8
    while pos + 60 <= len(raw):
        name = raw[pos : pos + 16].decode().strip().rstrip("/")
        size = int(raw[pos + 48 : pos + 58].decode().strip())
        if name.startswith(prefix):
            return raw[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
    raise ValueError(f"{deb} has no {prefix} member")


def _tar_file(archive: bytes, path: str) -> bytes:
    """The regular file `path` (without "./") of a tar archive."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
        for member in tar:
            if member.isfile() and member.name.removeprefix("./") == path:
                return tar.extractfile(member).read()
    raise ValueError(f"no file {path} in the archive")


def deb_copyright(deb: Path, pkg: DebPackage) -> bytes:
    """The package's /usr/share/doc/NAME/copyright (its licences)."""
    return _tar_file(_deb_member(deb, "data.tar"), f"usr/share/doc/{pkg.name}/copyright")


def deb_source(deb: Path) -> tuple[str, str]:
    """(source package, source version) from the .deb's control file."""
    control = _tar_file(_deb_member(deb, "control.tar"), "control").decode()
    fields = dict(line.split(":", 1) for line in control.splitlines() if line[:1].strip() and ":" in line)
    source = fields.get("Source", fields["Package"]).split()
    version = source[1].strip("()") if len(source) > 1 else fields["Version"].strip()
    return source[0], version


def deb_prose_files(deb: Path, pkg: DebPackage) -> dict[str, bytes]:
    """Relative path -> bytes of the package's prose files (regular files under pkg.root with pkg.suffix)."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(_deb_member(deb, "data.tar")), mode="r:*") as tar:
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


def is_built(out: Path) -> bool:
    """Whether out holds docs.jsonl and a manifest.json whose docs_sha256 matches it."""
    docs_path, manifest_path = out / "docs.jsonl", out / "manifest.json"
    if not (manifest_path.exists() and docs_path.exists()):
        return False
    return json.loads(manifest_path.read_text())["docs_sha256"] == sha256_file(docs_path)


def fetch_debs(data_dir: str | os.PathLike) -> list[FetchedDeb]:
    """The .deb of every package of PACKAGES, in data_dir/.cache/debs (see `fetch_deb`)."""
    return [fetch_deb(p, Path(data_dir) / ".cache" / "debs") for p in PACKAGES]


def build_deb_corpus(data_dir: str | os.PathLike) -> Path:
    """Path of docs.jsonl of the corpus of the pinned .debs (or, once they have gone, the newest; see `fetch_deb`)
    under data_dir/corpus/debian-docs-<key>/, built once (a no-op when present)."""
    data_dir = Path(data_dir)
    out = data_dir / "corpus" / f"debian-docs-{corpus_key()}"
    return out / "docs.jsonl" if is_built(out) else deb_corpus(fetch_debs(data_dir), data_dir)


def deb_corpus(debs: list[FetchedDeb], data_dir: str | os.PathLike) -> Path:
    """Path of docs.jsonl of the corpus of these .debs under data_dir/corpus/debian-docs-<key>/, built once; the key
    holds their versions and sha256, so other versions build elsewhere."""
    out = Path(data_dir) / "corpus" / f"debian-docs-{corpus_key(debs)}"
    if not is_built(out):
        if out.exists():
            shutil.rmtree(out)  # incomplete or corrupted: rebuild
        with building(out) as tmp:
            _extract_corpus(debs, tmp)
    return out / "docs.jsonl"


def _extract_corpus(debs: list[FetchedDeb], out: Path) -> None:
    """Write docs.jsonl and manifest.json of the packages' prose into the directory out."""
    docs_path = out / "docs.jsonl"
    packages, total_docs, total_chars = [], 0, 0
    with open(docs_path, "w", encoding="utf-8") as f:
        for deb in debs:
            pkg = deb.package
            files = deb_prose_files(deb.path, pkg)
            docs = extract_documents(files, pkg.markup, pkg.name)
            for d in docs:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
            chars = sum(len(d["text"]) for d in docs)
            total_docs, total_chars = total_docs + len(docs), total_chars + chars
            packages.append(
                {
                    "name": pkg.name,
                    "version": deb.version,
                    "deb_sha256": deb.sha256,
                    "pinned": deb.pinned,
                    "pinned_version": pkg.version,
                    "license": pkg.license,
                    "docs": len(docs),
                    "chars": chars,
                    "files": {rel: hashlib.sha256(b).hexdigest() for rel, b in sorted(files.items())},
                }
            )
    if total_docs == 0:
        raise CorpusUnavailable(f"the corpus extracted from {[str(d.path) for d in debs]} is empty")
    manifest = {
        "name": "debian-docs",
        "key": corpus_key(debs),
        "source": "Debian packages (.deb files)",
        "extractor_version": EXTRACTOR_VERSION,
        "split_chars": {"target": TARGET_CHARS, "max": MAX_CHARS, "min": MIN_CHARS},
        "docs": total_docs,
        "chars": total_chars,
        "bytes": docs_path.stat().st_size,
        "docs_sha256": sha256_file(docs_path),
        "packages": packages,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")

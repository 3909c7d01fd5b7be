"""Test helpers: tiny fake Debian packages (real ar + tar.xz layout) and a fake `apt-get download` serving them."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

from data_gen import debian_docs as dd

BODY = "\n\n".join(f"Paragraph {i} of plain prose that is long enough to keep." for i in range(12))
RST_ROOT = "usr/share/doc/pydoc/_sources/"


def _tar_xz(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo("./" + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def fake_deb(path: Path, name: str, version: str, files: dict[str, str]) -> str:
    """An ar archive with control.tar.xz and data.tar.xz (files + the copyright file), like a real .deb; its sha256."""
    control = f"Package: {name}\nSource: {name}-src\nVersion: {version}\nDescription: fake\n more\n"
    data = {**files, f"usr/share/doc/{name}/copyright": f"Copyright of {name} {version}\n"}
    members = [(b"debian-binary", b"2.0\n"), (b"control.tar.xz", _tar_xz({"control": control})),
               (b"data.tar.xz", _tar_xz(data))]  # fmt: skip
    raw = b"!<arch>\n"
    for member, blob in members:
        raw += member.ljust(16) + b"0".ljust(12) + b"0".ljust(6) * 2 + b"100644".ljust(8)
        raw += str(len(blob)).encode().ljust(10) + b"`\n" + blob + (b"\n" if len(blob) % 2 else b"")
    path.write_bytes(raw)
    return hashlib.sha256(raw).hexdigest()


def rst_files(first_title: str = "First") -> dict[str, str]:
    return {
        RST_ROOT + "b.rst.txt": f"Second\n======\n\n{BODY}\n",
        RST_ROOT + "a/x.rst.txt": f"{first_title}\n{'=' * len(first_title)}\n\n{BODY}\n",
        RST_ROOT + "translations/zh.rst.txt": f"Skip\n====\n\n{BODY}\n",
        RST_ROOT + "tiny.rst.txt": "Tiny\n====\n\nshort.\n",
        RST_ROOT + "notes.txt": BODY,
        "usr/share/other/c.rst.txt": BODY,
    }


def install_fake_packages(data_dir: Path, monkeypatch) -> None:
    """Pin two fake packages (pydoc: reST, hb: HTML) in debian_docs.PACKAGES, their .debs in <data_dir>/.cache/debs."""
    cache = data_dir / ".cache" / "debs"
    cache.mkdir(parents=True)
    html_files = {"usr/share/hb/en-US/p.html": f"<html><body><h1>Page</h1><p>{BODY}</p></body></html>",
                  "usr/share/hb/en-US/sub/q.html": "<p>nested, skipped</p>",
                  "usr/share/hb/en-US/index.html": "<p>contents, skipped</p>"}  # fmt: skip
    rst_pkg = dd.DebPackage("pydoc", "1.0-1", "", "PSF-2.0", RST_ROOT, ".rst.txt", "rst", exclude=("translations/",))
    html_pkg = dd.DebPackage(
        "hb", "2:3.0", "", "GPL-2.0+", "usr/share/hb/en-US/", ".html", "html", ("index.html",), True
    )
    rst_sha = fake_deb(cache / rst_pkg.deb_name, "pydoc", "1.0-1", rst_files())
    html_sha = fake_deb(cache / html_pkg.deb_name, "hb", "2:3.0", html_files)
    packages = (
        dd.DebPackage(**{**rst_pkg.__dict__, "sha256": rst_sha}),
        dd.DebPackage(**{**html_pkg.__dict__, "sha256": html_sha}),
    )
    monkeypatch.setattr(dd, "PACKAGES", packages)
    monkeypatch.setattr(dd, "MIN_CHARS", 100)


class FakeApt:
    """`apt-get download [--print-uris]` of a mirror holding exactly the .debs in `mirror` (name_version_all.deb)."""

    def __init__(self, mirror: Path, monkeypatch):
        self.mirror, self.downloads = mirror, []
        monkeypatch.setattr(dd.shutil, "which", lambda name: f"/usr/bin/{name}")
        monkeypatch.setattr(dd.os, "geteuid", lambda: 1000)
        monkeypatch.setattr(dd, "_apt_download", self.download)
        monkeypatch.setattr(dd, "_apt_print_uris", self.print_uris)

    def _debs(self, name: str) -> list[Path]:
        return sorted(self.mirror.glob(f"{name}_*_all.deb"))

    def download(self, spec: str, cwd: Path) -> subprocess.CompletedProcess:
        name, version = spec.split("=")
        deb = self.mirror / dd.DebPackage(name, version, "", "", "", "", "").deb_name
        if not deb.exists():
            return subprocess.CompletedProcess([], 100, "", f"E: Version '{version}' for '{name}' was not found")
        self.downloads.append(spec)
        (cwd / deb.name).write_bytes(deb.read_bytes())
        return subprocess.CompletedProcess([], 0, "", "")

    def print_uris(self, name: str) -> subprocess.CompletedProcess:
        debs = self._debs(name)
        if not debs:
            return subprocess.CompletedProcess([], 100, "", f"E: Unable to locate package {name}")
        newest = debs[-1]
        sha = hashlib.sha256(newest.read_bytes()).hexdigest()
        line = f"'http://deb.example/{newest.name}' {newest.name} {newest.stat().st_size} SHA256:{sha}\n"
        return subprocess.CompletedProcess([], 0, line, "")

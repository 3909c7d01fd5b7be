"""Markup stripping and the default-corpus build, on tiny synthetic reST/HTML files packed into fake .deb files."""

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from data_gen import default_corpus as dc
from data_gen.markup import Block, clean_inline, html_to_blocks, rst_to_blocks, split_documents

RST = """\
.. SPDX-License-Identifier: GPL-2.0
   a comment that continues

.. _target-label:

=====================
 The Title of a Page
=====================

:Author: Ada Lovelace

The :mod:`functools` module is for :func:`~functools.partial` and :ref:`the tutorial <tut-intro>`.
See ``lru_cache()`` and *emphasis* with **strong** text, `a link <https://x.org>`_ and :pep:`8` [#]_.
Keep f(*args, **kwargs) and 2 * 3 * 4 intact, escaped\\ text and |version|.

Section one
-----------

.. function:: cache(user_function)
   :noindex:

   Simple lightweight unbounded function cache.

   For example::

        @cache
        def factorial(n):
            return n

   .. versionadded:: 3.9

.. code-block:: python

   print("dropped")

>>> 1 + 1
2

.. note:: A note on one line.

+-----+-----+
| a   | b   |
+-----+-----+

=====  =====
col 1  col 2
=====  =====
x      y
=====  =====

- first item
  continues here
- second item

term
   its definition
   on two lines.

.. toctree::
   :maxdepth: 2

   intro
"""

EXPECTED_RST = [
    Block("The Title of a Page", True),
    Block("Author: Ada Lovelace"),
    Block(
        "The functools module is for partial and the tutorial. See lru_cache() and emphasis with strong text, "
        "a link and PEP 8. Keep f(*args, **kwargs) and 2 * 3 * 4 intact, escapedtext and version."
    ),
    Block("Section one", True),
    Block("cache(user_function)"),
    Block("Simple lightweight unbounded function cache."),
    Block("For example:"),
    Block("New in version 3.9."),
    Block("A note on one line."),
    Block("- first item continues here\n- second item"),
    Block("term\nits definition on two lines."),
]

HTML = """<?xml version="1.0" encoding="UTF-8"?><html><head><title>Skip me</title><style>p{}</style></head>
<body><div id="banner">Download the ebook</div><ul class="docnav top"><li>Prev</li></ul>
<div class="section"><h2 class="title"><a id="x"></a>6.3. The <code>apt-cache</code> Command</h2>
<div class="para">
   The <code class="command">apt-cache</code> command &amp; its   cache.</div>
<pre class="screen">$ apt-cache policy</pre><p>Second<br/>line &#8220;quoted&#8221;.</p>
<ul><li>one</li><li>two</li></ul><div class="toc">1. Contents</div><script>var x;</script></div></body></html>
"""

EXPECTED_HTML = [
    Block("6.3. The apt-cache Command", True),
    Block("The apt-cache command & its cache."),
    Block("Second"),
    Block("line \u201cquoted\u201d."),
    Block("one"),
    Block("two"),
]


def test_rst_to_blocks():
    assert rst_to_blocks(RST) == EXPECTED_RST


def test_clean_inline_roles():
    assert clean_inline(":c:func:`kmalloc` and :class:`!Foo` and `ref`__ and :rfc:`2822`") == (
        "kmalloc and Foo and ref and RFC 2822"
    )


def test_html_to_blocks():
    assert html_to_blocks(HTML) == EXPECTED_HTML


def test_split_documents_at_titles():
    blocks = [Block("A", True), Block("x" * 50), Block("B", True), Block("y" * 50), Block("C", True), Block("z")]
    assert split_documents(blocks, target_chars=40, max_chars=1000, min_chars=1) == [
        "A\n\n" + "x" * 50,
        "B\n\n" + "y" * 50,
        "C\n\nz",
    ]
    assert split_documents(blocks, target_chars=40, max_chars=1000, min_chars=10) == [
        "A\n\n" + "x" * 50,
        "B\n\n" + "y" * 50,
    ]
    assert split_documents(blocks, target_chars=1000, max_chars=60, min_chars=1) == [
        "A\n\n" + "x" * 50 + "\n\nB\n\n" + "y" * 50,
        "C\n\nz",
    ]


def _fake_deb(path: Path, files: dict[str, str]) -> str:
    """An ar archive with a data.tar.xz holding `files`, like a real .deb; returns its sha256."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo("./" + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    members = [(b"debian-binary", b"2.0\n"), (b"control.tar.xz", b"x"), (b"data.tar.xz", buf.getvalue())]
    raw = b"!<arch>\n"
    for name, data in members:
        raw += (
            name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) * 2 + b"100644".ljust(8) + str(len(data)).encode().ljust(10)
        )
        raw += b"`\n" + data + (b"\n" if len(data) % 2 else b"")
    path.write_bytes(raw)
    return hashlib.sha256(raw).hexdigest()


@pytest.fixture()
def fake_packages(tmp_path, monkeypatch):
    cache = tmp_path / "data" / ".cache" / "debs"
    cache.mkdir(parents=True)
    root = "usr/share/doc/pydoc/_sources/"
    body = "\n\n".join(f"Paragraph {i} of plain prose that is long enough to keep." for i in range(12))
    rst_files = {
        root + "b.rst.txt": f"Second\n======\n\n{body}\n",
        root + "a/x.rst.txt": f"First\n=====\n\n{body}\n",
        root + "translations/zh.rst.txt": f"Skip\n====\n\n{body}\n",
        root + "tiny.rst.txt": "Tiny\n====\n\nshort.\n",
        root + "notes.txt": body,
        "usr/share/other/c.rst.txt": body,
    }
    html_files = {"usr/share/hb/en-US/p.html": f"<html><body><h1>Page</h1><p>{body}</p></body></html>",
                  "usr/share/hb/en-US/sub/q.html": "<p>nested, skipped</p>",
                  "usr/share/hb/en-US/index.html": "<p>contents, skipped</p>"}  # fmt: skip
    rst_pkg = dc.DebPackage("pydoc", "1.0-1", "", "PSF-2.0", root, ".rst.txt", "rst", exclude=("translations/",))
    html_pkg = dc.DebPackage(
        "hb", "2:3.0", "", "GPL-2.0+", "usr/share/hb/en-US/", ".html", "html", ("index.html",), True
    )
    rst_sha = _fake_deb(cache / rst_pkg.deb_name, rst_files)
    html_sha = _fake_deb(cache / html_pkg.deb_name, html_files)
    packages = (
        dc.DebPackage(**{**rst_pkg.__dict__, "sha256": rst_sha}),
        dc.DebPackage(**{**html_pkg.__dict__, "sha256": html_sha}),
    )
    monkeypatch.setattr(dc, "PACKAGES", packages)
    monkeypatch.setattr(dc, "MIN_CHARS", 100)
    return tmp_path / "data", body


def test_build_default_corpus_from_debs(fake_packages):
    data_dir, body = fake_packages
    path = dc.build_default_corpus(data_dir)
    docs = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(d["source"], d["part"]) for d in docs] == [
        ("pydoc/a/x.rst.txt", 0),
        ("pydoc/b.rst.txt", 0),
        ("hb/p.html", 0),
    ]
    assert docs[0]["text"] == "First\n\n" + body
    assert docs[2]["text"] == "Page\n\n" + " ".join(body.split())
    manifest = json.loads((path.parent / "manifest.json").read_text())
    assert manifest["docs"] == 3 and manifest["docs_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [p["name"] for p in manifest["packages"]] == ["pydoc", "hb"]
    assert sorted(manifest["packages"][0]["files"]) == ["a/x.rst.txt", "b.rst.txt", "tiny.rst.txt"]
    assert (data_dir / ".cache/debs/hb_2%3a3.0_all.deb").exists()


def test_rebuild_is_a_no_op_and_output_is_deterministic(fake_packages, tmp_path):
    data_dir, _ = fake_packages
    path = dc.build_default_corpus(data_dir)
    stamp, content = path.stat().st_mtime_ns, path.read_bytes()
    assert dc.build_default_corpus(data_dir) == path and path.stat().st_mtime_ns == stamp
    path.unlink()
    assert dc.build_default_corpus(data_dir).read_bytes() == content


def test_wrong_deb_hash_is_refused(fake_packages, monkeypatch):
    data_dir, _ = fake_packages
    bad = dc.DebPackage(**{**dc.PACKAGES[0].__dict__, "sha256": "0" * 64})
    monkeypatch.setattr(dc, "PACKAGES", (bad,))
    with pytest.raises(dc.CorpusUnavailable, match="expected 0000"):
        dc.build_default_corpus(data_dir)


def test_missing_apt_names_the_alternatives(tmp_path, monkeypatch):
    monkeypatch.setattr(dc.shutil, "which", lambda name: None)
    with pytest.raises(dc.CorpusUnavailable) as err:
        dc.build_default_corpus(tmp_path)
    message = str(err.value)
    assert "apt-get not found" in message
    for alternative in (".txt files", "FineWeb-Edu parquet", "config.data.web=", "python3.11-doc_3.11.2-6+deb12u8"):
        assert alternative in message


def test_failed_download_names_the_alternatives(tmp_path, monkeypatch):
    monkeypatch.setattr(dc.shutil, "which", lambda name: "/usr/bin/apt-get")
    monkeypatch.setattr(dc.os, "geteuid", lambda: 1000)

    class Failed:
        returncode, stderr = 100, "E: Version '3.11.2-6+deb12u8' for 'python3.11-doc' was not found"

    monkeypatch.setattr(dc, "_apt_download", lambda pkg, cache_dir: Failed())
    with pytest.raises(dc.CorpusUnavailable, match="was not found.*Alternatives: set config.data.web"):
        dc.build_default_corpus(tmp_path)

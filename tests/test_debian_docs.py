"""Markup stripping and the Debian documentation corpus, on tiny synthetic reST/HTML files packed into fake .debs."""

import hashlib
import json

import pytest

from data_gen import debian_docs as dd
from data_gen.markup import Block, clean_inline, html_to_blocks, rst_to_blocks, split_documents
from tests.fake_debs import BODY, FakeApt, fake_deb, rst_files

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


def test_build_deb_corpus(fake_packages):
    data_dir = fake_packages
    path = dd.build_deb_corpus(data_dir)
    docs = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(d["source"], d["part"]) for d in docs] == [
        ("pydoc/a/x.rst.txt", 0),
        ("pydoc/b.rst.txt", 0),
        ("hb/p.html", 0),
    ]
    assert docs[0]["text"] == "First\n\n" + BODY
    assert docs[2]["text"] == "Page\n\n" + " ".join(BODY.split())
    manifest = json.loads((path.parent / "manifest.json").read_text())
    assert manifest["docs"] == 3 and manifest["docs_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [(p["name"], p["version"], p["pinned"]) for p in manifest["packages"]] == [
        ("pydoc", "1.0-1", True),
        ("hb", "2:3.0", True),
    ]
    assert [p["deb_sha256"] for p in manifest["packages"]] == [p.sha256 for p in dd.PACKAGES]
    assert sorted(manifest["packages"][0]["files"]) == ["a/x.rst.txt", "b.rst.txt", "tiny.rst.txt"]
    assert path.parent.name == f"debian-docs-{dd.corpus_key()}"
    assert (data_dir / ".cache/debs/hb_2%3a3.0_all.deb").exists()


def test_rebuild_is_a_no_op_and_output_is_deterministic(fake_packages):
    data_dir = fake_packages
    path = dd.build_deb_corpus(data_dir)
    stamp, content = path.stat().st_mtime_ns, path.read_bytes()
    assert dd.build_deb_corpus(data_dir) == path and path.stat().st_mtime_ns == stamp
    path.unlink()
    assert dd.build_deb_corpus(data_dir).read_bytes() == content


def test_the_control_and_copyright_files_are_read(fake_packages):
    deb = fake_packages / ".cache/debs" / dd.PACKAGES[1].deb_name
    assert dd.deb_source(deb) == ("hb-src", "2:3.0")
    assert dd.deb_copyright(deb, dd.PACKAGES[1]) == b"Copyright of hb 2:3.0\n"


def test_wrong_deb_hash_is_refused(fake_packages, monkeypatch):
    bad = dd.DebPackage(**{**dd.PACKAGES[0].__dict__, "sha256": "0" * 64})
    monkeypatch.setattr(dd, "PACKAGES", (bad,))
    with pytest.raises(dd.CorpusUnavailable, match="expected 0000"):
        dd.build_deb_corpus(fake_packages)


def test_a_pinned_version_gone_from_the_mirror_falls_back_to_the_newest_and_says_so(fake_packages, tmp_path,
                                                                                      monkeypatch):  # fmt: skip
    data_dir = fake_packages
    pinned_path = dd.build_deb_corpus(data_dir)
    for deb in (data_dir / ".cache/debs").iterdir():
        deb.unlink()
    (tmp_path / "mirror").mkdir()
    fake_deb(tmp_path / "mirror/pydoc_1.1-1_all.deb", "pydoc", "1.1-1", rst_files(first_title="Newer"))
    fake_deb(tmp_path / "mirror/hb_2%3a3.1_all.deb", "hb", "2:3.1", {})  # an epoch in the version: %3a
    pinned_path.parent.rename(tmp_path / "old")  # the pinned corpus is no longer built here
    apt = FakeApt(tmp_path / "mirror", monkeypatch)
    path = dd.build_deb_corpus(data_dir)
    assert path.parent.name != pinned_path.parent.name and "Newer" in path.read_text()
    manifest = json.loads((path.parent / "manifest.json").read_text())
    newest_sha = hashlib.sha256((tmp_path / "mirror/pydoc_1.1-1_all.deb").read_bytes()).hexdigest()
    recorded = {k: manifest["packages"][0][k] for k in ("name", "version", "pinned", "pinned_version", "deb_sha256")}
    assert recorded == {"name": "pydoc", "version": "1.1-1", "pinned": False, "pinned_version": "1.0-1",
                        "deb_sha256": newest_sha}  # fmt: skip
    assert manifest["packages"][1]["version"] == "2:3.1" and manifest["docs"] == 2
    assert apt.downloads == ["pydoc=1.1-1", "hb=2:3.1"]
    assert dd.build_deb_corpus(data_dir) == path and apt.downloads == ["pydoc=1.1-1", "hb=2:3.1"]  # cached


def test_newest_version_with_another_sha256_than_apt_lists_is_refused(fake_packages, tmp_path, monkeypatch):
    data_dir = fake_packages
    (data_dir / ".cache/debs" / dd.PACKAGES[0].deb_name).unlink()
    (tmp_path / "mirror").mkdir()
    fake_deb(tmp_path / "mirror/pydoc_1.1-1_all.deb", "pydoc", "1.1-1", rst_files())
    FakeApt(tmp_path / "mirror", monkeypatch)
    (data_dir / ".cache/debs/pydoc_1.1-1_all.deb").write_bytes(b"truncated")
    with pytest.raises(dd.CorpusUnavailable, match=r"pydoc_1.1-1_all.deb has sha256 .* \(as apt lists it\)"):
        dd.build_deb_corpus(data_dir)


def test_missing_apt_names_the_alternatives(tmp_path, monkeypatch):
    monkeypatch.setattr(dd.shutil, "which", lambda name: None)
    with pytest.raises(dd.CorpusUnavailable) as err:
        dd.build_deb_corpus(tmp_path)
    message = str(err.value)
    assert "apt-get not found" in message and "\n" not in message
    for alternative in ("config.data.web=default", ".txt files", "FineWeb-Edu parquet", "config.data.web=synthetic",
                        "python3.11-doc_3.11.2-6+deb12u8"):  # fmt: skip
        assert alternative in message


def test_no_version_on_the_mirror_names_both_failures_and_the_alternatives(tmp_path, monkeypatch):
    (tmp_path / "mirror").mkdir()
    FakeApt(tmp_path / "mirror", monkeypatch)
    with pytest.raises(dd.CorpusUnavailable) as err:
        dd.build_deb_corpus(tmp_path)
    message = str(err.value)
    assert "\n" not in message
    for part in ("Version '3.11.2-6+deb12u8' for 'python3.11-doc' was not found", "Unable to locate package",
                 "Alternatives: the shipped default corpus (config.data.web=default"):  # fmt: skip
        assert part in message

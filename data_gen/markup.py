"""Markup to plain prose: reStructuredText (Sphinx sources) and (X)HTML, as a list of title/paragraph blocks.

Decisions, applied the same way on every machine (pure functions of the input text):
- Prose is kept; code is dropped: literal blocks (after "::"), doctest blocks (">>>"), code directives, tables,
  figures, index entries, toctrees and every directive not listed in KEEP_BODY / OBJECT_DIRECTIVES. HTML <pre>,
  navigation, tables of contents and scripts are dropped.
- Inline markup keeps its text: :func:`~a.b` -> b, :ref:`title <label>` -> title, ``x`` -> x, *x* -> x,
  `text <url>`_ -> text, :pep:`8` -> PEP 8; footnote references are removed.
- Section titles become their own blocks (so long files can be split into documents at sections); underlines
  and overlines are removed. Hard-wrapped lines of one paragraph are joined with a space; list items and
  definition bodies start a new line. Runs of spaces collapse to one.
"""

from __future__ import annotations

import html.parser
import re
from dataclasses import dataclass

ADMONITIONS = {
    "note", "warning", "tip", "important", "attention", "caution", "danger", "hint", "error", "seealso",
    "impl-detail", "hlist", "glossary", "centered", "container",
}  # fmt: skip
TITLED = {"admonition", "topic", "sidebar", "rubric"}
VERSION_NOTES = {
    "versionadded": "New in version {}.",
    "versionchanged": "Changed in version {}.",
    "deprecated": "Deprecated since version {}.",
    "deprecated-removed": "Deprecated since version {}, removed in version {}.",
}
KEEP_BODY = ADMONITIONS | TITLED | set(VERSION_NOTES) | {"only"}
OBJECT_DIRECTIVES = {
    "function", "method", "class", "exception", "attribute", "data", "decorator", "decoratormethod",
    "classmethod", "staticmethod", "abstractmethod", "coroutinefunction", "coroutinemethod", "awaitablefunction",
    "awaitablemethod", "opcode", "cmdoption", "option", "envvar", "describe", "object", "pdbcommand", "2to3fixer",
    "property", "type", "macro", "member", "var", "struct", "union", "enum", "enumerator",
}  # fmt: skip
DOMAINS = ("py:", "c:", "cpp:", "rst:", "js:")

_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}$")
_DIRECTIVE = re.compile(r"^\.\.\s+([A-Za-z][\w:.+-]*)::(?:\s+(.*))?$")
_OPTION = re.compile(r"^:[\w -]+:(\s|$)")
_FIELD = re.compile(r"^:([A-Za-z][\w -]*):(\s+|$)")
_SIMPLE_TABLE = re.compile(r"^=+( +=+)+$")
_GRID_TABLE = re.compile(r"^\+[-=+]+\+$")
_BULLET = re.compile(r"^([-*+\u2022]|\d+[.)]|#\.|\(?[a-zA-Z0-9]\)|[a-z]\.)\s+")
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_TITLE_TARGET = re.compile(r"^(.*?)\s*<([^<>]*)>$", re.S)
_INLINE = re.compile(
    r"``(?P<lit>.+?)``"
    r"|:(?P<role>[A-Za-z][\w:.+-]*):`(?P<rtext>[^`]+)`"
    r"|`(?P<ltext>[^`]+)`_{0,2}"
    r"|(?<![\w*\\])\*\*(?P<strong>\S(?:.*?\S)?)\*\*(?![\w*])"
    r"|(?<![\w*\\])\*(?P<em>\S(?:[^*]*?\S)?)\*(?![\w*])"
    r"|(?P<fn>\s?\[(?:\#[\w-]*|\d+|\*)\]_)"
    r"|\|(?P<sub>\w(?:[\w .-]*\w)?)\|(?!\w)"
    r"|\\(?P<esc>[\s\S])"
)


@dataclass(frozen=True)
class Block:
    """A title or a paragraph of plain text."""

    text: str
    is_title: bool = False


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _role_text(role: str, text: str) -> str:
    m = _TITLE_TARGET.match(text)
    if m:
        return m.group(1) or m.group(2)
    text = text.lstrip("!")
    if text.startswith("~"):
        text = text[1:].rsplit(".", 1)[-1]
    if role in ("pep", "rfc"):
        return f"{role.upper()} {text}"
    return text


def _inline_sub(m: re.Match) -> str:
    g = m.groupdict()
    if g["lit"] is not None:
        return g["lit"]
    if g["rtext"] is not None:
        return _role_text(g["role"], g["rtext"])
    if g["ltext"] is not None:
        t = _TITLE_TARGET.match(g["ltext"])
        return (t.group(1) or t.group(2)) if t else g["ltext"]
    for key in ("strong", "em", "sub"):
        if g[key] is not None:
            return g[key]
    if g["fn"] is not None:
        return ""
    return "" if g["esc"].isspace() else g["esc"]


def clean_inline(text: str) -> str:
    """Replace reST inline markup by its text and collapse spaces."""
    return _SPACES.sub(" ", _INLINE.sub(_inline_sub, text)).strip()


class _Paragraphs:
    """Accumulates source lines into blocks: joins wrapped lines, keeps list items and definitions on new lines."""

    def __init__(self, inline=clean_inline):
        self.blocks: list[Block] = []
        self._lines: list[str] = []
        self._text_indent = -1
        self._inline = inline

    def add(self, line: str, indent: int) -> None:
        bullet = _BULLET.match(line)
        if self._lines and not bullet and indent <= self._text_indent:
            self._lines[-1] += " " + line
        else:
            self._lines.append(line)
        self._text_indent = indent + (bullet.end() if bullet else 0)

    def title(self) -> None:
        """The last added line was a section title."""
        if self._lines:
            last = self._lines.pop()
            self.flush()
            text = self._inline(last)
            if text:
                self.blocks.append(Block(text, is_title=True))

    def text(self, text: str) -> None:
        self.flush()
        text = self._inline(text)
        if text:
            self.blocks.append(Block(text))

    def flush(self) -> None:
        text = "\n".join(t for t in (self._inline(x) for x in self._lines) if t)
        if text:
            self.blocks.append(Block(text))
        self._lines, self._text_indent = [], -1


def _skip_block(lines: list[str], i: int, indent: int) -> int:
    """Index of the first line after lines[i] that is non-blank and indented <= indent."""
    i += 1
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
        i += 1
    return i


def _skip_simple_table(lines: list[str], i: int) -> int:
    borders, i = 1, i + 1
    while i < len(lines):
        if _SIMPLE_TABLE.match(lines[i].strip()):
            borders += 1
            if borders >= 2 and (i + 1 == len(lines) or not lines[i + 1].strip()):
                return i + 1
        i += 1
    return i


def _skip_until_blank(lines: list[str], i: int) -> int:
    while i < len(lines) and lines[i].strip():
        i += 1
    return i


def _directive(name: str, args: str, out: _Paragraphs) -> bool:
    """Emit the directive's argument text; False if the directive (and its body) is dropped."""
    base = name.lower().split(":", 1)[1] if name.lower().startswith(DOMAINS) else name.lower()
    if name.lower().startswith(DOMAINS) and base.startswith("namespace"):
        return False
    if base in VERSION_NOTES:
        versions = args.split(None, 2 if base == "deprecated-removed" else 1)
        n = 2 if base == "deprecated-removed" else 1
        if len(versions) >= n:
            out.text(VERSION_NOTES[base].format(*versions[:n]))
            rest = " ".join(versions[n:])
            if rest:
                out.text(rest)
        return True
    if base in TITLED:
        out.flush()
        if args.strip():
            out.blocks.append(Block(clean_inline(args), is_title=base != "rubric"))
        return True
    if base in ADMONITIONS or base == "only" or base in OBJECT_DIRECTIVES:
        if args.strip() and base not in ("only", "hlist", "glossary", "container"):
            out.text(args)
        return True
    return False


def rst_to_blocks(source: str) -> list[Block]:
    """Prose blocks of a reStructuredText (Sphinx) source."""
    lines = [ln.rstrip() for ln in source.expandtabs(8).splitlines()]
    out = _Paragraphs()
    i = 0
    while i < len(lines):
        raw = lines[i]
        line, ind = raw.strip(), _indent(raw)
        if not line:
            out.flush()
            i += 1
        elif line.startswith("..") and (line == ".." or line[2] in " \t"):
            m = _DIRECTIVE.match(line)
            if m and _directive(m.group(1), m.group(2) or "", out):
                i += 1
                while i < len(lines) and lines[i].strip() and _OPTION.match(lines[i].strip()):
                    i += 1
            else:
                out.flush()
                i = _skip_block(lines, i, ind)
        elif _ADORNMENT.match(line) and not _SIMPLE_TABLE.match(line):
            out.title()
            i += 1
        elif _SIMPLE_TABLE.match(line):
            out.flush()
            i = _skip_simple_table(lines, i)
        elif _GRID_TABLE.match(line) or line.startswith(">>>"):
            out.flush()
            i = _skip_until_blank(lines, i)
        elif line.endswith("::"):
            text = line[:-2].rstrip() if line.endswith(" ::") or line == "::" else line[:-1]
            if text:
                out.add(text, ind)
            out.flush()
            i = _skip_block(lines, i, ind)
        else:
            if line.startswith("| "):
                line = line[2:]
            line = _FIELD.sub(lambda m: m.group(1) + ": ", line)
            out.add(line, ind)
            i += 1
    out.flush()
    return out.blocks


HTML_BLOCK_TAGS = {
    "p", "div", "li", "dt", "dd", "tr", "td", "th", "table", "ul", "ol", "dl", "blockquote", "section", "article",
    "br", "hr", "figure", "caption",
}  # fmt: skip
HTML_SKIP_TAGS = {"script", "style", "pre", "head", "nav", "noscript", "svg", "img", "object", "template"}
HTML_SKIP_CLASSES = {"docnav", "toc", "navheader", "navfooter", "indexterm", "mediaobject"}
HTML_SKIP_IDS = {"banner", "title"}
HTML_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _HTMLText(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out = _Paragraphs(inline=lambda s: _SPACES.sub(" ", s).strip())
        self._stack: list[tuple[str, bool]] = []
        self._buf: list[str] = []
        self._heading = False

    def _skipping(self) -> bool:
        return bool(self._stack) and self._stack[-1][1]

    def _break(self) -> None:
        text = " ".join("".join(self._buf).split())
        self._buf = []
        if not text:
            return
        if self._heading:
            self.out.flush()
            self.out.blocks.append(Block(text, is_title=True))
        else:
            self.out.text(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        skip = (
            self._skipping()
            or tag in HTML_SKIP_TAGS
            or bool(HTML_SKIP_CLASSES & set((a.get("class") or "").split()))
            or a.get("id") in HTML_SKIP_IDS
        )
        if tag in HTML_BLOCK_TAGS or re.fullmatch(r"h[1-6]", tag):
            if not self._skipping():
                self._break()
            if re.fullmatch(r"h[1-6]", tag):
                self._heading = not skip
        if tag not in HTML_VOID:
            self._stack.append((tag, skip))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in HTML_BLOCK_TAGS and not self._skipping():
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if not any(t == tag for t, _ in self._stack):
            return
        while self._stack:
            t, skip = self._stack.pop()
            if t == tag:
                break
        if (tag in HTML_BLOCK_TAGS or re.fullmatch(r"h[1-6]", tag)) and not skip:
            self._break()
            if re.fullmatch(r"h[1-6]", tag):
                self._heading = False

    def handle_data(self, data: str) -> None:
        if not self._skipping():
            self._buf.append(data)


def html_to_blocks(source: str) -> list[Block]:
    """Prose blocks of an HTML page (headings become titles; code, navigation and scripts are dropped)."""
    parser = _HTMLText()
    parser.feed(source)
    parser.close()
    parser._break()
    parser.out.flush()
    return parser.out.blocks


def split_documents(blocks: list[Block], target_chars: int, max_chars: int, min_chars: int) -> list[str]:
    """Group blocks into documents: a new document starts at a title once the current one has >= target_chars,
    or at any block once it has >= max_chars. Documents shorter than min_chars are dropped."""
    docs: list[list[str]] = [[]]
    size = 0
    for b in blocks:
        if size and ((b.is_title and size >= target_chars) or size >= max_chars):
            docs.append([])
            size = 0
        docs[-1].append(b.text)
        size += len(b.text) + 2
    texts = ["\n\n".join(d) for d in docs]
    return [t for t in texts if len(t) >= min_chars]

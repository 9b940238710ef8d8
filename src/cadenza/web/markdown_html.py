"""Markdown made safe HTML for the UI (the orchestration plan tab): CommonMark with tables,
no raw HTML (it is shown as text), no images (they would load from elsewhere), and links only
to http(s) or to this app's relative URLs; anything else is left as text."""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markupsafe import Markup

# A scheme is letters then ":" before any "/", "?" or "#": "javascript:x", "JaVaScRiPt:x" and
# "data:..." have one; "/runs/x", "page#a:b" and "../x" do not. Browsers drop tabs and newlines
# inside URLs and ignore leading spaces, so those are refused as well as control characters.
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_SAFE_SCHEMES = {"http", "https"}
_CONTROL = re.compile(r"[\x00-\x20\x7f\\]")


def _link_ok(url: str) -> bool:
    if _CONTROL.search(url) or url.startswith("//"):
        return False
    scheme = _SCHEME.match(url)
    return scheme is None or scheme.group(1).lower() in _SAFE_SCHEMES


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table")
    md.disable("image")
    md.validateLink = _link_ok  # type: ignore[method-assign]
    return md


_MD = _parser()


def markdown_html(text: str, *, top: int = 2) -> Markup:
    """``text`` (Markdown) as HTML that can be put in a page as it is. Its headings start at
    ``<h{top}>`` (a ``#`` heading is an ``h2`` by default): the page has its own ``h1``."""
    tokens = _MD.parse(text)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1:]) + top - 1)}"
    return Markup(_MD.renderer.render(tokens, _MD.options, {}))

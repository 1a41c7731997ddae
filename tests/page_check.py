"""What a published page must hold, read with the standard library's html.parser (no browser): every image
embedded as a data: URI that decodes, as many tables as its markdown has, and nothing loaded from elsewhere."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

# The delimiter row under a GitHub table's header: | --- | :---: | ... |
_DELIMITER_ROW = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
# Attributes that make a browser fetch something as the page loads (a link's href does not).
_LOADS = {("img", "src"), ("script", "src"), ("link", "href"), ("iframe", "src"), ("source", "src"),
          ("video", "src"), ("audio", "src"), ("embed", "src"), ("object", "data"), ("image", "href")}


@dataclass
class PageParts(HTMLParser):
    images: list[str] = field(default_factory=list)
    tables: int = 0
    details: int = 0
    scripts: int = 0
    loads: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tables += tag == "table"
        self.details += tag == "details"
        self.scripts += tag == "script"
        for name, value in attrs:
            if (tag, name) == ("img", "src"):
                self.images.append(value or "")
            if (tag, name) in _LOADS and not (value or "").startswith("data:"):
                self.loads.append(f"<{tag} {name}={value}>")
            if name == "style" and "url(" in (value or ""):
                self.loads.append(f"<{tag} style={value}>")


def parse_page(text: str) -> PageParts:
    parts = PageParts()
    parts.feed(text)
    parts.close()
    return parts


def decoded(src: str) -> bytes:
    """The bytes of a base64 data: URI (raises ValueError on anything else)."""
    head, _, data = src.partition(",")
    if not head.startswith("data:") or not head.endswith(";base64"):
        raise ValueError(f"not a base64 data: URI: {src[:40]}")
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error as e:
        raise ValueError(str(e)) from None


def markdown_tables(markdown: str) -> int:
    return sum(bool(_DELIMITER_ROW.match(line)) for line in markdown.splitlines())


def markdown_images(markdown: str) -> int:
    return len(_MARKDOWN_IMAGE.findall(markdown))


def check_page(page: str, markdown: str) -> PageParts:
    """Assert that `page` is `markdown`'s self-contained page: every image a PNG in a data: URI that
    decodes, one per image of the markdown; as many tables; no load from any URL; no <style> url()."""
    parts = parse_page(page)
    assert parts.loads == [], parts.loads
    assert len(parts.images) == markdown_images(markdown), (len(parts.images), markdown_images(markdown))
    for src in parts.images:
        assert decoded(src)[:8] == b"\x89PNG\r\n\x1a\n", src[:60]
    assert parts.tables == markdown_tables(markdown), (parts.tables, markdown_tables(markdown))
    assert "url(" not in page and "@import" not in page
    return parts

"""A markdown report as one self-contained HTML page that anyone can open or publish as it is.

Every report effbench writes as markdown (`report`, `compare --out`, `history`) is also written as a page
beside it: the markdown through markdown-it-py (CommonMark with GitHub's tables; raw HTML kept where it is a tag
a report writes on purpose, so that `<details>` blocks fold, and shown as text otherwise), each image the markdown
links embedded as a data: URI (a page that is mailed, attached to a CI job or opened from an artifact has no
directory beside it), a link to another markdown report sent to its page where that is written, GitHub's
`> [!NOTE]` alerts styled, and every table sortable by a click on its header through a small inline script. The
page loads nothing from anywhere: no external script, style sheet, font or image, so it reads the same offline
and under a strict content policy.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token

from bench_lib.atomic import atomic_write_text

__all__ = ["page_path", "render_page", "write_page"]

_ALERT = re.compile(r"^\[!(NOTE|TIP|IMPORTANT|WARNING|CAUTION)\]\s*")
_TAG = re.compile(r"</?([A-Za-z][\w-]*)([^>]*)>")
_ALLOWED_TAGS = {"details", "summary", "br", "b", "i", "em", "strong", "code", "sub", "sup", "kbd", "p", "span"}
_ACTIVE_ATTRIBUTE = re.compile(r"\b(on\w+|src|href|style|srcset|data|action|formaction)\s*=", re.IGNORECASE)

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;
line-height:1.45;color:#1f2328}
h1,h2{border-bottom:1px solid #d8dee4;padding-bottom:.2em}
.table{overflow-x:auto;margin:.6em 0 1em}
table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f6;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tr:nth-child(even) td{background:#fafbfc}
img{max-width:100%;height:auto}
code{background:#f3f4f6;padding:0 .25em;border-radius:3px;font-size:90%}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto}pre code{background:none;padding:0}
blockquote{margin:.6em 0;padding:.2em 1em;border-left:4px solid #d0d7de;color:#3d444d}
.alert-note{border-color:#0969da}.alert-tip{border-color:#1a7f37}.alert-important{border-color:#8250df}
.alert-warning{border-color:#9a6700;background:#fff8c5}.alert-caution{border-color:#cf222e;background:#ffebe9}
.alert-title{display:block;font-weight:600}
details{margin:.6em 0}summary{cursor:pointer;font-weight:600}
"""

# Click a header to sort by its column, again to reverse; cells that start with a number sort as numbers
# (a mark such as "~" or a unit after the number does not stop it), others as text.
_SORT_SCRIPT = """
document.querySelectorAll("table").forEach(function (table) {
  var head = table.tHead, body = table.tBodies[0];
  if (!head || !body) return;
  var key = function (cell) {
    var text = cell.textContent.trim(), m = text.match(/^[^0-9.+-]{0,2}([-+]?[0-9]*\\.?[0-9]+(?:e[-+]?[0-9]+)?)/i);
    return m ? [0, parseFloat(m[1]), text] : [1, 0, text];
  };
  Array.prototype.forEach.call(head.rows[0].cells, function (th, col) {
    th.addEventListener("click", function () {
      var up = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(head.rows[0].cells, function (o) { o.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a.cells[col]), y = key(b.cells[col]);
        var d = x[0] - y[0] || (x[0] === 0 ? x[1] - y[1] : x[2].localeCompare(y[2], undefined, {numeric: true}));
        return up ? d : -d;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def _local_file(src: str, base: Path) -> Path | None:
    """The file a relative link points at under `base`, or None for a URL, an absolute path or a missing file."""
    parts = urlsplit(src)
    if parts.scheme or parts.netloc or not parts.path or parts.path.startswith("/"):
        return None
    path = base / unquote(parts.path)
    return path if path.is_file() else None


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _embed_images(tokens: list[Token], base: Path) -> None:
    """Every image becomes a data: URI of the file it names; one that names no local file (a URL, a missing
    plot) becomes a link to it, so that the page never loads anything from elsewhere."""
    for token in tokens:
        if not token.children:
            continue
        children: list[Token] = []
        for child in token.children:
            src = str(child.attrGet("src") or "") if child.type == "image" else ""
            local = _local_file(src, base) if src else None
            if child.type != "image" or local is not None:
                if local is not None:
                    child.attrSet("src", _data_uri(local))
                children.append(child)
                continue
            children += [Token("link_open", "a", 1, attrs={"href": src}),
                         Token("text", "", 0, content=f"[image not embedded: {child.content or src}]"),
                         Token("link_close", "a", -1)]
        token.children = children


def _links_to_pages(tokens: list[Token], base: Path) -> None:
    """A link to another markdown report whose page is written beside it goes to the page."""
    for token in tokens:
        for child in token.children or []:
            href = str(child.attrGet("href") or "") if child.type == "link_open" else ""
            local = _local_file(href, base) if href.endswith(".md") else None
            if local is not None and page_path(local).is_file():
                child.attrSet("href", href[: -len(local.name)] + page_path(local).name)


def _tags_allowed(raw: str) -> bool:
    """Whether raw HTML holds only the tags a report writes on purpose, without attributes that load, link or
    run anything."""
    tags = _TAG.findall(raw)
    return bool(tags) and all(name.lower() in _ALLOWED_TAGS and not _ACTIVE_ATTRIBUTE.search(attrs)
                              for name, attrs in tags)


def _raw_html(tokens: list[Token]) -> None:
    """Raw HTML passes only where `_tags_allowed` (`<details>`, `<summary>`, `<br>`...); any other is shown as
    the text it is: an error message that quotes `<module>`, a user's text, never a tag or a script."""
    for token in tokens:
        if token.type == "html_block" and not _tags_allowed(token.content):
            token.content = f"<pre>{html.escape(token.content)}</pre>\n"
        for child in token.children or []:
            if child.type == "html_inline" and not _tags_allowed(child.content):
                child.type = "text"


def _alerts(tokens: list[Token]) -> None:
    """GitHub's `> [!WARNING]` alerts: the blockquote gets a class and a title in place of the marker."""
    for i, token in enumerate(tokens[:-2]):
        if token.type != "blockquote_open" or tokens[i + 1].type != "paragraph_open":
            continue
        inline = tokens[i + 2]
        match = _ALERT.match(inline.content)
        if not match or not inline.children or inline.children[0].type != "text":
            continue
        kind = match.group(1)
        token.attrSet("class", f"alert alert-{kind.lower()}")
        first = inline.children[0]
        first.content = _ALERT.sub("", first.content)
        rest = inline.children[1:]
        if not first.content and rest and rest[0].type == "softbreak":
            rest = rest[1:]
        title = Token("html_inline", "", 0, content=f'<span class="alert-title">{kind.title()}</span>')
        inline.children = [title, *([first] if first.content else []), *rest]


def _wrap_tables(rendered: str) -> str:
    """Wide tables scroll inside their own box instead of widening the page."""
    return rendered.replace("<table>", '<div class="table"><table>').replace("</table>", "</table></div>")


def _title(tokens: list[Token], default: str) -> str:
    for i, token in enumerate(tokens[:-1]):
        if token.type == "heading_open" and token.tag == "h1":
            return tokens[i + 1].content
    return default


def render_page(markdown: str, base: Path, title: str = "effbench report") -> str:
    """The markdown as one HTML page; relative image paths are read from `base`, the markdown's directory.
    `title`: the page's title where the markdown has no level-1 heading."""
    md = _parser()
    tokens = md.parse(markdown)
    _raw_html(tokens)
    _embed_images(tokens, base)
    _links_to_pages(tokens, base)
    _alerts(tokens)
    body = _wrap_tables(md.renderer.render(tokens, md.options, {}))
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(_title(tokens, title))}</title><style>{_CSS}</style></head>\n"
            f"<body>\n{body}<script>{_SORT_SCRIPT}</script>\n</body></html>\n")


def page_path(markdown_path: Path) -> Path:
    """Where the page of a markdown file goes: `index.html` beside a README.md (what a web server or a
    browser opens for the directory), `NAME.html` beside any other `NAME.md`, `FILE.html` beside any other file."""
    if markdown_path.name == "README.md":
        return markdown_path.with_name("index.html")
    stem = markdown_path.stem if markdown_path.suffix == ".md" else markdown_path.name
    return markdown_path.with_name(stem + ".html")


def write_page(markdown_path: Path, title: str = "effbench report") -> Path:
    """Render a markdown file that is already written (with its images beside it) as its page; returns the
    page's path. Written atomically, so a published page is the old one or the new one, never half."""
    out = page_path(markdown_path)
    atomic_write_text(out, render_page(markdown_path.read_text(), markdown_path.parent, title))
    return out

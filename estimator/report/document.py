"""A small document model rendered twice: to one self-contained HTML page and to Markdown.

Reports are built once as a list of blocks (headings, paragraphs, tables, figures, folded
details), so the HTML page and its Markdown twin cannot drift apart. All text is escaped
at render time: claims quote news sources, and a quote is data, never markup. The page
loads nothing: a Content-Security-Policy allows only inline styles and ``data:`` images, so
any external load would be refused and show as a console error.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "CSP", "Banner", "Block", "Bullets", "Details", "Figure", "Fold", "Heading", "Headline", "Link", "Paragraph", "Table",
    "linkify", "render_html", "render_md",
]

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


@dataclass(frozen=True)
class Link:
    """A hyperlink; only http(s) targets become links, anything else stays text."""

    text: str
    href: str


@dataclass(frozen=True)
class Fold:
    """A table cell folded to its summary (HTML ``<details>``, no script): long sources and
    quotes stay out of the way until asked for. In Markdown, the summary then the parts."""

    summary: str
    parts: tuple[str | Link, ...]
    """Text (newlines kept) and links, in reading order."""


Cell = str | Link | Fold

_URL = re.compile(r"https?://[^\s;,'\"<>]+[^\s;,'\"<>.)]")


def linkify(text: str) -> tuple[str | Link, ...]:
    """``text`` with its http(s) addresses as links (sources name several outlets, each with its address)."""
    out: list[str | Link] = []
    pos = 0
    for m in _URL.finditer(text):
        out += [text[pos : m.start()], Link(m.group(), m.group())]
        pos = m.end()
    return tuple(p for p in [*out, text[pos:]] if p)


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass(frozen=True)
class Paragraph:
    text: str
    css: str = ""
    """CSS class in HTML (``note``, ``summary``)."""


@dataclass(frozen=True)
class Banner:
    """A warning strip (the synthetic-data label)."""

    text: str


@dataclass(frozen=True)
class Table:
    head: tuple[str, ...]
    rows: Sequence[tuple[Cell, ...]]
    numeric: frozenset[int] = frozenset()
    """Column indexes aligned right."""
    css: str = ""


@dataclass(frozen=True)
class Figure:
    name: str
    """File stem of the PNG written beside the Markdown twin; ``id`` of the image in HTML."""
    caption: str
    png: bytes


@dataclass(frozen=True)
class Details:
    """Folded content: preformatted text, or a table."""

    summary: str
    text: str = ""
    table: Table | None = None


@dataclass(frozen=True)
class Bullets:
    items: Sequence[str] = field(default_factory=list)


@dataclass(frozen=True)
class Headline:
    """A short boxed account: a title, a lead sentence, counts, tagged one-sentence items and a
    closing note. A count's or item's tag that is a verdict word is shown in its colour."""

    title: str
    lead: str
    counts: tuple[tuple[str, int], ...] = ()
    """``(label, n)`` pairs, shown as "n label"."""
    items: tuple[tuple[str, str], ...] = ()
    """``(tag, sentence)`` pairs."""
    note: str = ""


Block = Heading | Paragraph | Banner | Table | Figure | Details | Bullets | Headline

_VERDICTS = ("consistent", "contradicted", "inconclusive")

# Tables of more than three columns become one card per row on a narrow screen (a phone):
# each cell then carries its column's name (``data-label``), so nothing needs a script and
# nothing runs off the page. Long words (addresses) may break anywhere for the same reason.
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0 auto;max-width:1180px;
padding:0 1.2em 3em;color:#212121;line-height:1.45;overflow-wrap:break-word}
h1{font-size:1.6em;margin-top:.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
h3{margin:1.4em 0 .5em}h4{margin:1em 0 .3em}
.banner{background:#b71c1c;color:#fff;font-weight:bold;padding:.5em 1em;margin:.6em 0;border-radius:4px;letter-spacing:.03em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}
th,td{border:1px solid #cfd8dc;padding:.25em .5em;vertical-align:top;text-align:left}
th{background:#eceff1}td.num{text-align:right;white-space:nowrap}
tr:nth-child(even) td{background:#fafafa}
.verdict-consistent{color:#2e7d32;font-weight:bold}.verdict-contradicted{color:#c62828;font-weight:bold}
.verdict-inconclusive{color:#616161;font-weight:bold}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
pre{background:#f5f5f5;padding:.6em;overflow:auto;font-size:.8em;max-height:30em;white-space:pre-wrap}
.note{color:#555;font-size:.9em}.summary{font-size:1.02em}
details{margin:.4em 0}summary{cursor:pointer;color:#37474f}
nav a{margin-right:1em;display:inline-block}.scroll{overflow-x:auto}
details.fold{margin:0}details.fold summary{font-size:.95em}details.fold div{margin-top:.3em;font-size:.95em;overflow-wrap:anywhere}
table.verdicts{width:100%}
.headline{border-left:4px solid #90a4ae;padding:.2em 0 .2em 1em;margin:.8em 0 1.2em}
.headline h4{margin:.2em 0}.headline p{margin:.3em 0}.headline ul{margin:.3em 0;padding-left:1.3em}
.counts span{margin-right:.9em;white-space:nowrap}
@media (max-width:700px){
table.stack,table.stack tbody,table.stack tr,table.stack td{display:block;width:auto}
table.stack thead{display:none}
table.stack tr{border:1px solid #cfd8dc;margin:.6em 0;padding:.2em 0}
table.stack td{border:0;border-bottom:1px solid #eceff1;display:grid;grid-template-columns:6.5em minmax(0,1fr);column-gap:.6em}
table.stack td:last-child{border-bottom:0}table.stack td.num{text-align:left;white-space:normal}
table.stack td::before{content:attr(data-label);font-size:.8em;line-height:1.8;color:#607d8b}
}
"""


def _link(link: Link) -> str:
    if re.match(r"^https?://", link.href, flags=re.IGNORECASE):
        return f'<a href="{html.escape(link.href)}" rel="noopener noreferrer">{html.escape(link.text)}</a>'
    return html.escape(f"{link.text} ({link.href})" if link.href and link.href != link.text else link.text)


def _text_html(s: str) -> str:
    return html.escape(s).replace("\n", "<br>")


def _tag_html(tag: str, text: str) -> str:
    cls = f"verdict-{tag}" if tag in _VERDICTS else "tag"
    return f'<span class="{cls}">{_text_html(text)}</span>'


def _cell_html(c: Cell) -> str:
    if isinstance(c, Link):
        return _link(c)
    if isinstance(c, Fold):
        inner = "".join(_link(p) if isinstance(p, Link) else _text_html(p) for p in c.parts)
        return f'<details class="fold"><summary>{html.escape(c.summary)}</summary><div>{inner}</div></details>'
    if c in _VERDICTS:
        return _tag_html(c, c)
    return _text_html(c)


def _table_html(t: Table) -> str:
    labels = [html.escape(h) for h in t.head]
    head = "".join(f"<th>{h}</th>" for h in labels)
    stack = len(t.head) > 3
    # In a stacked cell the label and the value are two grid columns: the value is one element.
    wrap = (lambda v: f"<div>{v}</div>") if stack else (lambda v: v)
    rows = "".join(
        "<tr>" + "".join(
            f'<td data-label="{labels[i]}"{" class=num" if i in t.numeric else ""}>{wrap(_cell_html(c))}</td>' for i, c in enumerate(r)
        ) + "</tr>"
        for r in t.rows
    )
    classes = " ".join(x for x in (t.css, "stack" if stack else "") if x)
    css = f' class="{html.escape(classes)}"' if classes else ""
    return f'<div class="scroll"><table{css}><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'


def _headline_html(b: Headline) -> str:
    e = html.escape
    counts = "".join(_tag_html(label, f"{n} {label}") for label, n in b.counts)
    items = "".join(f"<li>{_tag_html(tag, tag)}: {e(text)}</li>" for tag, text in b.items)
    return (
        f'<section class="headline"><h4>{e(b.title)}</h4><p>{e(b.lead)}</p>'
        + (f'<p class="counts">{counts}</p>' if counts else "")
        + (f"<ul>{items}</ul>" if items else "")
        + (f'<p class="note">{e(b.note)}</p>' if b.note else "")
        + "</section>"
    )


def _block_html(b: Block) -> str:
    e = html.escape
    if isinstance(b, Heading):
        anchor = f' id="{e(b.anchor)}"' if b.anchor else ""
        return f"<h{b.level}{anchor}>{e(b.text)}</h{b.level}>"
    if isinstance(b, Paragraph):
        return f'<p class="{e(b.css)}">{e(b.text)}</p>' if b.css else f"<p>{e(b.text)}</p>"
    if isinstance(b, Banner):
        return f'<div class="banner" role="alert">{e(b.text)}</div>'
    if isinstance(b, Table):
        return _table_html(b)
    if isinstance(b, Headline):
        return _headline_html(b)
    if isinstance(b, Figure):
        data = base64.b64encode(b.png).decode("ascii")
        return (
            f'<figure><img id="{e(b.name)}" alt="{e(b.caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{e(b.caption)}</figcaption></figure>"
        )
    if isinstance(b, Details):
        inner = _table_html(b.table) if b.table else f"<pre>{e(b.text)}</pre>"
        return f"<details><summary>{e(b.summary)}</summary>{inner}</details>"
    return "<ul>" + "".join(f"<li>{e(i)}</li>" for i in b.items) + "</ul>"


def render_html(title: str, blocks: Sequence[Block]) -> str:
    """One self-contained page: inline CSS, images as data URIs, no script, no external load."""
    toc = "".join(
        f'<a href="#{html.escape(b.anchor)}">{html.escape(b.text)}</a>' for b in blocks if isinstance(b, Heading) and b.level == 2 and b.anchor
    )
    nav = f"<nav>{toc}</nav>"
    body = "\n".join(_block_html(b) + (nav if isinstance(b, Heading) and b.level == 1 else "") for b in blocks)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )


def _md_text(s: str) -> str:
    """Text safe inside Markdown: no raw HTML, no table breaks."""
    return html.escape(s, quote=False).replace("|", "\\|").replace("\n", " ")


def _link_md(c: Link) -> str:
    if re.match(r"^https?://", c.href, flags=re.IGNORECASE):
        return f"[{_md_text(c.text)}](<{c.href.replace('>', '%3E').replace(' ', '%20')}>)"
    return _md_text(c.text)


def _cell_md(c: Cell) -> str:
    if isinstance(c, Link):
        return _link_md(c)
    if isinstance(c, Fold):
        return "".join(_link_md(p) if isinstance(p, Link) else _md_text(p) for p in c.parts)
    return _md_text(c)


def _table_md(t: Table) -> list[str]:
    return [
        "| " + " | ".join(_md_text(h) for h in t.head) + " |",
        "|" + "".join("---:|" if i in t.numeric else "---|" for i in range(len(t.head))),
        *("| " + " | ".join(_cell_md(c) for c in r) + " |" for r in t.rows),
        "",
    ]


def _headline_md(b: Headline) -> list[str]:
    out = [f"#### {_md_text(b.title)}", "", _md_text(b.lead), ""]
    if b.counts:
        out += [" · ".join(f"{n} {_md_text(label)}" for label, n in b.counts), ""]
    if b.items:
        out += [*(f"- **{_md_text(tag)}**: {_md_text(text)}" for tag, text in b.items), ""]
    return out + ([f"*{_md_text(b.note)}*", ""] if b.note else [])


def render_md(blocks: Sequence[Block], figure_path: dict[str, str]) -> str:
    """Markdown twin; figures link to the PNG files named in ``figure_path`` (relative)."""
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out += [f"{'#' * b.level} {_md_text(b.text)}", ""]
        elif isinstance(b, Paragraph):
            out += [_md_text(b.text), ""]
        elif isinstance(b, Banner):
            out += [f"> **{_md_text(b.text)}**", ""]
        elif isinstance(b, Table):
            out += _table_md(b)
        elif isinstance(b, Headline):
            out += _headline_md(b)
        elif isinstance(b, Figure):
            out += [f"![{_md_text(b.caption)}]({figure_path[b.name]})", "", f"*{_md_text(b.caption)}*", ""]
        elif isinstance(b, Details):
            out += [f"**{_md_text(b.summary)}**", ""]
            out += _table_md(b.table) if b.table else ["```", b.text.replace("```", "'''"), "```", ""]
        else:
            out += [*(f"- {_md_text(i)}" for i in b.items), ""]
    return "\n".join(out)

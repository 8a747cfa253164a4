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
    "CSP", "Banner", "Block", "Bullets", "Details", "Figure", "Heading", "Link", "Paragraph", "Table", "render_html", "render_md",
]

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


@dataclass(frozen=True)
class Link:
    """A hyperlink; only http(s) targets become links, anything else stays text."""

    text: str
    href: str


Cell = str | Link


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


Block = Heading | Paragraph | Banner | Table | Figure | Details | Bullets

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0 auto;max-width:1180px;
padding:0 1.2em 3em;color:#212121;line-height:1.45}
h1{font-size:1.6em;margin-top:.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
.banner{background:#b71c1c;color:#fff;font-weight:bold;padding:.5em 1em;margin:.6em 0;border-radius:4px;letter-spacing:.03em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}
th,td{border:1px solid #cfd8dc;padding:.25em .5em;vertical-align:top;text-align:left}
th{background:#eceff1}td.num{text-align:right;white-space:nowrap}
tr:nth-child(even) td{background:#fafafa}
.verdict-consistent{color:#2e7d32;font-weight:bold}.verdict-contradicted{color:#c62828;font-weight:bold}
.verdict-inconclusive{color:#616161;font-weight:bold}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
pre{background:#f5f5f5;padding:.6em;overflow:auto;font-size:.8em;max-height:30em}
.note{color:#555;font-size:.9em}.summary{font-size:1.02em}
details{margin:.4em 0}summary{cursor:pointer;color:#37474f}
nav a{margin-right:1em}.scroll{overflow-x:auto}
table.verdicts td:last-child{font-style:italic;min-width:14em}table.verdicts td{font-size:.95em}
"""


def _link(link: Link) -> str:
    if re.match(r"^https?://", link.href, flags=re.IGNORECASE):
        return f'<a href="{html.escape(link.href)}" rel="noopener noreferrer">{html.escape(link.text)}</a>'
    return html.escape(f"{link.text} ({link.href})" if link.href and link.href != link.text else link.text)


def _cell_html(c: Cell) -> str:
    if isinstance(c, Link):
        return _link(c)
    if c in ("consistent", "contradicted", "inconclusive"):
        return f'<span class="verdict-{c}">{c}</span>'
    return html.escape(c).replace("\n", "<br>")


def _table_html(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.head)
    rows = "".join(
        "<tr>" + "".join(f'<td{" class=num" if i in t.numeric else ""}>{_cell_html(c)}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in t.rows
    )
    css = f' class="{html.escape(t.css)}"' if t.css else ""
    return f'<div class="scroll"><table{css}><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'


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


def _cell_md(c: Cell) -> str:
    if isinstance(c, Link):
        if re.match(r"^https?://", c.href, flags=re.IGNORECASE):
            return f"[{_md_text(c.text)}](<{c.href.replace('>', '%3E').replace(' ', '%20')}>)"
        return _md_text(c.text)
    return _md_text(c)


def _table_md(t: Table) -> list[str]:
    return [
        "| " + " | ".join(_md_text(h) for h in t.head) + " |",
        "|" + "".join("---:|" if i in t.numeric else "---|" for i in range(len(t.head))),
        *("| " + " | ".join(_cell_md(c) for c in r) + " |" for r in t.rows),
        "",
    ]


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
        elif isinstance(b, Figure):
            out += [f"![{_md_text(b.caption)}]({figure_path[b.name]})", "", f"*{_md_text(b.caption)}*", ""]
        elif isinstance(b, Details):
            out += [f"**{_md_text(b.summary)}**", ""]
            out += _table_md(b.table) if b.table else ["```", b.text.replace("```", "'''"), "```", ""]
        else:
            out += [*(f"- {_md_text(i)}" for i in b.items), ""]
    return "\n".join(out)

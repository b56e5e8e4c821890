"""A report's text as a few kinds of blocks, rendered alike to Markdown (figures linked
relatively) and to one self-contained HTML page (figures embedded as base64 PNG, so the
page alone can be mailed or opened from S3), so the two never say different things."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote


@dataclass(frozen=True)
class Link:
    """Text linking to a file, by its path relative to the report folder."""

    text: str
    target: str


@dataclass(frozen=True)
class Code:
    """Literal text: file names, digests, values."""

    text: str


Inline = str | Link | Code
Cell = Inline | tuple[Inline, ...]


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    parts: tuple[Inline, ...]


@dataclass(frozen=True)
class Bullets:
    items: tuple[tuple[Inline, ...], ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True)
class Figure:
    """A PNG in the report folder, with what it shows."""

    path: str
    caption: str


Block = Heading | Paragraph | Bullets | Table | Figure

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 80rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f3f3f3; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9rem; }
code { background: #f3f3f3; padding: 0 0.2rem; font-size: 0.9em; }
"""


def to_markdown(title: str, blocks: Sequence[Block]) -> str:
    """The report as Markdown; figures and files linked relative to the report folder."""
    out = [f"# {_md_text(title)}"]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {_md_text(block.text)}")
        elif isinstance(block, Paragraph):
            out.append(_md_inlines(block.parts))
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {_md_inlines(item)}" for item in block.items))
        elif isinstance(block, Table):
            lines = [
                _md_row(tuple(_md_text(name) for name in block.header)),
                _md_row(("---",) * len(block.header)),
                *(_md_row(tuple(_md_cell(cell) for cell in row)) for row in block.rows),
            ]
            out.append("\n".join(lines))
        else:
            name = _md_text(Path(block.path).name)
            out.append(f"![{name}]({_href(block.path)})\n\n*{_md_text(block.caption)}*")
    return "\n\n".join(out) + "\n"


def to_html(title: str, blocks: Sequence[Block], folder: Path) -> str:
    """The report as one HTML page, its figures read from `folder` and embedded."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_html_inlines(block.parts)}</p>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{_html_inlines(item)}</li>" for item in block.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            header = "".join(f"<th>{html.escape(name)}</th>" for name in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_html_cell(cell)}</td>" for cell in row) + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            data = base64.b64encode((folder / block.path).read_bytes()).decode("ascii")
            caption = html.escape(block.caption)
            body.append(
                f'<figure><a href="{html.escape(_href(block.path))}">'
                f'<img src="data:image/png;base64,{data}" alt="{caption}"></a>'
                f"<figcaption>{caption}</figcaption></figure>"
            )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _href(target: str) -> str:
    """A relative path as a URL path: spaces and the like percent-encoded, slashes kept."""
    return quote(target)


def _md_text(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


def _md_inline(part: Inline) -> str:
    if isinstance(part, Link):
        return f"[{_md_text(part.text)}]({_href(part.target)})"
    if isinstance(part, Code):
        return f"`{part.text}`"
    return _md_text(part)


def _md_inlines(parts: tuple[Inline, ...]) -> str:
    return "".join(_md_inline(part) for part in parts)


def _md_cell(cell: Cell) -> str:
    return _md_inlines(cell) if isinstance(cell, tuple) else _md_inline(cell)


def _md_row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(cells) + " |"


def _html_inline(part: Inline) -> str:
    if isinstance(part, Link):
        return f'<a href="{html.escape(_href(part.target))}">{html.escape(part.text)}</a>'
    if isinstance(part, Code):
        return f"<code>{html.escape(part.text)}</code>"
    return html.escape(part)


def _html_inlines(parts: tuple[Inline, ...]) -> str:
    return "".join(_html_inline(part) for part in parts)


def _html_cell(cell: Cell) -> str:
    return _html_inlines(cell) if isinstance(cell, tuple) else _html_inline(cell)

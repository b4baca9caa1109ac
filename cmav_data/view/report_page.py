"""A static, self-contained HTML page of a report written as Markdown (``report.html`` of
``cmav-bench run``, ``results.html`` of ``compare-features``): the same lines the Markdown report is
made of, so both say the same thing, plus optional extra HTML (audio players).

Only the subset those reports use is rendered: ``#`` headings, pipe tables, ``- `` bullets, images
``![alt](relative.png)``, paragraphs, inline ``code`` and ``**bold**``. Images stay relative paths
in the run folder; style is inline; nothing is fetched from the network. Pure: text in, text out.
"""

from __future__ import annotations

import re
from html import escape

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:75em;color:#222;background:#fafafa;padding:0 1em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.2em .5em}
th{background:#eee}code{background:#eee;padding:0 .2em}img{max-width:100%}
.audio td{vertical-align:middle}audio{width:14em}
"""


def _inline(text: str) -> str:
    out = escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)


def _table(rows: list[str]) -> str:
    cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
    head, body = cells[0], [r for r in cells[1:] if not all(re.fullmatch(r":?-+:?", c) for c in r)]
    return ("<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body) + "</table>")


def markdown_to_html(markdown: str) -> str:
    blocks, lines, i = [], markdown.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif m := re.fullmatch(r"(#{1,6}) (.*)", line):
            level = len(m.group(1))
            blocks.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
            i += 1
        elif m := re.fullmatch(r"!\[([^\]]*)\]\(([^)]+)\)", line.strip()):
            blocks.append(f'<p><img src="{escape(m.group(2))}" alt="{escape(m.group(1))}"></p>')
            i += 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i])
                i += 1
            blocks.append(_table(rows))
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            blocks.append("<ul>" + "".join(items) + "</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(r"(#{1,6} |\||- |!\[)", lines[i]):
                para.append(lines[i])
                i += 1
            blocks.append(f"<p>{_inline(' '.join(para))}</p>")
    return "\n".join(blocks)


def audio_table(title: str, columns: list[str], rows: list[tuple[str, list[str]]], note: str = "") -> str:
    """A table of audio players: ``rows`` are (label, one relative WAV path per column)."""
    head = "".join(f"<th>{escape(c)}</th>" for c in ["", *columns])
    body = "".join(f"<tr><td>{escape(label)}</td>" + "".join(
        f'<td><audio controls preload="metadata" src="{escape(p)}"></audio></td>' for p in paths) + "</tr>"
        for label, paths in rows)
    return (f"<h2>{escape(title)}</h2>" + (f"<p>{escape(note)}</p>" if note else "")
            + f'<table class="audio"><tr>{head}</tr>{body}</table>')


def report_page(title: str, markdown: str, extra_html: str = "") -> str:
    return "\n".join(["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
                      '<link rel="icon" href="data:,">', f"<title>{escape(title)}</title>",
                      f"<style>{STYLE}</style>", "</head>", "<body>", markdown_to_html(markdown), extra_html,
                      "</body>", "</html>", ""])

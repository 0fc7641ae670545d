"""The one escaping helper: record-derived text made safe where people see it (markdown, HTML, terminal).

Every function first drops terminal control sequences (ANSI/CSI, OSC such as hyperlinks and window
titles, other escapes, C0/C1 controls but tab and newline, bidirectional overrides): they never belong
in text a person reads, and in a terminal they can rewrite the screen or hide what follows.
"""

from __future__ import annotations

import html
import re

_CONTROL = re.compile(
    r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"          # OSC … BEL/ST (hyperlinks, titles, clipboard), unterminated too
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"              # DCS, SOS, PM, APC strings
    r"|\x1b\[[0-?]*[ -/]*[@-~]?"                   # CSI (colours, cursor moves, clear screen)
    r"|\x1b[ -/]*[0-~]?"                           # any other escape sequence
    r"|\x9b[0-?]*[ -/]*[@-~]?"                     # 8-bit CSI
    r"|[\x90\x98\x9d\x9e\x9f][^\x07\x9c]*[\x07\x9c]?"   # 8-bit DCS, SOS, OSC, PM, APC
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>:=])")


def plain_text(text) -> str:
    """The text without control sequences: what a terminal, a form or a plain-text widget may show."""
    return _CONTROL.sub("", "" if text is None else str(text))


def terminal(text) -> str:
    """Record text for a Rich console or table: controls dropped and Rich markup ([bold], [link=…]) escaped."""
    from rich.markup import escape

    return escape(plain_text(text))


def html_text(text) -> str:
    """Text for HTML (element content or a quoted attribute)."""
    return html.escape(plain_text(text), quote=True)


def md_text(text) -> str:
    """Text inside markdown: HTML tags, links, emphasis, headings and table pipes all read as literal characters."""
    escaped = html.escape(plain_text(text), quote=False)        # & < > first: the entities contain no markdown
    return _MARKDOWN.sub(r"\\\1", escaped)


def md_code(text, in_table: bool = False) -> str:
    """A markdown code span that no backtick in the text can close early (one line; pipes escaped in a table)."""
    content = " ".join(plain_text(text).splitlines()) or " "
    longest = max((len(run) for run in re.findall(r"`+", content)), default=0)
    fence = "`" * (longest + 1)
    if content.startswith(("`", " ")) or content.endswith(("`", " ")):
        content = f" {content} "                             # CommonMark strips one space each side
    span = f"{fence}{content}{fence}"
    return span.replace("|", "\\|") if in_table else span


def md_cell(text) -> str:
    """Text for one cell of a markdown table: escaped as md_text, on one line."""
    return md_text(" ".join(plain_text(text).split()))


EXCERPT_LIMIT = 240   # characters of a record's text shown as a sample (a review, a report)


def md_excerpt(text, limit: int = EXCERPT_LIMIT) -> str:
    """A sample of record text in markdown: cut to `limit` characters (marked …), then escaped as md_cell."""
    text = plain_text(text)
    return md_cell(text[:limit] + "…" if len(text) > limit else text)

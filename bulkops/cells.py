"""Spreadsheet-safe CSV cells, both ways, and the characters spreadsheets hide in cells.

A cell starting with one of these characters is run as a formula by spreadsheets (CSV
injection), so reports write it with a leading apostrophe, and job files read that apostrophe
away again: a report can be opened safely and still be submitted back as it is.
"""

from __future__ import annotations

import re

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def escape(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


def unescape(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_TRIGGERS) else value


# Zero-width characters, bidi marks and embeddings, word joiner and invisible operators, BOM,
# soft hyphen, Arabic letter mark, Mongolian vowel separator: removed wherever they are.
INVISIBLE = ("\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
             "\ufeff")
# No-break, typographic and ideographic spaces, line and paragraph separators: a plain space.
ODD_SPACES = "\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def _translation() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    for ranges, replacement in ((INVISIBLE, None), (ODD_SPACES, " ")):
        for first, last in re.findall(r"(.)(?:-(.))?", ranges):
            for code in range(ord(first), ord(last or first) + 1):
                table[code] = replacement
    return table


CLEAN = _translation()


def clean(text: str) -> str:
    """`text` without invisible characters, odd spaces made plain (job file cells, whatever
    the file's format: they must never reach Wix inside a name or an address)."""
    return text if text.isascii() else text.translate(CLEAN)


def show(value: str, limit: int = 60) -> str:
    """A value quoted for an error message, shortened so one huge cell cannot flood the output."""
    return repr(value if len(value) <= limit else value[: limit - 1] + "…")

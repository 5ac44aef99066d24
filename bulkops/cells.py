"""Spreadsheet-safe CSV cells, both ways.

A cell starting with one of these characters is run as a formula by spreadsheets (CSV
injection), so reports write it with a leading apostrophe, and job files read that apostrophe
away again: a report can be opened safely and still be submitted back as it is.
"""

from __future__ import annotations

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def escape(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


def unescape(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_TRIGGERS) else value

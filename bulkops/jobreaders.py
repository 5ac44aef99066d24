"""Job file formats → raw rows tagged with their line numbers.

CSV and JSON Lines are read one physical line at a time, so a million-row file never sits in
memory; a `.json` file is one document and is parsed whole. Problems of the file's shape come out
as `RowError` items in the stream; problems after which nothing can be read reliably (text that
is not UTF-8, broken JSON, broken CSV quoting) raise `JobFileError` with that single problem.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

from bulkops.cells import unescape
from bulkops.errors import JobFileError, RowError
from bulkops.jobrows import COLUMNS, REPORT_COLUMNS, show, unknown_column_reason

_KNOWN = frozenset(COLUMNS)
_NO_DEFAULTS: Mapping[str, object] = MappingProxyType({})
_BOM = "\ufeff"


class JobFormat(StrEnum):
    CSV = "csv"
    JSON = "json"
    JSONL = "jsonl"


def job_format(path: Path) -> JobFormat | None:
    """The format named by the file's extension, or None for any other extension."""
    try:
        return JobFormat(path.suffix.lower().removeprefix("."))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class RawRow:
    """One operation as written: known columns only, empty cells and nulls left out."""

    line: int
    fields: Mapping[str, object]
    defaults: Mapping[str, object] = field(default_factory=lambda: _NO_DEFAULTS)


@dataclass(frozen=True, slots=True)
class CsvHeader:
    """The columns a CSV header names: a required column outside it is reported once, here."""

    line: int
    columns: frozenset[str]


ReadItem = RawRow | CsvHeader | RowError


def read_rows(path: Path, fmt: JobFormat) -> Iterator[ReadItem]:
    """Every row of the file in order, with the file-shape problems met on the way."""
    if fmt is JobFormat.CSV:
        return _read_csv(path)
    if fmt is JobFormat.JSONL:
        return _read_jsonl(path)
    return _read_json(path)


def _utf8_lines(raw: BinaryIO, path: Path) -> Iterator[str]:
    """Decoded physical lines. Decoding line by line pins a bad byte to its exact line: UTF-8
    sequences never contain a newline byte, so no character spans two lines."""
    for number, chunk in enumerate(raw, 1):
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            position = len(chunk[: exc.start].decode("utf-8", "replace")) + 1
            reason = (f"the file is not UTF-8 text: byte 0x{chunk[exc.start]:02X} at character "
                      f"{position} cannot be decoded; save the file as UTF-8")
            raise JobFileError(str(path), [RowError(number, None, reason)]) from None
        yield text.removeprefix(_BOM) if number == 1 else text


def _read_csv(path: Path) -> Iterator[ReadItem]:
    with path.open("rb") as raw:
        # strict: a quote left open would otherwise swallow the rest of the file into one cell.
        reader = csv.reader(_utf8_lines(raw, path), strict=True)
        layout: _CsvLayout | None = None
        end_of_previous = 0
        try:
            for cells in reader:
                # A quoted cell may span several lines: a row starts right after the last one.
                line, end_of_previous = end_of_previous + 1, reader.line_num
                if not "".join(cells).strip():
                    continue
                if layout is None:
                    layout = _CsvLayout(line, cells)
                    yield from layout.problems
                    yield CsvHeader(line, layout.columns)
                else:
                    row, problem = layout.row(line, cells)
                    if problem is not None:
                        yield problem
                    yield row
        except csv.Error as exc:
            detail = str(exc)
            if detail == "unexpected end of data":
                detail = "a quoted cell that starts on this row is never closed"
            problem = RowError(end_of_previous + 1, None, f"malformed CSV: {detail}")
            raise JobFileError(str(path), [problem]) from None


class _CsvLayout:
    """Which cell holds which column, learnt from the header."""

    def __init__(self, line: int, header: list[str]) -> None:
        self.problems: list[RowError] = []
        self._named: list[tuple[int, str]] = []
        self._unnamed: list[int] = []
        self._width = len(header)
        seen: set[str] = set()
        for position, cell in enumerate(header):
            name = cell.strip().lower()
            if not name:
                self._unnamed.append(position)
            elif name in seen:
                self.problems.append(RowError(line, name, "column appears twice in the header"))
            elif name not in _KNOWN and name not in REPORT_COLUMNS:
                self.problems.append(RowError(line, name, unknown_column_reason(name)))
            elif name in _KNOWN:
                self._named.append((position, name))
            seen.add(name)
        self.columns = frozenset(name for _, name in self._named)
        # The known column read from each cell position ("" for cells to leave alone).
        self._name_at = [""] * self._width
        for position, name in self._named:
            self._name_at[position] = name

    def row(self, line: int, cells: list[str]) -> tuple[RawRow, RowError | None]:
        fields: dict[str, object] = {
            name: value for name, cell in zip(self._name_at, cells, strict=False)
            if name and (value := unescape(cell.strip()))
        }
        problem = None
        if len(cells) > self._width or self._unnamed:  # the common row skips this check
            problem = self._stray_cell(line, cells)
        return RawRow(line, fields), problem

    def _stray_cell(self, line: int, cells: list[str]) -> RowError | None:
        """A value in a column without a name: under an empty header cell or past its end."""
        count = len(cells)
        stray = [p for p in self._unnamed if p < count and cells[p].strip()]
        stray += [p for p in range(self._width, count) if cells[p].strip()]
        if not stray:
            return None
        return RowError(line, None, f"cell {stray[0] + 1} has a value but no column name "
                                    f"in the header (the header has {self._width} columns)")


def _read_jsonl(path: Path) -> Iterator[ReadItem]:
    with path.open("rb") as raw:
        for line, text in enumerate(_utf8_lines(raw, path), 1):
            if not text.strip():
                continue
            try:
                element = json.loads(text)
            except json.JSONDecodeError as exc:
                yield RowError(line, None, f"invalid JSON at column {exc.colno}: {exc.msg}")
                continue
            yield from _json_operation(line, element, _NO_DEFAULTS)


def _read_json(path: Path) -> Iterator[ReadItem]:
    with path.open("rb") as raw:
        text = "".join(_utf8_lines(raw, path))
    if not text.strip():
        return  # an empty file: the caller reports "no operations"
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON at file line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise JobFileError(str(path), [RowError(exc.lineno, None, reason)]) from None
    operations, defaults, problems = _json_document(document)
    if operations is None:
        raise JobFileError(str(path), problems)
    yield from problems
    for index, element in enumerate(operations, 1):
        yield from _json_operation(index, element, defaults)


_SHAPE = 'a JSON job file is a list of operations or {"defaults": {...}, "ops": [...]}'


def _json_document(
    document: object,
) -> tuple[list[object] | None, Mapping[str, object], list[RowError]]:
    """(operations, defaults, problems); operations is None when the shape is unusable.
    Problems of the file as a whole are reported on line 1."""
    if isinstance(document, list):
        return document, _NO_DEFAULTS, []
    if not isinstance(document, dict) or not isinstance(document.get("ops"), list):
        return None, _NO_DEFAULTS, [RowError(1, None, _SHAPE)]
    problems = [
        RowError(1, name, f"unknown top-level field {show(name)}: {_SHAPE}")
        for name in document if name not in ("defaults", "ops")
    ]
    raw_defaults = document.get("defaults") or {}
    if not isinstance(raw_defaults, dict):
        problems.append(RowError(1, "defaults", "defaults must be a JSON object"))
        return document["ops"], _NO_DEFAULTS, problems
    defaults, default_problems = _json_fields(1, raw_defaults, " in defaults")
    if "key" in defaults:
        del defaults["key"]
        problems.append(RowError(1, "key", "key cannot have a default: each row has its own"))
    return document["ops"], defaults, problems + default_problems


def _json_operation(
    line: int, element: object, defaults: Mapping[str, object]
) -> Iterator[ReadItem]:
    if not isinstance(element, dict):
        kind = "a list" if isinstance(element, list) else type(element).__name__
        yield RowError(line, None, f"each operation must be a JSON object, not {kind}")
        return
    fields, problems = _json_fields(line, element, "")
    yield from problems
    yield RawRow(line, fields, defaults)


def _json_fields(
    line: int, element: dict[str, object], where: str
) -> tuple[dict[str, object], list[RowError]]:
    """Known columns of a JSON object (`roles` is accepted for `role`); nulls are absent."""
    fields: dict[str, object] = {}
    problems: list[RowError] = []
    for name, value in element.items():
        column = "role" if name == "roles" else name
        if column in REPORT_COLUMNS:
            continue
        if column not in _KNOWN:
            problems.append(RowError(line, name, unknown_column_reason(name, where)))
        elif column in fields and value is not None:
            problems.append(RowError(line, "role", "give either role or roles, not both"))
        elif value is not None:
            fields[column] = value
    return fields, problems

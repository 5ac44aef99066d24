"""Job file formats → raw rows tagged with their line numbers.

CSV and JSON Lines are read one physical line at a time, so a million-row file never sits in
memory; a `.json` file is one document and is parsed whole. Problems of the file's shape come out
as `RowError` items in the stream; problems after which nothing can be read reliably (text that
is not UTF-8, broken JSON, broken CSV quoting) raise `JobFileError` with that single problem.

CSV files are read the way spreadsheets save them: UTF-8 with or without a BOM or UTF-16/32 with
one; CRLF, LF or old-Mac CR line ends; cells separated by commas, semicolons or tabs (found from
the header, or from Excel's `sep=` first line); invisible characters dropped and odd spaces made
plain; header names matched without case, spaces or underscores; Excel's ="0123" unwrapped.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from itertools import chain
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO, NamedTuple, cast

from bulkops.cells import CLEAN, INVISIBLE, ODD_SPACES, show, unescape
from bulkops.errors import JobFileError, RowError
from bulkops.jobrows import (
    COLUMNS,
    LIST_COLUMNS,
    REPORT_COLUMNS,
    unknown_column_reason,
)

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


class RawRow(NamedTuple):
    """One operation as written: known columns only, empty cells and nulls left out.

    A named tuple, not a frozen dataclass: one is made per row, and a frozen dataclass sets
    each field through object.__setattr__."""

    line: int
    fields: Mapping[str, object]
    defaults: Mapping[str, object] = _NO_DEFAULTS


@dataclass(frozen=True, slots=True)
class CsvHeader:
    """The columns a CSV header names: a required column outside it is reported once, here."""

    line: int
    columns: frozenset[str]


ReadItem = RawRow | CsvHeader | RowError


class Skipped(Enum):
    """In place of an item `read_rows_skipping` was told is not wanted."""

    SKIPPED = "skipped"


SKIPPED = Skipped.SKIPPED


def read_rows(path: Path, fmt: JobFormat) -> Iterator[ReadItem]:
    """Every row of the file in order, with the file-shape problems met on the way."""
    if fmt is JobFormat.CSV:
        return cast(Iterator[ReadItem], _read_csv(path, None))  # nothing is skipped
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


def read_rows_skipping(
    path: Path, fmt: JobFormat, wanted: Callable[[int], bool]
) -> Iterator[ReadItem | Skipped]:
    """`read_rows`, where an item whose number (0, 1, ... in the stream) `wanted` refuses may
    come as SKIPPED: the same items, as many, in the same places. A CSV file's rows are then
    only split into cells, not made into rows (a helper reads the whole file and checks half
    of its items: most of a row's reading is making it); other formats read every item."""
    if fmt is JobFormat.CSV:
        return _read_csv(path, wanted)
    return read_rows(path, fmt)


def _read_csv(path: Path, wanted: Callable[[int], bool] | None) -> Iterator[ReadItem | Skipped]:
    number = 0  # the next item's, for `wanted`
    with path.open("rb") as raw:
        lines = _csv_lines(raw, path)
        start = _CsvStart.find(lines)
        if start is None:
            return  # only blank lines: the caller reports "no operations"
        yield from start.problems
        number += len(start.problems)
        # strict: a quote left open would otherwise swallow the rest of the file into one cell.
        reader = csv.reader(chain([start.header], lines), delimiter=start.delimiter, strict=True)
        before = start.skipped  # physical lines above the header: a sep= line, blank lines
        layout: _CsvLayout | None = None
        end_of_previous = before
        try:
            for cells in reader:
                # A quoted cell may span several lines: a row starts right after the last one.
                line, end_of_previous = end_of_previous + 1, before + reader.line_num
                joined = "".join(cells)
                if not joined.strip():
                    continue
                if layout is None:
                    layout = _CsvLayout(line, cells)
                    yield from layout.problems
                    yield CsvHeader(line, layout.columns)
                    number += len(layout.problems) + 1
                    continue
                if wanted is not None:
                    count = layout.items(cells, joined)
                    if count and not any(map(wanted, range(number, number + count))):
                        number += count
                        yield from _SKIPS[count]
                        continue
                row, problem = layout.row(line, cells, joined)
                if problem is not None:
                    yield problem
                    number += 1
                if row is not None:
                    yield row
                    number += 1
        except csv.Error as exc:
            detail = str(exc)
            if detail == "unexpected end of data":
                detail = "a quoted cell that starts on this row is never closed"
            problem = RowError(end_of_previous + 1, None, f"malformed CSV: {detail}")
            raise JobFileError(str(path), [problem]) from None


_SKIPS = ((), (SKIPPED,), (SKIPPED, SKIPPED))  # by how many items a row makes

# --- Bytes → text lines, the way spreadsheets save them -------------------------------------
#
# The encoding comes from a byte order mark, else UTF-8. Lines end at CRLF, LF or a lone CR (old
# Mac "CSV"), as editors count them, so every line number matches what the user sees. A line
# that is not plain ASCII is cleaned: invisible characters go, odd spaces become spaces.

_SNIFF_BYTES = 512  # enough to recognise a workbook or BOM-less UTF-16, never the whole file
# Longest first: a UTF-32 LE mark starts like a UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_WORKBOOKS = (
    (b"PK\x03\x04", "a spreadsheet workbook (.xlsx, .ods or .numbers)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook (.xls)"),
)
_SAVE_AS = "save it as CSV UTF-8"
# What the decoders leave for bytes they cannot read: surrogateescape (UTF-8) maps a bad byte to
# U+DC80..U+DCFF, surrogatepass (UTF-16/32) lets an unpaired surrogate through.
_UNDECODABLE = re.compile("[\ud800-\udfff]")
# Any of the above: one scan of a non-ASCII line finds whether it needs a closer look.
_SUSPECT = re.compile(f"[\ud800-\udfff{INVISIBLE}{ODD_SPACES}]")
_EOF = "\x1a"  # Ctrl-Z: the end-of-file mark old DOS tools append


def _csv_lines(raw: BinaryIO, path: Path) -> Iterator[str]:
    """The file's physical lines, decoded and cleaned, line endings kept for the csv module."""
    encoding = _csv_encoding(raw, path)
    errors = "surrogateescape" if encoding == "utf-8-sig" else "surrogatepass"
    text = io.TextIOWrapper(raw, encoding=encoding, errors=errors, newline="")
    number = 0
    try:
        for number, line in enumerate(text, 1):
            if not line.isascii() and _SUSPECT.search(line):
                line = _clean_line(number, line, encoding, path)
            if line.endswith(_EOF):  # only the last line can end without a line break
                line = line.rstrip(_EOF)
            yield line
    except UnicodeDecodeError as exc:  # UTF-16/32 only: cut off mid-character, or out of range
        reason = f"the file is not valid {_label(encoding)} text here ({exc.reason}): {_SAVE_AS}"
        raise JobFileError(str(path), [RowError(number + 1, None, reason)]) from None


def _csv_encoding(raw: BinaryIO, path: Path) -> str:
    """The codec named by the byte order mark, else UTF-8; one clear error for files that are not
    text at all (a workbook saved under a .csv name) or UTF-16 without a byte order mark."""
    head = raw.read(_SNIFF_BYTES)
    raw.seek(0)
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    problem = None
    for magic, what in _WORKBOOKS:
        if head.startswith(magic):
            problem = (f"this is {what}, not CSV text: in the spreadsheet, save or export it "
                       f"as CSV UTF-8")
    if problem is None and _bomless_utf16(head):
        problem = f"the file looks like UTF-16 text without a byte order mark: {_SAVE_AS}"
    if problem is not None:
        raise JobFileError(str(path), [RowError(1, None, problem)])
    return "utf-8-sig"


def _bomless_utf16(head: bytes) -> bool:
    """ASCII text written as UTF-16 without a byte order mark: every other byte is zero."""
    even, odd = head[0::2], head[1::2]
    if len(odd) < 2:
        return False
    return any(zeros.count(0) >= len(odd) * 3 // 4 and not others.count(0)
               for zeros, others in ((even, odd), (odd, even)))


def _clean_line(number: int, line: str, encoding: str, path: Path) -> str:
    bad = _UNDECODABLE.search(line)
    if bad is not None:
        code, position = ord(bad[0]), bad.start() + 1
        if encoding == "utf-8-sig":
            # The wording that JSON files get too; Excel's plain "CSV" writes Windows-1252.
            reason = (f"the file is not UTF-8 text: byte 0x{code - 0xDC00:02X} at character "
                      f"{position} cannot be decoded; save the file as UTF-8")
        else:
            reason = (f"the file is not valid {_label(encoding)} text: an unpaired surrogate "
                      f"U+{code:04X} at character {position}; {_SAVE_AS}")
        raise JobFileError(str(path), [RowError(number, None, reason)])
    return line.translate(CLEAN)


def _label(encoding: str) -> str:
    return encoding.upper().removesuffix("-SIG")


# --- Where the header is, and what separates its cells -------------------------------------

# Excel's "sep=;" first line names the delimiter; a spreadsheet that kept it as a cell may have
# quoted it or padded it with empty cells.
_SEP_LINE = re.compile(r'"?sep=([^"\r\n ])"?[,;\t| ]*', re.IGNORECASE)
_DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "'|'"}
_BLANK = " \t\r\n,;|\""


@dataclass(frozen=True, slots=True)
class _CsvStart:
    """The header line, the physical lines above it, and the delimiter it is written with."""

    skipped: int
    header: str
    delimiter: str
    problems: list[RowError]

    @staticmethod
    def find(lines: Iterator[str]) -> _CsvStart | None:
        sep = None
        for skipped, text in enumerate(lines):
            if skipped == 0 and (match := _SEP_LINE.fullmatch(text.rstrip("\r\n"))):
                sep = match[1]
            elif text.strip(_BLANK):
                delimiter, problems = _delimiter(text, sep, skipped + 1)
                return _CsvStart(skipped, text, delimiter, problems)
        return None


def _delimiter(header: str, sep: str | None, line: int) -> tuple[str, list[RowError]]:
    """The delimiter that makes the header name the action column (and the most known columns);
    a `sep=` line is believed unless only another delimiter finds the action column."""
    candidates = ((sep,) if sep else ()) + tuple(d for d in _DELIMITERS if d != sep)
    scores = [(_header_score(header, d), d) for d in candidates]
    best_score, best = scores[0]
    for score, delimiter in scores[1:]:
        if score > best_score:  # ties go to the earlier candidate
            best_score, best = score, delimiter
    if sep is None or best == sep:
        return best, []
    reason = (f"the first line says sep={sep} but the header on line {line} is separated by "
              f"{_DELIMITER_NAMES.get(best, repr(best))}: remove the sep= line or correct it")
    return best, [RowError(1, None, reason)]


def _header_score(header: str, delimiter: str) -> tuple[bool, int]:
    """(names the action column, how many known columns) when split at `delimiter`."""
    try:
        cells = next(csv.reader([header], delimiter=delimiter), [])
    except csv.Error:
        return False, 0
    names = {_column_name(cell) for cell in cells}
    return "action" in names, len(names - {None})


# --- Header names and cells -----------------------------------------------------------------

# Header names compare without case, spaces, underscores or hyphens: "Site Name", "SITE_NAME",
# "site-name" and "SiteName" are all site_name; "E-mail" is email and "Roles" is role.
_NAME_NOISE = re.compile(r"[\s_\-]+")
_COLUMN_BY_KEY = {name.replace("_", ""): name for name in (*COLUMNS, *REPORT_COLUMNS)}
_COLUMN_BY_KEY["roles"] = "role"


def _column_name(cell: str) -> str | None:
    """The known (job or report) column a header cell names, or None."""
    return _COLUMN_BY_KEY.get(_NAME_NOISE.sub("", cell).lower())


def _header_key(cell: str) -> str:
    written = cell.strip()
    return _column_name(written) or written.lower()


# A value whose first character is one of these may be wrapped: Excel's keep-as-text formula
# ="0123", a report's formula guard '=..., typographic quotes “…” ‘…’ „…“ «…».
_QUOTE_FAMILIES = ("“”„‟«»", "‘’‚‛")
_WRAPPED = frozenset("'=" + "".join(_QUOTE_FAMILIES))
_KEEP_AS_TEXT = re.compile(r'="((?:[^"]|"")*)"')
_KEEP_AS_TEXT_START = '="'
# Any character a wrapped value starts with, or its ="...": a row without one anywhere has no
# cell to unwrap (one search of the row instead of a test a cell).
_MAYBE_WRAPPED = re.compile("[" + re.escape("".join(sorted(_WRAPPED))) + "]")


def _maybe_wrapped(joined: str) -> bool:
    """Whether a row's joined cells hold a character a wrapped value starts with. The
    substring tests come first: a pattern with non-ASCII characters in its set scans each
    character slowly, several times the cost of both."""
    return ("'" in joined or "=" in joined
            or (not joined.isascii() and _MAYBE_WRAPPED.search(joined) is not None))


def _unwrap(value: str, entries: bool) -> str:
    """A cell's value as the spreadsheet meant it, without the wrapping it saved it in; in a
    `;`-separated list column (`entries`), each entry's own wrapping too."""
    value = _unwrap_one(value)
    if entries and ";" in value:
        value = ";".join(_unwrap_one(entry.strip()) for entry in value.split(";"))
    return value


def _unwrap_one(value: str) -> str:
    if not value:
        return value
    if value[0] == "'":
        rest = value[1:]
        if rest.isascii() and rest.isdigit():
            return rest  # '0123: the apostrophe that keeps digits as text, written out
        value = unescape(value)
    if value.startswith(_KEEP_AS_TEXT_START) and (match := _KEEP_AS_TEXT.fullmatch(value)):
        return match[1].replace('""', '"').strip()
    for quotes in _QUOTE_FAMILIES:
        # “Joe’s Diner” is unwrapped; “a”;“b” is two wrapped entries, not one.
        if (len(value) > 1 and value[0] in quotes and value[-1] in quotes
                and not any(quote in value[1:-1] for quote in quotes)):
            return value[1:-1].strip()
    return value


class _CsvLayout:
    """Which cell holds which column, learnt from the header."""

    def __init__(self, line: int, header: list[str]) -> None:
        self.problems: list[RowError] = []
        self._line = line
        self._named: list[tuple[int, str]] = []
        self._unnamed: list[int] = []
        self._width = len(header)
        first: dict[str, tuple[int, str]] = {}  # column -> (position, as written)
        for position, cell in enumerate(header):
            written = cell.strip()
            name = _column_name(written) or written.lower()
            if not name:
                self._unnamed.append(position)
            elif name in first:
                reason = _twice_reason(first[name], (position, written))
                self.problems.append(RowError(line, name, reason))
            else:
                first[name] = (position, written)
                if name in _KNOWN:
                    self._named.append((position, name))
                elif name not in REPORT_COLUMNS:
                    self.problems.append(RowError(line, name, unknown_column_reason(name)))
        self.columns = frozenset(name for _, name in self._named)
        # The known column at each position of the header, "" where there is none (unnamed,
        # unknown, a report's, or named twice).
        self._slots = [""] * self._width
        for position, name in self._named:
            self._slots[position] = name
        self._keys = _trimmed([_header_key(cell) for cell in header])
        self._action_at = next((p for p, name in self._named if name == "action"), None)

    def items(self, cells: list[str], joined: str) -> int | None:
        """How many items `row` makes of these cells (a row, and a problem before it), known
        without making them; None when only `row` can tell: a cell that may be wrapped, an
        action cell that may say "action" (a second header)."""
        if _maybe_wrapped(joined):
            return None
        position = self._action_at
        if position is not None and position < len(cells):
            action = cells[position].strip()
            if len(action) == 6 and action.lower() == "action":
                return None
        if len(cells) > self._width or self._unnamed:
            return 1 if self._stray_cell(0, cells) is None else 2
        return 1

    def row(
        self, line: int, cells: list[str], joined: str
    ) -> tuple[RawRow | None, RowError | None]:
        """`joined`: the cells joined together, as the caller has them already."""
        fields: dict[str, object]
        if not _maybe_wrapped(joined):
            # Only the known columns' cells, skipping empty ones: a job file's rows leave most
            # of their cells empty, and this runs once per row of a million-row file.
            fields = {name: value for name, cell in zip(self._slots, cells, strict=False)
                      if cell and (value := cell.strip())}
            fields.pop("", None)  # the cells of no known column
        else:
            fields = self._unwrapped(cells)
        action = fields.get("action")
        if isinstance(action, str) and len(action) == 6 and action.lower() == "action":
            return None, self._second_header(line, cells)
        problem = None
        if len(cells) > self._width or self._unnamed:  # the common row skips this check
            problem = self._stray_cell(line, cells)
        return RawRow(line, fields), problem

    def _unwrapped(self, cells: list[str]) -> dict[str, object]:
        """The known columns' cells of a row that may hold wrapped values, unwrapped."""
        fields: dict[str, object] = {}
        count = len(cells)
        for position, name in self._named:
            if position >= count:
                break
            cell = cells[position]
            if not cell:
                continue
            value = cell.strip()
            if value[:1] in _WRAPPED or _KEEP_AS_TEXT_START in value:
                value = _unwrap(value, name in LIST_COLUMNS)
            if value:
                fields[name] = value
        return fields

    def _stray_cell(self, line: int, cells: list[str]) -> RowError | None:
        """A value in a column without a name: under an empty header cell or past its end."""
        count = len(cells)
        stray = [p for p in self._unnamed if p < count and cells[p].strip()]
        stray += [p for p in range(self._width, count) if cells[p].strip()]
        if not stray:
            return None
        return RowError(line, None, f"cell {stray[0] + 1} has a value but no column name "
                                    f"in the header (the header has {self._width} columns)")

    def _second_header(self, line: int, cells: list[str]) -> RowError | None:
        """A header again, as two exports joined together leave it: skipped when it names the
        same columns in the same order, else the rows below it cannot be read by this header."""
        if _trimmed([_header_key(cell) for cell in cells]) == self._keys:
            return None
        return RowError(line, None, f"a second header row, with other columns than the header "
                                    f"on line {self._line} (two files joined together?): keep "
                                    f"one header and put every row's cells in its column order")


def _twice_reason(first: tuple[int, str], again: tuple[int, str]) -> str:
    if first[1].lower() == again[1].lower():
        return "column appears twice in the header"
    return (f"column appears twice in the header: cell {first[0] + 1} {show(first[1])} and "
            f"cell {again[0] + 1} {show(again[1])} name the same column")


def _trimmed(names: list[str]) -> list[str]:
    while names and not names[-1]:
        names.pop()
    return names


# Python's JSON parser gives up on lists or objects nested some thousand levels deep, at a
# depth that depends on how deep the call stack already is: an operation nested deeper than
# MAX_JSON_DEPTH (far beyond any job file's: its values are text, numbers and lists of them)
# is refused here first, so that a file gets the same answer in any process.
_TOO_DEEP = ("invalid JSON: lists or objects nested too deeply (a job file is a list of "
             "operations, each an object of plain values)")
MAX_JSON_DEPTH = 100
_UNPAIRED = ("holds a \\u escape of half a character{where} (an unpaired surrogate, \\uD800 "
             "to \\uDFFF): the text is not valid Unicode")


def _unpaired(value: object) -> object:
    """None when `value` (text, or a list of it) is valid Unicode; else the value with each
    unpaired surrogate made "?", so that the row can still be read for its other problems."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
        return None
    if isinstance(value, list):
        readable = [_unpaired(item) for item in value]
        if any(item is not None for item in readable):
            return [item if new is None else new for item, new in zip(value, readable, strict=True)]
    return None


def _deeper_than(value: object, depth: int) -> bool:
    """Whether `value` nests lists or objects more than `depth` levels deep (itself one)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > depth:
            return True
        if isinstance(item, dict):
            stack += [(inner, level + 1) for inner in item.values()
                      if isinstance(inner, dict | list)]
        elif isinstance(item, list):
            stack += [(inner, level + 1) for inner in item if isinstance(inner, dict | list)]
    return False


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
            except RecursionError:
                yield RowError(line, None, _TOO_DEEP)
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
    except RecursionError:
        raise JobFileError(str(path), [RowError(1, None, _TOO_DEEP)]) from None
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
    if _deeper_than(element, MAX_JSON_DEPTH):
        yield RowError(line, None, _TOO_DEEP)
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
        if _unpaired(name) is not None:
            problems.append(RowError(line, None, unknown_column_reason(name, where)))
            continue
        if (readable := _unpaired(value)) is not None:
            # A \uD800-\uDFFF escape alone is no character: nothing can send or print it.
            problems.append(RowError(line, column, _UNPAIRED.format(where=where)))
            value = readable
        if column not in _KNOWN:
            problems.append(RowError(line, name, unknown_column_reason(name, where)))
        elif column in fields and value is not None:
            problems.append(RowError(line, "role", "give either role or roles, not both"))
        elif value is not None:
            fields[column] = value
    return fields, problems

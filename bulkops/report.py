"""Reports: one record per input row, in input order, as JSON or CSV (formula-safe cells).

The CSV report is also a job file: its input columns come first, references to rows that
succeeded are replaced by what those rows produced, so `--only failed` gives a file that can be
fixed and submitted again as it is (the report columns are ignored when it is read back).

Every input row appears in exactly one record: `ReportTally` counts what a report holds while it
is rendered, and `row_problems` / `count_problems` compare that with the store before anything
is written (see `jobviews.write_report`).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bulkops.cells import FORMULA_TRIGGERS
from bulkops.errors import StoreError
from bulkops.identity import when
from bulkops.model import FINAL_STATES, JobInfo, OpRecord, OpSpec, OpState, is_ref

INPUT_COLUMNS = (
    "action", "key", "site_name", "template_id", "folder_id", "site", "to_account",
    "from_account", "email", "role", "sites", "depends_on", "domain", "connection", "assignment",
    "notify", "record_type", "host", "values", "ttl",
)
REPORT_COLUMNS = ("status", "attempts", "site_id", "invite_id", "error_code", "error_message",
                  "hint", "request_id", "note", "line", "registrar_records")


class TextSink(Protocol):
    """Where a report is written: a text file, stdout, or the spool it is checked in first."""

    def write(self, text: str, /) -> int: ...


def note_of(op: OpRecord) -> str | None:
    """The row's note; for a row whose operation another job ran (or runs), where and when."""
    elsewhere = op.elsewhere
    if elsewhere is None:
        return op.note
    where = f"in job {elsewhere.job_id} (line {elsewhere.line})"
    if elsewhere.replaced:
        # The key now names the work of a later version of this row: this row's own content
        # was never done, and the key's state is not this row's.
        said = (f"replaced: this key was run {where} with other content ({op.state.value} on "
                f"{when(elsewhere.at)}); this row's own content was not run")
    elif op.state is OpState.SUCCEEDED:
        said = f"done before: {where} on {when(elsewhere.at)}; not sent again"
    elif op.state in FINAL_STATES:
        said = f"{op.state.value} {where} on {when(elsewhere.at)}"
    else:
        said = f"run {where}"
    return f"{said}; {op.note}" if op.note else said


def record_json(op: OpRecord) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if op.site_id:
        result["site_id"] = op.site_id
    if op.invite_id:
        result["invite_id"] = op.invite_id
    records = registrar_records(op)
    if records is not None:
        result["registrar_records"] = records
        registrar = (op.details or {}).get("registrar")
        if registrar:
            result["registrar"] = registrar
    error = None
    if op.error is not None and op.state is not OpState.SUCCEEDED:
        error = {"code": op.error.code, "message": op.error.message, "hint": op.error.hint}
        if op.error.request_id:
            error["request_id"] = op.error.request_id
    return {
        "line": op.spec.line,
        "key": op.spec.key,
        "action": op.spec.action.value,
        "status": op.state.value,
        "attempts": op.attempts,
        "result": result or None,
        "error": error,
        "note": note_of(op),
    }


def registrar_records(op: OpRecord) -> list[dict[str, Any]] | None:
    """What the client must set at their registrar for a connected domain (Setup Info), as
    `[{"type", "host", "values", "ttl"}]`; None for other rows."""
    return records_of(op.details)


def records_of(details: Mapping[str, Any] | None) -> list[dict[str, Any]] | None:
    """`registrar_records` of an op's `details`."""
    records = (details or {}).get("registrar_records")
    if not isinstance(records, list):
        return None
    # In the order a person reads a DNS record (the store keeps keys sorted).
    return [{name: record.get(name) for name in ("type", "host", "values", "ttl")}
            for record in records if isinstance(record, dict)]


def registrar_text(op: OpRecord) -> str:
    """The registrar records in one cell: `A client.com 185.230.63.107 (TTL 3600); CNAME
    www.client.com pointing.wixdns.net (TTL 3600)`."""
    return records_text(op.details)


def records_text(details: Mapping[str, Any] | None) -> str:
    """`registrar_text` of an op's `details`."""
    parts = []
    for record in records_of(details) or ():
        ttl = f" (TTL {record['ttl']})" if record.get("ttl") else ""
        parts.append(f"{record.get('type')} {record.get('host')} "
                     f"{', '.join(record.get('values') or ())}{ttl}")
    return "; ".join(parts)


def values_cell(record_type: str | None, values: tuple[str, ...]) -> str:
    """A record's values as a job file writes them: `;`-separated, but TXT values (which may
    hold `;`) each in double quotes when there are several (`domainrows.split_values`)."""
    if record_type in ("TXT", "SPF") and (len(values) > 1 or (values[:1] and values[0][:1] == '"')):
        return ";".join('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
                        for value in values)
    return ";".join(values)


async def write_json(ops: AsyncIterator[OpRecord], out: TextSink) -> int:
    """Stream a JSON array (one object per line inside it) without holding the job in memory."""
    count = 0
    out.write("[")
    async for op in ops:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(record_json(op), ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


_TRIGGER_CHARS = "".join(FORMULA_TRIGGERS)  # each trigger is one character


def _safe(value: str) -> str:
    """`cells.escape`, with the common case (empty, or a plain first character) decided by
    one membership test: it runs for each of a million rows' 31 cells."""
    return "'" + value if value and value[0] in _TRIGGER_CHARS else value


def csv_row(op: OpRecord, produced: Mapping[str, str]) -> list[str]:
    """The cells of `op`'s CSV record, in INPUT_COLUMNS then REPORT_COLUMNS order.
    `produced`: key -> site id of rows that succeeded, used to make references self-contained
    (it must hold each of the row's `referenced` keys that succeeded)."""
    spec = op.spec

    def resolve(value: str) -> str:
        return produced.get(value[1:], value) if is_ref(value) else value

    # A succeeded row's last error is history, not a reason: only open or failed rows show one.
    error = op.error if op.state is not OpState.SUCCEEDED else None
    note = note_of(op)
    cells = [
        spec.action.value,
        spec.key,
        spec.site_name or "",
        spec.template_id or "",
        spec.folder_id or "",
        resolve(spec.site) if spec.site else "",
        spec.to_account or "",
        spec.from_account or "",
        spec.email or "",
        ";".join(spec.roles),
        ";".join([resolve(s) for s in spec.sites]) if spec.sites else "",
        ";".join([f"@{k}" for k in spec.depends_on if k not in produced])
        if spec.depends_on else "",
        spec.domain or "",
        spec.connection or "",
        spec.assignment or "",
        "yes" if spec.notify else "",
        spec.record_type or "",
        spec.host or "",
        values_cell(spec.record_type, spec.values) if spec.values else "",
        "" if spec.ttl is None else str(spec.ttl),
        op.state.value,
        str(op.attempts),
        op.site_id or "",
        op.invite_id or "",
        (error.code or "") if error else "",
        error.message if error else "",
        (error.hint or "") if error else "",
        # What Wix support asks for about a failed call.
        (error.request_id or "") if error else "",
        note or "",
        str(spec.line),
        registrar_text(op) if op.details else "",
    ]
    return [_safe(cell) for cell in cells]


# Looks up, among the job's rows, the keys (without "@") that succeeded: key -> site id ("").
SiteLookup = Callable[[Collection[str]], Awaitable[Mapping[str, str]]]
CSV_CHUNK = 1000  # rows whose `@key`s are resolved in one lookup (one read per chunk)


async def write_csv(
    ops: AsyncIterator[OpRecord], produced: Mapping[str, str] | SiteLookup, out: TextSink
) -> int:
    """Stream the CSV report of `ops`. `produced`: key -> site id of the job's rows that
    succeeded, or a lookup of those among given keys, asked once per CSV_CHUNK rows, so
    memory stays bounded whatever the job's size."""
    lookup = _in_mapping(produced) if isinstance(produced, Mapping) else produced
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*INPUT_COLUMNS, *REPORT_COLUMNS])
    count = 0
    chunk: list[OpRecord] = []
    async for op in ops:
        chunk.append(op)
        if len(chunk) == CSV_CHUNK:
            count += await _write_chunk(writer, chunk, lookup)
            chunk = []
    return count + await _write_chunk(writer, chunk, lookup)


def _in_mapping(produced: Mapping[str, str]) -> SiteLookup:
    async def lookup(keys: Collection[str]) -> Mapping[str, str]:
        return {key: produced[key] for key in keys if key in produced}

    return lookup


async def _write_chunk(writer: Any, chunk: list[OpRecord], lookup: SiteLookup) -> int:
    keys = {key for op in chunk for key in referenced(op.spec)}
    produced = await lookup(keys) if keys else {}
    writer.writerows([csv_row(op, produced) for op in chunk])
    return len(chunk)


def referenced(spec: OpSpec) -> Iterator[str]:
    """The keys (without "@") a row's CSV cells may resolve or leave pending: its `site`,
    `sites` and `depends_on`."""
    if spec.site and is_ref(spec.site):
        yield spec.site[1:]
    for site in spec.sites:
        if is_ref(site):
            yield site[1:]
    yield from spec.depends_on


class ReportMismatch(StoreError):
    """A report's records disagree with the job's rows or counts in the store; nothing was
    written. The CLI prints it as one `error:` line (exit 2), like any store error."""


SPOOL_BYTES = 8 << 20  # a report larger than this is checked from a temporary file, not memory
HTML_ROWS = 2000  # failed and blocked rows listed on the page; the CSV report has them all


def mismatch(job: JobInfo, problems: list[str]) -> ReportMismatch:
    """The error for a report whose `problems` (`row_problems`, `count_problems`) were found."""
    return ReportMismatch(
        f"the report of job {job.job_id} does not match its rows in the database: "
        f"{'; '.join(problems)}; nothing was written (unless the database was changed "
        "by other means, this is a bug: please report it with `bulkops status --json` of "
        "this job)")


@dataclass
class ReportTally:
    """What a report holds, counted while its records are rendered.

    `counts`: records per state. Rows are told apart by `OpRecord.seq` (the job's input order,
    from 0): `misplaced` holds the lines of records whose row came again or before an earlier
    one, `foreign` counts records of another job's rows.
    """

    job_id: str
    counts: Counter[OpState] = field(default_factory=Counter)
    records: int = 0
    first_seq: int | None = None
    last_seq: int = -1
    misplaced: list[int] = field(default_factory=list)
    foreign: int = 0

    def add(self, op: OpRecord) -> None:
        self.records += 1
        self.counts[op.state] += 1
        if op.job_id != self.job_id:
            self.foreign += 1
        if self.first_seq is None:
            self.first_seq = op.seq
        if op.seq <= self.last_seq:
            self.misplaced.append(op.spec.line)
        else:
            self.last_seq = op.seq

    async def through(self, ops: AsyncIterator[OpRecord]) -> AsyncIterator[OpRecord]:
        """`ops` unchanged, each one counted as it passes on its way to a writer."""
        async for op in ops:
            self.add(op)
            yield op

    def add_page(self, page: list[tuple[Any, ...]]) -> None:
        """Count the rows of a page read by `store.reportrows` (all of this job's rows: the
        read asks for no other), as `add` counts records."""
        if not page:
            return
        self.records += len(page)
        for state, n in Counter([row[_STATE] for row in page]).items():
            try:
                self.counts[OpState(state)] += n
            except ValueError:
                raise StoreError(f"an operation of job {self.job_id} is in an unknown state "
                                 f"{state!r}") from None
        if self.first_seq is None:
            self.first_seq = page[0][_SEQ]
        last = self.last_seq
        for row in page:
            seq = row[_SEQ]
            if seq <= last:
                self.misplaced.append(row[_LINE])
            else:
                last = seq
        self.last_seq = last


def row_problems(
    tally: ReportTally, *, total: int, only: Collection[OpState] | None
) -> list[str]:
    """Why the tallied records are not each row of a job of `total` rows exactly once, in
    input order (`only`: a subset of its rows; which ones is `count_problems`' to judge).
    Empty: they are. Rows never change once stored, so a problem here is never a race."""
    problems = []
    if tally.foreign:
        problems.append(f"{tally.foreign} record(s) of another job's rows")
    if tally.misplaced:
        lines = ", ".join(str(line) for line in tally.misplaced[:5])
        more = "…" if len(tally.misplaced) > 5 else ""
        problems.append(f"rows repeated or out of input order (line {lines}{more})")
    if tally.first_seq is not None and (tally.first_seq < 0 or tally.last_seq >= total):
        problems.append(f"records of rows the job's {total} rows do not have")
    # In order, each once and inside the job: as many records as rows means every row.
    if only is None and tally.records != total:
        problems.append(f"{tally.records} record(s) for the job's {total} rows")
    return problems


def count_problems(
    tally: ReportTally, *, counts: Mapping[OpState, int], only: Collection[OpState] | None
) -> list[str]:
    """Where the tallied records per state differ from the store's `counts` of the job's rows
    (`Store.counts`), restricted to the states in `only` (None: all; a record in any other
    state is a problem too). Empty: they agree."""
    wanted = set(OpState) if only is None else set(only)
    problems = []
    for state in OpState:
        got = tally.counts[state]
        if state not in wanted:
            if got:
                problems.append(f"{got} {state.value} record(s), a state not asked for")
        elif got != counts.get(state, 0):
            problems.append(f"{got} {state.value} in the report, {counts.get(state, 0)} in "
                            "the database")
    return problems


# -- rows as read by `store.reportrows` (SQLite): the same records, without building OpRecords --
#
# A page row is a tuple indexed as `reportrows.SEQ` ... `NOTE` (restated below: this module
# loads no store code). Rows whose op another job owns are rendered from their whole record
# (`whole`, by seq): their note says where the work was done. Every other row is rendered here
# field by field, to exactly what `record_json` / `csv_row` make of its record; the tests in
# tests/integration/test_report_lean.py compare the two on rows of every kind.

(_SEQ, _LINE, _KEY, _ACTION, _SPEC, _ELSEWHERE, _STATE, _ATTEMPTS, _SITE_ID, _INVITE_ID, _DETAILS,
 _ERROR_CODE, _ERROR_MESSAGE, _ERROR_HINT, _ERROR_REQUEST_ID, _NOTE) = range(16)
_SUCCEEDED = OpState.SUCCEEDED.value
# What json.dumps(..., ensure_ascii=False) uses, made once.
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode
_STRING = json.encoder.encode_basestring  # a str as JSON, as that encoder writes it (in C)
_LOADS = json.loads


def _text_or_null(value: str | None) -> str:
    return "null" if value is None else _STRING(value)


def json_page(page: list[tuple[Any, ...]], whole: Mapping[int, OpRecord]) -> list[str]:
    """Each row's JSON object (`record_json`, as `json.dumps(..., ensure_ascii=False)` writes
    it), in the order of `page`."""
    objects = []
    for row in page:
        if row[_ELSEWHERE]:
            objects.append(_ENCODE(record_json(whole[row[_SEQ]])))
            continue
        site_id, invite_id, details = row[_SITE_ID], row[_INVITE_ID], row[_DETAILS]
        if details:
            objects.append(_ENCODE(_json_object(row, _LOADS(details))))
            continue
        if site_id:
            result = ('{"site_id": ' + _STRING(site_id)
                      + (', "invite_id": ' + _STRING(invite_id) + "}" if invite_id else "}"))
        elif invite_id:
            result = '{"invite_id": ' + _STRING(invite_id) + "}"
        else:
            result = "null"
        state = row[_STATE]
        code, message = row[_ERROR_CODE], row[_ERROR_MESSAGE]
        if (code is None and message is None) or state == _SUCCEEDED:
            error = "null"
        else:
            request_id = row[_ERROR_REQUEST_ID]
            error = (f'{{"code": {_text_or_null(code)}, "message": {_STRING(message or "")}, '
                     f'"hint": {_text_or_null(row[_ERROR_HINT])}'
                     + (f', "request_id": {_STRING(request_id)}}}' if request_id else "}"))
        objects.append(
            f'{{"line": {row[_LINE]}, "key": {_STRING(row[_KEY])}, '
            f'"action": {_STRING(row[_ACTION])}, "status": {_STRING(state)}, '
            f'"attempts": {row[_ATTEMPTS]}, "result": {result}, "error": {error}, '
            f'"note": {_text_or_null(row[_NOTE])}}}'
        )
    return objects


def _json_object(row: tuple[Any, ...], details: Any) -> dict[str, Any]:
    """`record_json` of a row of its own job whose op keeps `details` (parsed)."""
    result: dict[str, Any] = {}
    if row[_SITE_ID]:
        result["site_id"] = row[_SITE_ID]
    if row[_INVITE_ID]:
        result["invite_id"] = row[_INVITE_ID]
    records = records_of(details)
    if records is not None:
        result["registrar_records"] = records
        registrar = (details or {}).get("registrar")
        if registrar:
            result["registrar"] = registrar
    error = None
    code, message = row[_ERROR_CODE], row[_ERROR_MESSAGE]
    if (code is not None or message is not None) and row[_STATE] != _SUCCEEDED:
        error = {"code": code, "message": message or "", "hint": row[_ERROR_HINT]}
        if row[_ERROR_REQUEST_ID]:
            error["request_id"] = row[_ERROR_REQUEST_ID]
    return {
        "line": row[_LINE],
        "key": row[_KEY],
        "action": row[_ACTION],
        "status": row[_STATE],
        "attempts": row[_ATTEMPTS],
        "result": result or None,
        "error": error,
        "note": row[_NOTE],
    }


def page_specs(page: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """The stored spec of each row of `page` (read with its spec), parsed: as one JSON array,
    one call into the parser for the page instead of one per row."""
    specs: list[dict[str, Any]] = _LOADS("[" + ",".join([row[_SPEC] for row in page]) + "]")
    return specs


def page_references(specs: list[dict[str, Any]]) -> set[str]:
    """The keys the rows of these specs name (`referenced`): site, sites, depends_on."""
    keys: set[str] = set()
    for spec in specs:
        site = spec.get("site")
        if site and site[0] == "@":
            keys.add(site[1:])
        sites = spec.get("sites")
        if sites:
            keys.update([value[1:] for value in sites if value[:1] == "@"])
        depends = spec.get("depends_on")
        if depends:
            keys.update(depends)
    return keys


def page_produced(page: list[tuple[Any, ...]]) -> tuple[set[str], dict[str, str]]:
    """The keys of the page's rows, and key -> site id ("") of those whose op succeeded: what
    `produced_by_keys` says of them, known without asking."""
    return ({row[_KEY] for row in page},
            {row[_KEY]: row[_SITE_ID] or "" for row in page if row[_STATE] == _SUCCEEDED})


# Where each spec field goes among INPUT_COLUMNS: the plain ones as they are, the others
# through `csv_page`'s own rules (as `csv_row`'s). `implied_depends_on` is no column.
_PLAIN_COLUMNS = {name: INPUT_COLUMNS.index(name) for name in (
    "action", "site_name", "template_id", "folder_id", "to_account", "from_account", "email",
    "domain", "connection", "assignment", "record_type", "host")}
(_KEY_COLUMN, _SITE_COLUMN, _ROLES_COLUMN, _SITES_COLUMN, _DEPENDS_COLUMN, _NOTIFY_COLUMN,
 _VALUES_COLUMN, _TTL_COLUMN) = (INPUT_COLUMNS.index(name) for name in (
    "key", "site", "role", "sites", "depends_on", "notify", "values", "ttl"))
_BLANK_INPUT = [""] * len(INPUT_COLUMNS)
_NO_ERROR = ("", "", "", "")


def csv_page(page: list[tuple[Any, ...]], specs: list[dict[str, Any]],
             produced: Mapping[str, str], whole: Mapping[int, OpRecord]) -> list[str]:
    """Each row's CSV line (`csv_row`'s cells as `write_csv` writes them, with its "\\n"), in
    the order of `page`; `specs`: `page_specs(page)`, `produced` as `csv_row` takes it (every
    key the page's rows name that succeeded)."""
    lines = []
    for row, spec in zip(page, specs, strict=True):
        if row[_ELSEWHERE]:
            lines.append(_csv_line(csv_row(whole[row[_SEQ]], produced)))
            continue
        cells = _input_cells(spec, produced)
        key = row[_KEY]
        cells[_KEY_COLUMN] = "'" + key if key and key[0] in _TRIGGER_CHARS else key
        # Most rows have no cell to quote: then the line is its cells joined by commas, as
        # csv writes it (a comma inside a cell shows as one comma too many).
        tail = _plain_tail(row)
        line = (",".join(cells) + tail if tail is not None
                else ",".join(cells + _report_cells(row)))
        if (line.count(",") != _SEPARATORS or '"' in line or "\n" in line or "\r" in line):
            lines.append(_csv_line(cells + _report_cells(row)))
        else:
            lines.append(line + "\n")
    return lines


def _plain_tail(row: tuple[Any, ...]) -> str | None:
    """The row's report cells as they follow its input cells on its line (with the comma
    before them) when they are the common few: `_report_cells`' for a row with no error
    shown, note or records, and no result that `_safe` would change. Else None."""
    state, site, invite = row[_STATE], row[_SITE_ID] or "", row[_INVITE_ID] or ""
    attempts, number = row[_ATTEMPTS], row[_LINE]
    if (row[_NOTE] is None and row[_DETAILS] is None and attempts >= 0 and number >= 0
            and (state == _SUCCEEDED
                 or (row[_ERROR_CODE] is None and row[_ERROR_MESSAGE] is None))
            and site[:1] not in _TRIGGERS and invite[:1] not in _TRIGGERS):
        return f",{state},{attempts},{site},{invite},,,,,,{number},"
    return None


_TRIGGERS = frozenset(FORMULA_TRIGGERS)  # "" is none: an empty cell stays empty


_SEPARATORS = len(INPUT_COLUMNS) + len(REPORT_COLUMNS) - 1


def _input_cells(spec: dict[str, Any], produced: Mapping[str, str]) -> list[str]:
    """`csv_row`'s input cells of a row's stored spec, but its key's: the spec's few fields
    walked once, each to its column, made formula-safe as it is placed (`_safe`, inline: most
    cells stay empty)."""
    cells = _BLANK_INPUT.copy()
    for name, value in spec.items():
        column = _PLAIN_COLUMNS.get(name)
        if column is not None:
            if value:  # as `spec.x or ""`
                cells[column] = "'" + value if value[0] in _TRIGGER_CHARS else value
        elif name in _SPECIAL_COLUMNS:
            column, cell = _SPECIAL_COLUMNS[name]
            text = cell(value, produced, spec)
            cells[column] = "'" + text if text and text[0] in _TRIGGER_CHARS else text
    return cells


def _report_cells(row: tuple[Any, ...]) -> list[str]:
    """`csv_row`'s report cells of a row of its own job."""
    state = row[_STATE]  # one of OpState's values (`ReportTally.add_page`): never a trigger
    code, message = row[_ERROR_CODE], row[_ERROR_MESSAGE]
    details = row[_DETAILS]
    attempts, line = str(row[_ATTEMPTS]), str(row[_LINE])  # a trigger only if negative
    return [
        state,
        "'" + attempts if attempts[0] == "-" else attempts,
        _safe(row[_SITE_ID]) if row[_SITE_ID] else "",
        _safe(row[_INVITE_ID]) if row[_INVITE_ID] else "",
        # A succeeded row's last error is history, not a reason (as `csv_row`).
        *([_safe(code or ""), _safe(message or ""), _safe(row[_ERROR_HINT] or ""),
           _safe(row[_ERROR_REQUEST_ID] or "")]
          if (code is not None or message is not None) and state != _SUCCEEDED
          else _NO_ERROR),
        _safe(row[_NOTE]) if row[_NOTE] else "",
        "'" + line if line[0] == "-" else line,
        _safe(records_text(_LOADS(details))) if details else "",
    ]


def _site_cell(value: Any, produced: Mapping[str, str], _: Mapping[str, Any]) -> str:
    if not value:
        return ""
    return produced.get(value[1:], value) if value[0] == "@" else str(value)


def _sites_cell(value: Any, produced: Mapping[str, str], _: Mapping[str, Any]) -> str:
    if not value:
        return ""
    return ";".join([produced.get(s[1:], s) if s[:1] == "@" else s for s in value])


def _depends_cell(value: Any, produced: Mapping[str, str], _: Mapping[str, Any]) -> str:
    return ";".join(["@" + k for k in value if k not in produced]) if value else ""


def _roles_cell(value: Any, _: Mapping[str, str], __: Mapping[str, Any]) -> str:
    return ";".join(value or ())


def _values_cell(value: Any, _: Mapping[str, str], spec: Mapping[str, Any]) -> str:
    return values_cell(spec.get("record_type"), tuple(value)) if value else ""


def _ttl_cell(value: Any, _: Mapping[str, str], __: Mapping[str, Any]) -> str:
    return str(value) if isinstance(value, int) else ""


def _notify_cell(value: Any, _: Mapping[str, str], __: Mapping[str, Any]) -> str:
    return "yes" if value is True else ""


# The spec's fields whose cell is made by a rule (`csv_row`'s), by column. Any other field
# (implied_depends_on) has no column.
_SPECIAL_COLUMNS: dict[str, tuple[int, Callable[[Any, Mapping[str, str], Mapping[str, Any]],
                                                 str]]] = {
    "site": (_SITE_COLUMN, _site_cell),
    "sites": (_SITES_COLUMN, _sites_cell),
    "depends_on": (_DEPENDS_COLUMN, _depends_cell),
    "roles": (_ROLES_COLUMN, _roles_cell),
    "values": (_VALUES_COLUMN, _values_cell),
    "ttl": (_TTL_COLUMN, _ttl_cell),
    "notify": (_NOTIFY_COLUMN, _notify_cell),
}
_LINE_BUFFER = io.StringIO()
_LINE_WRITER = csv.writer(_LINE_BUFFER, lineterminator="\n")


def _csv_line(cells: list[str]) -> str:
    """`cells` as one line of `write_csv`'s writer (quoted where csv quotes)."""
    _LINE_WRITER.writerow(cells)
    line = _LINE_BUFFER.getvalue()
    _LINE_BUFFER.seek(0)
    _LINE_BUFFER.truncate()
    return line

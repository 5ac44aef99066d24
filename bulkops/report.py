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
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bulkops.cells import FORMULA_TRIGGERS
from bulkops.errors import StoreError
from bulkops.identity import when
from bulkops.model import FINAL_STATES, OpRecord, OpSpec, OpState, is_ref

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
    records = (op.details or {}).get("registrar_records")
    if not isinstance(records, list):
        return None
    # In the order a person reads a DNS record (the store keeps keys sorted).
    return [{name: record.get(name) for name in ("type", "host", "values", "ttl")}
            for record in records if isinstance(record, dict)]


def registrar_text(op: OpRecord) -> str:
    """The registrar records in one cell: `A client.com 185.230.63.107 (TTL 3600); CNAME
    www.client.com pointing.wixdns.net (TTL 3600)`."""
    parts = []
    for record in registrar_records(op) or ():
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

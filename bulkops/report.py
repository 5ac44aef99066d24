"""Reports: one record per input row, in input order, as JSON or CSV (formula-safe cells).

The CSV report is also a job file: its input columns come first, references to rows that
succeeded are replaced by what those rows produced, so `--only failed` gives a file that can be
fixed and submitted again as it is (the report columns are ignored when it is read back).
"""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, TextIO

from bulkops.cells import escape
from bulkops.identity import when
from bulkops.model import FINAL_STATES, OpRecord, OpState, is_ref

INPUT_COLUMNS = (
    "action", "key", "site_name", "template_id", "folder_id", "site", "to_account",
    "from_account", "email", "role", "sites", "depends_on",
)
REPORT_COLUMNS = ("status", "attempts", "site_id", "invite_id", "error_code", "error_message",
                  "error_hint", "request_id", "note", "line")


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
    result: dict[str, str] = {}
    if op.site_id:
        result["site_id"] = op.site_id
    if op.invite_id:
        result["invite_id"] = op.invite_id
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


async def write_json(ops: AsyncIterator[OpRecord], out: TextIO) -> int:
    """Stream a JSON array (one object per line inside it) without holding the job in memory."""
    count = 0
    out.write("[")
    async for op in ops:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(record_json(op), ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def csv_row(op: OpRecord, produced: Mapping[str, str]) -> list[str]:
    """`produced`: key -> site id of rows that succeeded, used to make references self-contained."""
    spec = op.spec

    def resolve(value: str) -> str:
        return produced.get(value[1:], value) if is_ref(value) else value

    pending_deps = [f"@{k}" for k in spec.depends_on if k not in produced]
    # A succeeded row's last error is history, not a reason: only open or failed rows show one.
    error = op.error if op.state is not OpState.SUCCEEDED else None
    values = {
        "action": spec.action.value,
        "key": spec.key,
        "site_name": spec.site_name or "",
        "template_id": spec.template_id or "",
        "folder_id": spec.folder_id or "",
        "site": resolve(spec.site) if spec.site else "",
        "to_account": spec.to_account or "",
        "from_account": spec.from_account or "",
        "email": spec.email or "",
        "role": ";".join(spec.roles),
        "sites": ";".join(resolve(s) for s in spec.sites),
        "depends_on": ";".join(pending_deps),
        "status": op.state.value,
        "attempts": str(op.attempts),
        "site_id": op.site_id or "",
        "invite_id": op.invite_id or "",
        "error_code": (error.code or "") if error else "",
        "error_message": error.message if error else "",
        "error_hint": (error.hint or "") if error else "",
        # What Wix support asks for about a failed call.
        "request_id": (error.request_id or "") if error else "",
        "note": note_of(op) or "",
        "line": str(spec.line),
    }
    return [escape(values[c]) for c in (*INPUT_COLUMNS, *REPORT_COLUMNS)]


async def write_csv(
    ops: AsyncIterator[OpRecord], produced: Mapping[str, str], out: TextIO
) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*INPUT_COLUMNS, *REPORT_COLUMNS])
    count = 0
    async for op in ops:
        writer.writerow(csv_row(op, produced))
        count += 1
    return count

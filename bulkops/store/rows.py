"""Rows to frozen records and back. The only place that knows both shapes."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bulkops.identity import effect, fingerprint
from bulkops.model import (
    Action,
    Elsewhere,
    JobInfo,
    JobState,
    OpError,
    OpRecord,
    OpSpec,
    OpState,
    frozen_instance,
    is_ref,
)

if TYPE_CHECKING:  # no SQLAlchemy at run time: reports read rows through sqlite3 too
    from sqlalchemy.engine import RowMapping

# The columns `save` writes: everything about an op that changes after it is stored.
MUTABLE_COLUMNS = (
    "state",
    "attempts",
    "site_id",
    "invite_id",
    "details",
    "error_code",
    "error_message",
    "error_hint",
    "error_status",
    "error_request_id",
    "first_sent_at",
    "last_sent_at",
    "not_before",
    "checks",
    "note",
    "lease_owner",
    "fingerprint",
    "maybe_applied",
)


def job_info(row: RowMapping | Mapping[str, Any]) -> JobInfo:
    return JobInfo(
        job_id=row["job_id"],
        path=row["path"],
        format=row["format"],
        total=row["total"],
        state=JobState(row["state"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        stop_reason=row["stop_reason"],
        account_id=row["account_id"],
        base_url=row["base_url"],
        lease_owner=row["lease_owner"],
        lease_since=row["lease_since"],
        lease_expires_at=row["lease_expires_at"],
        pruned_at=row["pruned_at"],
    )


def op_record(row: Mapping[Any, Any], refs: Mapping[str, str] | None = None) -> OpRecord:
    spec = OpSpec.from_json(row["line"], row["key"], json.loads(row["spec"]))
    details = row["details"]
    # Every field, as OpRecord(...) would set them (claims and reports build one per row).
    return frozen_instance(OpRecord, {
        "op_id": row["op_id"],
        "job_id": row["job_id"],
        "seq": row["seq"],
        "spec": spec,
        "state": OpState(row["state"]),
        "attempts": row["attempts"],
        "site_id": row["site_id"],
        "invite_id": row["invite_id"],
        "details": json.loads(details) if details else None,
        "error": _op_error(row),
        "first_sent_at": row["first_sent_at"],
        "last_sent_at": row["last_sent_at"],
        "not_before": row["not_before"],
        "checks": row["checks"],
        "note": row["note"],
        "lease_owner": row["lease_owner"],
        "refs": dict(refs or {}),
        "maybe_applied": bool(row["maybe_applied"]),
        "elsewhere": None,
    })


def _op_error(row: Mapping[Any, Any]) -> OpError | None:
    if row["error_message"] is None and row["error_code"] is None:
        return None
    return OpError(
        code=row["error_code"],
        message=row["error_message"] or "",
        hint=row["error_hint"],
        status=row["error_status"],
        request_id=row["error_request_id"],
    )


# One encoder for every spec: `json.dumps` with options builds a new encoder per call, which
# costs more than encoding a spec (a million rows are stored at a time).
_SPEC_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True)


def spec_text(spec: OpSpec) -> str:
    """Compact and key-sorted: the same spec is always stored as the same text."""
    return _SPEC_ENCODER.encode(spec.to_json())


def new_row(job_id: str, seq: int, spec: OpSpec, text: str) -> dict[str, Any]:
    """The insert values of a job's row (its op_id is added once the op is known)."""
    return {
        "job_id": job_id,
        "seq": seq,
        "line": spec.line,
        "key": spec.key,
        "action": spec.action.value,
        "spec": text,
    }


def new_op_row(
    row: dict[str, Any], scope: str, now: float, fingerprint: str | None = None
) -> dict[str, Any]:
    """The insert values of a new op for a job's `row` (see `new_row`): pending, never tried,
    owned by that row's job; `fingerprint` where it is known already (a create's)."""
    return {
        **row,
        "fingerprint": fingerprint,
        "scope": scope,
        "state": OpState.PENDING.value,
        "attempts": 0,
        "checks": 0,
        "maybe_applied": False,
        "updated_at": now,
    }


def fingerprint_may_change(op: OpRecord) -> bool:
    """Whether saving `op` may change its stored fingerprint: a create's is stored with its
    row (`_fingerprint`), the others' once they succeed."""
    return op.state is OpState.SUCCEEDED and op.spec.action is not Action.CREATE_SITE


def mutable_values(op: OpRecord) -> dict[str, Any]:
    """`op`'s fields as the columns in MUTABLE_COLUMNS (the error spread over five); without
    the fingerprint when saving `op` cannot change it (`fingerprint_may_change`)."""
    return {name[2:]: value for name, value in save_params(op, 0.0).items()
            if name not in ("p_op_id", "p_updated_at")}


# `statements.save_many`'s parameters, in the order `save_values` gives their values:
# p_<column> of every column in MUTABLE_COLUMNS but the fingerprint, then p_op_id and
# p_updated_at; a save that may change the fingerprint has p_fingerprint after them.
SAVE_PARAMS = (
    *(f"p_{name}" for name in MUTABLE_COLUMNS if name != "fingerprint"),
    "p_op_id",
    "p_updated_at",
)
SAVE_PARAMS_PRINTED = (*SAVE_PARAMS, "p_fingerprint")


def save_values(op: OpRecord, now: float) -> tuple[Any, ...]:
    """`statements.save_many`'s parameters for `op`, saved at `now` (unix seconds), as one
    tuple in the order of SAVE_PARAMS, or of SAVE_PARAMS_PRINTED when saving `op` may change
    its fingerprint (`fingerprint_may_change`; the tuple is one longer). A tuple because a
    save is two per row sent, and SQLite's driver binds a value by position for a fraction
    of what it costs by name (it looks each name up in the mapping as a new string)."""
    error = op.error
    details = op.details
    values = (
        op.state.value,
        op.attempts,
        op.site_id,
        op.invite_id,
        json.dumps(details, separators=(",", ":"), sort_keys=True) if details else None,
        *((error.code, error.message, error.hint, error.status, error.request_id)
          if error else _NO_ERROR),
        op.first_sent_at,
        op.last_sent_at,
        op.not_before,
        op.checks,
        op.note,
        op.lease_owner,
        op.maybe_applied,
        op.op_id,
        now,
    )
    if fingerprint_may_change(op):
        return (*values, _fingerprint(op))
    return values


_NO_ERROR = (None, None, None, None, None)


def save_params(op: OpRecord, now: float) -> dict[str, Any]:
    """`save_values` by name: p_<column> of each of `mutable_values`, with p_op_id and
    p_updated_at (for drivers that bind by name)."""
    return save_params_of(save_values(op, now))


def save_params_of(values: Sequence[Any]) -> dict[str, Any]:
    """`save_values`' tuple by name (SAVE_PARAMS, or SAVE_PARAMS_PRINTED for the longer one)."""
    return dict(zip(SAVE_PARAMS_PRINTED if len(values) > len(SAVE_PARAMS) else SAVE_PARAMS,
                    values, strict=True))


def _fingerprint(op: OpRecord) -> str | None:
    """What the op does (`identity.fingerprint`), once it can be known: at once for a create,
    and for the others once they succeeded (their `@key` sites are resolved by then). A row of
    a later file with another key but the same fingerprint names this op."""
    if op.state is not OpState.SUCCEEDED and op.spec.action is not Action.CREATE_SITE:
        return None

    def resolve(value: str) -> str:
        return op.refs.get(value[1:], value) if is_ref(value) else value

    return fingerprint(op.spec, resolve)


def row_record(job_id: str, row: Mapping[str, Any], sites: Mapping[str, str]) -> OpRecord:
    """A job's row as a record (`sql._PAGE_COLUMNS`, or a page of `reportrows`): its own line,
    key and spec; its op's state and results; where another job owns the op, which one and
    whether it asked for other work under this key. `sites`: key -> site id, for comparing a
    row with the owner's as the same work."""
    record = op_record(row)
    if row["op_job_id"] == job_id:
        return record

    def resolve(value: str) -> str:
        return sites.get(value[1:], value) if is_ref(value) else value

    # The same key asking for other work (not the same work found under another key). A
    # `@key` and the site id it produced are the same work: a report's fixed rows, run as a
    # file, name their sites by id where the original file names them by key.
    replaced = row["op_key"] == row["key"] and row["op_spec"] != row["spec"] and effect(
        json.loads(row["op_spec"]), resolve) != effect(json.loads(row["spec"]), resolve)
    return dataclasses.replace(
        record,
        elsewhere=Elsewhere(row["op_job_id"], row["op_line"], row["updated_at"], replaced),
    )

"""An operation's identity across jobs and files, and when a row may not reuse a done one.

An operation is named by its key (given in the file, or derived from the row's content) within
a *scope*: the Wix account and API it runs against, in one database. A row whose operation
already succeeded is never sent again; a row with a given key whose content differs from what
was done (or may have been done) under that key is refused before anything is sent.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bulkops.errors import RowError
from bulkops.invitees import invite_fingerprint, normalise_email
from bulkops.jobgraph import OutsideRef
from bulkops.model import SHARED_OWNER, Action, OpSpec, OpState, is_ref


def site_name_key(name: str) -> str:
    """A display name as names compare: Unicode NFC, case-folded, white space collapsed."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def fingerprint(spec: OpSpec, resolve: Callable[[str], str]) -> str | None:
    """What the row does at Wix, in a short stable text; None while it cannot be known (a
    `@key` whose site is not made yet). Two rows with one fingerprint in a scope are the same
    work whatever their keys: a site of this display name created; this site moved to this
    account; this person invited here with these roles (`invitees.invite_fingerprint`).
    """
    if spec.action is Action.CREATE_SITE:
        parts = [spec.action.value, site_name_key(spec.site_name or "")]
    elif spec.action is Action.TRANSFER_SITE:
        site = resolve(spec.site or "")
        if is_ref(site):
            return None
        parts = [spec.action.value, site.casefold(), (spec.to_account or "").casefold()]
    else:
        return invite_fingerprint(spec, resolve)
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def scope_of(account_id: str, base_url: str) -> str:
    """16 hex characters naming (account, API): one operation per key within it."""
    return hashlib.sha256(f"{account_id}|{base_url}".encode()).hexdigest()[:16]


def effect(spec: Mapping[str, Any], resolve: Callable[[str], str]) -> dict[str, Any]:
    """What a stored spec (`OpSpec.to_json()`) asks Wix to do, for comparing two rows.

    Left out: `depends_on`, which orders the work but sends nothing. E-mails compare as Wix
    compares them; `@key` references compare as the site id the referenced row produced, where
    `resolve` knows it, so a report of done rows run again as a file is the same work.
    """
    out = {name: value for name, value in spec.items()
           if name not in ("depends_on", "implied_depends_on")}
    if isinstance(out.get("email"), str):
        out["email"] = normalise_email(out["email"])
    if isinstance(out.get("site"), str):
        out["site"] = resolve(out["site"]).casefold()
    if isinstance(out.get("sites"), list):
        out["sites"] = sorted(resolve(site).casefold() for site in out["sites"])
    if isinstance(out.get("roles"), list):
        out["roles"] = sorted(role.casefold() for role in out["roles"])
    return out


def referenced_keys(*specs: Mapping[str, Any]) -> set[str]:
    """Keys named by `@key` in the site columns of stored specs."""
    keys: set[str] = set()
    for spec in specs:
        values = [spec.get("site"), *(spec.get("sites") or [])]
        keys.update(v[1:] for v in values if isinstance(v, str) and is_ref(v))
    return keys


@dataclass(frozen=True)
class Holder:
    """The process holding a job's lease (`jobs.lease_owner` is `host:pid:token`)."""

    owner: str
    since: float | None
    expires_at: float | None

    @property
    def host(self) -> str:
        return self.owner.split(":", 2)[0]

    @property
    def pid(self) -> str:
        parts = self.owner.split(":", 2)
        return parts[1] if len(parts) > 1 else "?"

    @property
    def shared(self) -> bool:
        """Whether worker processes share the job (rather than one process running it)."""
        return self.owner == SHARED_OWNER

    def describe(self) -> str:
        if self.shared:
            return "bulkops worker processes"
        since = "" if self.since is None else f" since {instant(self.since)}"
        return f"pid {self.pid} on {self.host}{since}"


@dataclass(frozen=True)
class EarlierOp:
    """The operation a row's key already names, as far as a conflict message needs it."""

    key: str
    spec: Mapping[str, Any]
    state: OpState
    maybe_applied: bool
    job_id: str
    line: int
    updated_at: float
    held_by: Holder | None  # a live process runs the owner job right now


def conflict(
    line: int, row: Mapping[str, Any], earlier: EarlierOp, resolve: Callable[[str], str]
) -> RowError | None:
    """The error for a row whose key names `earlier` with other content, or None if it may go.

    May go: the same work (see `effect`), or an earlier attempt that surely had no effect
    (pending, failed with Wix's answer, blocked, cancelled before sending) and that no live
    process is running: the row's content then simply replaces it.
    """
    now_, then = effect(row, resolve), effect(earlier.spec, resolve)
    if now_ == then:
        return None
    where = f"in job {earlier.job_id} (line {earlier.line})"
    if earlier.state is OpState.SUCCEEDED:
        what = f"was done {where} on {when(earlier.updated_at)}"
    elif earlier.maybe_applied or earlier.state in (OpState.RUNNING, OpState.UNKNOWN):
        what = f"may already have taken effect {where} on {when(earlier.updated_at)}"
    elif earlier.held_by is not None:
        what = f"is being run {where} by {earlier.held_by.describe()}"
    else:
        return None
    return RowError(
        line, "key",
        f"key {earlier.key!r} {what} with other content ({_differences(then, now_)}): give "
        "this row a new key for new work, or restore the row as it was",
    )


def _differences(then: Mapping[str, Any], now: Mapping[str, Any], limit: int = 3) -> str:
    """`site_name 'Acme' → 'Acme & Co'`, for the columns that differ (at most `limit`)."""
    names = [name for name in sorted(set(then) | set(now)) if then.get(name) != now.get(name)]

    def shown(value: object) -> str:
        if value is None:
            return "empty"
        text = ";".join(map(str, value)) if isinstance(value, list) else str(value)
        return repr(text if len(text) <= 40 else text[:39] + "…")

    parts = [f"{name} {shown(then.get(name))} → {shown(now.get(name))}" for name in names]
    more = f" and {len(parts) - limit} more" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more


def alias_conflict(line: int, key: str, job_id: str, first_line: int, at: float) -> RowError:
    """The error for a row reusing a key that was found to be an invite already done (under
    another key), for other work."""
    return RowError(
        line, "key",
        f"key {key!r} was done in job {job_id} (line {first_line}) on {when(at)} with other "
        "content (the same invite as one done before): give this row a new key for new work, "
        "or restore the row as it was",
    )


def instant(at: float) -> str:
    """Unix seconds as `2026-11-28 02:14:05 UTC`: a holder's times, to the second."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def when(at: float | None) -> str:
    """Unix seconds as `2026-11-28 02:14 UTC` (the form every message uses)."""
    if at is None:
        return "an unknown time"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class KnownOp:
    """An operation of the scope that a `@key` outside the file may name."""

    key: str
    action: str
    state: OpState
    job_id: str
    line: int
    site_id: str | None


@dataclass(frozen=True)
class TakeOver:
    """What a run did with the operations its job's rows name (see `Store.take_over`)."""

    adopted: int  # taken on from jobs no live process runs
    rearmed: int  # failed, blocked or cancelled ops armed to run again
    held_elsewhere: int  # unfinished ops a live process runs for another job


def outside_ref_errors(
    refs: Sequence[OutsideRef], known: Mapping[str, KnownOp], *, database: bool
) -> list[RowError]:
    """Errors for `@key`s naming no row of the file: fine only when they name an operation of
    an earlier run that succeeded (a create_site, where a site id is needed). `database`: False
    when there was no database to look in, which the message then says."""
    errors: list[RowError] = []
    for ref in refs:
        shown = f"'@{ref.key}'"
        found = known.get(ref.key)
        if found is None:
            where = (
                "nor to an operation of an earlier run against this account in the database"
                if database
                else "and there is no database to look for an earlier run's in: pass the "
                "--db (and --account-id) the earlier run used"
            )
            errors.append(RowError(ref.line, ref.column,
                                   f"{shown} refers to no row in this file, {where}"))
        elif found.state is not OpState.SUCCEEDED:
            what = ("run that job's file again" if found.state is OpState.CANCELLED
                    else "run that job to the end first")
            errors.append(RowError(
                ref.line, ref.column,
                f"{shown} is line {found.line} of job {found.job_id}, which is "
                f"{found.state.value}, not succeeded: {what}",
            ))
        elif ref.needs_site and found.action != Action.CREATE_SITE.value:
            errors.append(RowError(
                ref.line, ref.column,
                f"{shown} is line {found.line} of job {found.job_id} ({found.action}), "
                "not a create_site row",
            ))
    return errors

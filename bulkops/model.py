"""Domain records: actions, states, operation specs and their stored form. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, TypeVar

T = TypeVar("T")


class Action(StrEnum):
    CREATE_SITE = "create_site"
    TRANSFER_SITE = "transfer_site"
    SITE_INVITE = "site_invite"
    ACCOUNT_INVITE = "account_invite"
    CONNECT_DOMAIN = "connect_domain"
    SET_DNS_RECORD = "set_dns_record"


# The actions about a client's own domain (wix-domains.md): their rows get checks of their own.
DOMAIN_ACTIONS = frozenset({Action.CONNECT_DOMAIN, Action.SET_DNS_RECORD})


class OpState(StrEnum):
    PENDING = "pending"  # not sent yet, or safe to send again (retry scheduled by not_before)
    RUNNING = "running"  # write-ahead: the request is about to leave or is in flight
    UNKNOWN = "unknown"  # sent, outcome not known: must be reconciled before any re-send
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    BLOCKED = "blocked"  # a dependency failed; never sent
    CANCELLED = "cancelled"


FINAL_STATES = frozenset({OpState.SUCCEEDED, OpState.FAILED, OpState.BLOCKED, OpState.CANCELLED})


class JobState(StrEnum):
    PENDING = "pending"  # stored, never run
    RUNNING = "running"  # a process is (or was, if it died) running it
    FINISHED = "finished"  # every operation reached a final state
    STOPPED = "stopped"  # stopped early (breaker, deadline): exit 3, resumable
    INTERRUPTED = "interrupted"  # SIGINT/SIGTERM: exit 130, resumable
    CANCELLED = "cancelled"  # `bulkops cancel`: its unfinished rows will not run


REF_PREFIX = "@"
# `jobs.lease_owner` while `bulkops worker` processes share the job (a `host:pid:token`, the
# owner a single process writes, never is this).
SHARED_OWNER = "workers"


def is_ref(value: str) -> bool:
    """A `@key` reference to another row (of the same file, or of an earlier run)."""
    return value.startswith(REF_PREFIX)


@dataclass(frozen=True)
class OpSpec:
    """One validated row of a job file. `site`/`sites` hold site ids or `@key` references."""

    line: int
    key: str
    action: Action
    site_name: str | None = None
    template_id: str | None = None
    folder_id: str | None = None
    site: str | None = None
    to_account: str | None = None
    from_account: str | None = None
    email: str | None = None
    roles: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()  # keys, without the leading "@"
    # Domains (wix-domains.md): `domain` is the domain id (lowercase ASCII, no `www.`);
    # `connection` "pointing" | "nameservers" (None for a subdomain); `assignment` "redirect" |
    # "primary"; `host` a full name; `values` as written (MX "priority server"); `ttl` seconds.
    domain: str | None = None
    connection: str | None = None
    assignment: str | None = None
    notify: bool = False
    record_type: str | None = None
    host: str | None = None
    values: tuple[str, ...] = ()
    ttl: int | None = None
    # Keys the row waits for without naming them: DNS rows wait for the row connecting their
    # domain (`domainfile`). Stored, but not part of a derived key (the row did not say it).
    implied_depends_on: tuple[str, ...] = ()

    def dependency_keys(self) -> tuple[str, ...]:
        """Every row key this row waits for, in first-mention order, without duplicates."""
        site = self.site
        if not (self.sites or self.depends_on or self.implied_depends_on):
            # The common rows (a create, a row naming one site): asked a million times a load.
            return (site[1:],) if site and site[0] == REF_PREFIX else ()
        refs = [site] if site else []
        refs += list(self.sites)
        keys = [r[1:] for r in refs if is_ref(r)] + list(self.depends_on)
        keys += self.implied_depends_on
        return tuple(dict.fromkeys(keys))

    def to_json(self) -> dict[str, Any]:
        """The stored form: the action's fields only (line and key are columns of their own)."""
        out: dict[str, Any] = {"action": self.action.value}
        for name in _OPTIONAL_TEXT:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        for name in _LISTS:
            value = getattr(self, name)
            if value:
                out[name] = list(value)
        if self.notify:
            out["notify"] = True
        if self.ttl is not None:
            out["ttl"] = self.ttl
        return out

    @classmethod
    def from_json(cls, line: int, key: str, data: Mapping[str, Any]) -> OpSpec:
        """The spec `to_json` stored (every row of a claim and a report is read back through
        here, so it builds the instance directly: `frozen_instance`). Raises ValueError on an
        unknown action."""
        get = data.get
        values: dict[str, Any] = {"line": line, "key": key, "action": Action(data["action"])}
        for name in _OPTIONAL_TEXT:
            values[name] = get(name)
        for name in _LISTS:
            listed = get(name)
            values[name] = tuple(listed) if listed else ()
        ttl = get("ttl")
        values["notify"] = get("notify") is True
        values["ttl"] = ttl if isinstance(ttl, int) else None
        return frozen_instance(cls, values)


def frozen_instance(cls: type[T], values: dict[str, Any]) -> T:
    """An instance of the frozen dataclass `cls` holding `values` (every field, by name),
    without its generated __init__. Only for classes with no __post_init__ and no slots: the
    instance is then exactly what __init__ would make, at a fraction of the cost."""
    instance = object.__new__(cls)
    instance.__dict__.update(values)
    return instance


_OPTIONAL_TEXT = (
    "site_name", "template_id", "folder_id", "site", "to_account", "from_account", "email",
    "domain", "connection", "assignment", "record_type", "host",
)
_LISTS = ("roles", "sites", "depends_on", "values", "implied_depends_on")


@dataclass(frozen=True)
class JobSource:
    """A job file as stored: its identity is the hash of its content and where it runs."""

    job_id: str
    path: str
    format: str  # "csv" | "json" | "jsonl"
    total: int
    # Where the job runs: resuming it elsewhere would repeat its rows in another account.
    account_id: str = ""
    base_url: str = ""


@dataclass(frozen=True)
class JobInfo:
    job_id: str
    path: str
    format: str
    total: int
    state: JobState
    created_at: float  # unix seconds
    updated_at: float
    stop_reason: str | None = None
    account_id: str = ""
    base_url: str = ""
    lease_owner: str | None = None  # `host:pid:token` of the process running it, if any
    lease_since: float | None = None
    lease_expires_at: float | None = None
    pruned_at: float | None = None  # `prune` removed its rows; running its file adds them again

    def held_at(self, now: float) -> bool:
        """Whether a live process holds the job's lease at `now` (unix seconds)."""
        return self.lease_owner is not None and (self.lease_expires_at or 0.0) > now


@dataclass(frozen=True)
class Elsewhere:
    """Where a job's row was (or is being) run, when that was another job: the owner job."""

    job_id: str
    line: int
    at: float  # unix seconds of the operation's last change
    replaced: bool = False  # that job's row asked for other work under this key


@dataclass(frozen=True)
class OpError:
    """Why an operation failed, as the report shows it. `code` is Wix's applicationError.code."""

    code: str | None
    message: str
    hint: str | None = None
    status: int | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class OpRecord:
    """An operation as the store holds it; changed only by `dataclasses.replace` + `Store.save`.

    Times are unix seconds (float). `checks` counts reconciliation look-ups since the last send;
    `note` tells how the outcome was established when it was not a plain answer (reconciled).
    `refs` maps each dependency key to the site id it produced (filled by `claim_ready`).
    `maybe_applied`: a final state reached without knowing whether the last request took
    effect; a re-run reconciles before sending. `elsewhere` (reports only): the row's
    operation belongs to another job.
    """

    op_id: int
    job_id: str
    seq: int
    spec: OpSpec
    state: OpState = OpState.PENDING
    attempts: int = 0
    site_id: str | None = None
    invite_id: str | None = None
    # What a family keeps about the row beyond its ids (JSON-able): the registrar records of a
    # connected domain, a DNS row's record as it was before the write (`actions.domains`).
    details: Mapping[str, Any] | None = None
    error: OpError | None = None
    first_sent_at: float | None = None
    last_sent_at: float | None = None
    not_before: float | None = None
    checks: int = 0
    note: str | None = None
    lease_owner: str | None = None
    refs: Mapping[str, str] = field(default_factory=dict)
    maybe_applied: bool = False
    elsewhere: Elsewhere | None = None

    def evolve(self, **changes: Any) -> OpRecord:
        """`dataclasses.replace(self, **changes)` at a seventh of its cost, for the engine's
        hot path (two or three new records per row sent): the fields are copied, not passed
        through the generated __init__, which sets each of the 18 through
        object.__setattr__. Raises TypeError on a name that is not a field, as replace does."""
        unknown = changes.keys() - _OP_RECORD_FIELDS
        if unknown:
            raise TypeError(f"OpRecord has no field {sorted(unknown)[0]!r}")
        return frozen_instance(OpRecord, {**self.__dict__, **changes})


@dataclass(frozen=True)
class RunRecord:
    """One `run` or `resume` of a job, as the store keeps it (the morning-after account).

    Times are unix seconds. `finished_at`/`outcome` are None for a run whose process died.
    `timeline[i]` counts the HTTP requests sent in [started_at + i * bucket_seconds, + bucket).
    """

    run_id: int
    job_id: str
    command: str  # "run" | "resume"
    started_at: float
    finished_at: float | None = None
    outcome: str | None = None  # "finished" | "stopped" | "interrupted"
    reason: str | None = None
    requests: int = 0  # every HTTP request: sends, look-ups, retries, the roles call
    throttled: int = 0  # 429 answers
    retries: int = 0  # sends scheduled again after a retryable error
    reconciled: int = 0  # unknown outcomes settled by a look-up at Wix
    succeeded: int = 0  # rows that succeeded in this run
    failed: int = 0  # rows that failed in this run
    budget_per_second: float = 0.0  # the configured --rate
    bucket_seconds: float = 60.0
    timeline: tuple[int, ...] = ()

    @property
    def duration(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at


@dataclass(frozen=True)
class ErrorCount:
    """One kind of failure among a job's rows: how many, with its hint and a first example."""

    code: str | None
    hint: str | None
    count: int
    first_line: int
    message: str


@dataclass(frozen=True)
class JobOverview:
    """Everything a summary or report says about a job as a whole."""

    job: JobInfo
    counts: Mapping[OpState, int]
    by_action: Mapping[Action, Mapping[OpState, int]]
    runs: tuple[RunRecord, ...]
    top_errors: tuple[ErrorCount, ...]


_OP_RECORD_FIELDS = frozenset(f.name for f in fields(OpRecord))


@dataclass(frozen=True)
class Turns:
    """Request turns taken from an account's budget shared by every process (unix seconds):
    `count` turns, the first at `first_at`, then one every `spacing` seconds; and the latest
    429 any process on the account saw (`throttled_at`, 0 if none)."""

    first_at: float
    spacing: float
    count: int
    throttled_at: float

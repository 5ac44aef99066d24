"""The one small interface every action family implements, and the per-row outcomes of a call.

The engine sends *calls*, each carrying one or more rows of one family that may share it. A
family says which rows may share a call (`batch_key`, `batch_size`), sends a call and maps its
answer back to each row (`send`), looks up rows whose outcome is unknown (`look_up`, when
`checkable`), and knows the hints for its own errors (`hint`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from bulkops.errors import WixApiError, WixError
from bulkops.model import Action, OpRecord, is_ref
from bulkops.roles import RoleBook
from bulkops.wix import WixClient


@dataclass(frozen=True)
class Done:
    """The effect happened: what the report keeps."""

    site_id: str | None = None
    invite_id: str | None = None
    details: Mapping[str, Any] | None = None  # kept as `OpRecord.details` (JSON-able)
    note: str | None = None  # how it was established, when not by a plain answer


@dataclass(frozen=True)
class Rejected:
    """The row was refused without an HTTP error: an invitee Wix listed as failed inside a 200
    answer, or a role that cannot be resolved. Final: sending the same row again cannot help."""

    code: str
    message: str
    sent: bool = True  # False: refused before the request left (the attempt does not count)
    request_id: str | None = None  # X-Wix-Request-Id of the answer that refused it


@dataclass(frozen=True)
class Missing:
    """A 200 answer that does not mention the row: its outcome is unknown."""

    reason: str


@dataclass(frozen=True)
class CallFailed:
    """The call that carried the row failed as a whole (when a batch needed several calls and
    only some of them failed): handled as that error would be for a call of its own."""

    error: WixError


RowOutcome = Done | Rejected | Missing | CallFailed
# A row before its call: settled already (Done, Rejected), or to send with these details (a
# mapping kept in the write-ahead record), or to send as it is (None).
Prepared = Done | Rejected | Mapping[str, Any] | None
T = TypeVar("T")


class Reader(Protocol):
    """Runs an idempotent read, retried on any failure a repeat can fix (`retry.retry_reads`)."""

    def __call__(self, fn: Callable[[], Awaitable[T]]) -> Awaitable[T]: ...


async def _once(fn: Callable[[], Awaitable[T]]) -> T:
    return await fn()


@dataclass(frozen=True)
class ActionContext:
    """What a family needs to build and send its calls.

    `roles` is the account's role book, read once before the run's first write; `now` is the
    clock (unix seconds) look-ups measure their window with.
    """

    client: WixClient
    account_id: str
    roles: RoleBook
    read: Reader = field(default=_once)


class ActionFamily(Protocol):
    """One family of actions behind one interface: the engine never branches on the action."""

    actions: frozenset[Action]
    batch_size: int  # rows one call may carry (1: a call per row)
    checkable: bool  # an unknown outcome can be looked up at Wix (else: the resend policy)
    look_up_size: int  # unknown rows one `look_up` settles together
    reads_per_call: int  # reads a call makes besides its write (a zone read, setup info)
    prepares: bool  # `prepare` reads before the write-ahead record (else it is skipped)
    # Any two rows of the family may share a call (one batch key): a call that is not full
    # is worth holding for the family's rows still to come.
    gathers: bool

    def batch_key(self, op: OpRecord, roles: RoleBook) -> Hashable:
        """Rows of this family with equal keys may share one call. `op.refs` are resolved."""
        ...

    async def send(self, ops: Sequence[OpRecord], ctx: ActionContext) -> list[RowOutcome]:
        """Send one call for `ops` (same batch key, at most `batch_size`); one outcome per op,
        in order. Raises WixError when the call as a whole failed (every row shares it)."""
        ...

    async def prepare(self, ops: Sequence[OpRecord], ctx: ActionContext) -> list[Prepared]:
        """Reads before the write-ahead record of a call for `ops`: per op, settled already, or
        the details to keep with it while in flight. Raises WixError when a read failed."""
        ...

    async def look_up(
        self, ops: Sequence[OpRecord], ctx: ActionContext, *, now: float
    ) -> list[Done | Rejected | None]:
        """For each op whose earlier send has an unknown outcome: its effect as found at Wix,
        None when not (yet) visible, or Rejected when Wix holds something else in its place (a
        conflict, final). Raises WixError when a look-up call failed. Only called when
        `checkable`; `now` is unix seconds."""
        ...

    def row_fault(self, error: WixApiError) -> bool:
        """Whether a call refused as a whole may be one row's fault: its rows are then sent one
        by one, so that only the rows at fault fail."""
        ...

    def hint(self, code: str | None) -> str | None:
        """The hint for an error code of this family's calls, or None when none is known."""
        ...


class FamilyDefaults:
    """What most families do: no reads before a call, and a 400 may be one row's fault."""

    reads_per_call = 0
    prepares = False

    async def prepare(self, ops: Sequence[OpRecord], ctx: ActionContext) -> list[Prepared]:
        return [None] * len(ops)

    def row_fault(self, error: WixApiError) -> bool:
        return error.status == 400


def site_of(op: OpRecord, value: str) -> str:
    """A site id as written in the row, or the site id produced by the referenced row."""
    return op.refs.get(value[1:], value) if is_ref(value) else value


def hint_in(table: Mapping[str, str], code: str | None) -> str | None:
    return table.get(code) if code is not None else None

"""Claimed rows waiting for the call that will carry them: which calls are due, and when the
next one will be.

A call is a group of rows of one action family with one batch key (or, for rows whose outcome
is unknown, one look-up). It is due when it is full; or, while other calls are in flight (their
outcomes are what make more rows ready), once it has lingered; or at once when nothing is in
flight. A family whose rows may all share calls (`gathers`) waits instead for its rows still to
come, up to a limit.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from bulkops.actions import ActionFamily, family_of
from bulkops.model import FINAL_STATES, Action, OpRecord, OpState
from bulkops.roles import RoleBook

# A call that is not full waits this long (seconds) for more rows that may share it, while
# other calls are in flight.
LINGER = 0.5
# A call that is not full, of a family whose rows may all share calls (account invites), waits
# at most this long (seconds) for the family's rows still to come (waiting for a dependency):
# fewer calls, at the price of a row held back for a while in a run paced by the budget.
GATHER_LIMIT = 30.0


@dataclass
class Call:
    """Rows that will go in one call: sends of one batch key, or look-ups of one action."""

    family: ActionFamily
    look_up: bool
    size: int  # rows the call may carry
    since: float  # when its first row was queued (clock seconds)
    ops: list[OpRecord] = field(default_factory=list)

    @property
    def action(self) -> Action:
        return self.ops[0].spec.action


class CallQueue:
    """The claimed rows of one run, grouped into calls. Times are clock seconds."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._open: dict[Hashable, Call] = {}  # calls that are not full, by batch key
        self._full: deque[Call] = deque()  # full calls, waiting for a free slot
        self.rows = 0  # rows queued, in either
        # A claim cut short by the queue's room left ready rows behind.
        self.backlog = False
        # Rows not final per action, and those of them queued or in a call now: the rest are
        # still to come (waiting for a dependency or a retry), and may yet join a call.
        self._open_by_action: Counter[Action] = Counter()
        self._queued_by_action: Counter[Action] = Counter()
        self._sending_by_action: Counter[Action] = Counter()

    def __bool__(self) -> bool:
        return self.rows > 0

    @property
    def has_full(self) -> bool:
        """Whether a full call waits for a free slot."""
        return bool(self._full)

    def add(self, op: OpRecord, roles: RoleBook) -> None:
        """Put a claimed row with the rows that may share its call."""
        family = family_of(op.spec.action)
        look_up = op.state is OpState.UNKNOWN
        if look_up:
            key: Hashable = ("look_up", op.spec.action)
            size = family.look_up_size if family.checkable else 1
        else:
            key = ("send", op.spec.action, family.batch_key(op, roles))
            size = family.batch_size
        call = self._open.get(key)
        if call is None:
            call = self._open[key] = Call(family, look_up, size, self._clock())
        call.ops.append(op)
        self.rows += 1
        self._queued_by_action[op.spec.action] += 1
        if len(call.ops) >= size:
            self._full.append(self._open.pop(key))

    def due(self, *, in_flight: int, slots: int, most: int | None = None,
            settled: bool = True) -> list[Call]:
        """The calls to start now, at most `slots - in_flight` (and at most `most`): full ones
        first, then the others that have lingered, or any when nothing is in flight (only when
        `settled`: the claims that a finished call may have made possible are done). They
        leave the queue."""
        free = slots - in_flight if most is None else min(most, slots - in_flight)
        started: list[Call] = []
        while self._full and len(started) < free:
            started.append(self._full.popleft())
        if self._full:
            return self._leaving(started)  # every slot is taken: the rest wait for a call
        # Rows left unclaimed for want of room may fill the calls that are not full, once the
        # full ones have made room; with none of those, the lingering calls go as they are.
        waiting_for_more = self.backlog and bool(started)
        now = self._clock()
        for key, call in list(self._open.items()):
            if len(started) >= free:
                break
            lingered = now >= self._lingers_until(call) and not waiting_for_more
            if (settled and in_flight + len(started) == 0) or lingered:
                started.append(self._open.pop(key))
        return self._leaving(started)

    def next_due(self, *, in_flight: int, slots: int) -> float | None:
        """When the first call that is not full stops waiting (None: no such call, or no free
        slot to start it in)."""
        if self._full or not self._open or in_flight >= slots:
            return None
        return min(self._lingers_until(call) for call in self._open.values())

    def finished(self, call: Call) -> None:
        """A call started by `due` is over."""
        self._sending_by_action[call.action] -= len(call.ops)

    def drain(self) -> list[OpRecord]:
        """Stopping: every queued row, the queue left empty."""
        queued = [op for call in (*self._full, *self._open.values()) for op in call.ops]
        self._full.clear()
        self._open.clear()
        self._queued_by_action.clear()
        self.rows = 0
        return queued

    def count_open(self, by_action: Counter[Action]) -> None:
        """The job's rows not final, per action (as the store counts them)."""
        self._open_by_action = by_action

    def row_changed(self, old: OpRecord, new: OpRecord) -> None:
        if new.state in FINAL_STATES and old.state not in FINAL_STATES:
            self._open_by_action[new.spec.action] -= 1

    def _leaving(self, calls: list[Call]) -> list[Call]:
        for call in calls:
            self.rows -= len(call.ops)
            self._queued_by_action[call.action] -= len(call.ops)
            self._sending_by_action[call.action] += len(call.ops)
        return calls

    def _lingers_until(self, call: Call) -> float:
        """When a call that is not full stops waiting for more rows: after LINGER; for a family
        whose rows may all share calls, once none of its rows is still to come (at once if none
        is), but no later than GATHER_LIMIT."""
        if not call.family.gathers:
            return call.since + LINGER
        action = call.action
        to_come = (self._open_by_action[action] - self._queued_by_action[action]
                   - self._sending_by_action[action])
        return call.since + GATHER_LIMIT if to_come > 0 else call.since

"""Which calls are due: full ones first, the rest after a linger or when nothing is in flight,
and account invites waiting for the ones still to come (times on a hand-moved clock)."""

from __future__ import annotations

from collections import Counter

from bulkops.callqueue import GATHER_LIMIT, LINGER, CallQueue
from bulkops.model import Action, OpRecord, OpSpec, OpState
from bulkops.roles import RoleBook
from bulkops.wixwire import Role

ROLES = RoleBook([Role("7084512206941830272", "Website Manager", None)])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def member(n: int, state: OpState = OpState.PENDING) -> OpRecord:
    spec = OpSpec(line=n + 2, key=f"m{n}", action=Action.ACCOUNT_INVITE,
                  email=f"m{n}@example.com", roles=("Website Manager",))
    return OpRecord(op_id=n, job_id="j", seq=n, spec=spec, state=state)


def site(n: int) -> OpRecord:
    spec = OpSpec(line=n + 2, key=f"s{n}", action=Action.CREATE_SITE, site_name=f"S{n}")
    return OpRecord(op_id=100 + n, job_id="j", seq=100 + n, spec=spec)


def test_full_calls_go_first_and_only_into_free_slots() -> None:
    queue = CallQueue(Clock())
    for n in range(3):
        queue.add(site(n), ROLES)  # a create fills its call alone
    calls = queue.due(in_flight=6, slots=8)
    assert [len(call.ops) for call in calls] == [1, 1]
    assert queue.rows == 1 and queue.next_due(in_flight=8, slots=8) is None


def test_a_call_that_is_not_full_goes_at_once_when_nothing_is_in_flight() -> None:
    queue = CallQueue(Clock())
    queue.add(member(0), ROLES)
    [call] = queue.due(in_flight=0, slots=8)
    assert [op.spec.key for op in call.ops] == ["m0"] and not queue


def test_account_invites_wait_for_those_still_to_come_up_to_the_limit() -> None:
    clock = Clock()
    queue = CallQueue(clock)
    queue.count_open(Counter({Action.ACCOUNT_INVITE: 3}))
    queue.add(member(0), ROLES)
    assert queue.due(in_flight=1, slots=8) == []
    assert queue.next_due(in_flight=1, slots=8) == clock.now + GATHER_LIMIT
    clock.now += LINGER * 2  # lingering alone would have sent it by now
    assert queue.due(in_flight=1, slots=8) == []
    queue.add(member(1), ROLES)
    queue.add(member(2), ROLES)  # the last one to come: the call goes
    [call] = queue.due(in_flight=1, slots=8)
    assert len(call.ops) == 3


def test_a_call_of_invites_one_of_which_failed_upstream_goes_at_the_gather_limit() -> None:
    clock = Clock()
    queue = CallQueue(clock)
    queue.count_open(Counter({Action.ACCOUNT_INVITE: 2}))  # m1 will never come
    queue.add(member(0), ROLES)
    clock.now += GATHER_LIMIT
    [call] = queue.due(in_flight=1, slots=8)
    assert [op.spec.key for op in call.ops] == ["m0"]


def test_fifty_account_invites_fill_a_call_and_the_next_one_opens() -> None:
    queue = CallQueue(Clock())
    queue.count_open(Counter({Action.ACCOUNT_INVITE: 70}))  # 10 more still to come
    for n in range(60):
        queue.add(member(n), ROLES)
    [full] = queue.due(in_flight=1, slots=8)
    assert len(full.ops) == 50 and queue.rows == 10
    for n in range(60, 70):
        queue.add(member(n), ROLES)
    [rest] = queue.due(in_flight=1, slots=8)  # none left to come: it goes as it is
    assert len(rest.ops) == 20


def test_unknown_rows_of_one_action_share_a_look_up() -> None:
    queue = CallQueue(Clock())
    for n in range(3):
        queue.add(OpRecord(op_id=n, job_id="j", seq=n, state=OpState.UNKNOWN,
                           spec=site(n).spec), ROLES)
    [call] = queue.due(in_flight=0, slots=8)
    assert call.look_up and len(call.ops) == 3


def test_drain_empties_the_queue() -> None:
    queue = CallQueue(Clock())
    queue.add(member(0), ROLES)
    queue.add(site(0), ROLES)
    assert {op.spec.key for op in queue.drain()} == {"m0", "s0"}
    assert not queue and queue.due(in_flight=0, slots=8) == []

"""An account's request budget shared by processes through the database (SQLite file and
PostgreSQL): two stores opened on one database stand for two processes.

Each keeps its own adaptive budget at the account's full rate; together they must still keep
to that rate, and a 429 one of them sees must slow the other.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import pytest
from windows import busiest_second

from bulkops.ratelimit import AdaptiveBudget
from bulkops.settings import parse_rate
from bulkops.sharedbudget import SharedBudget
from bulkops.store import SqlStore, open_store

RATE = 40.0  # requests per second, for the account
SCOPE = "account-scope"


@pytest.fixture
async def second_store(store: SqlStore, store_url: str) -> AsyncIterator[SqlStore]:
    """Another connection to the same database, as another process would open it."""
    other = await open_store(store_url)
    try:
        yield other
    finally:
        await other.close()


def budget(store: SqlStore) -> SharedBudget:
    return SharedBudget(AdaptiveBudget(parse_rate(f"{RATE}/s")), store, SCOPE)


async def test_two_processes_together_keep_to_the_accounts_rate(
    store: SqlStore, second_store: SqlStore,
) -> None:
    """Each process could send at the full rate alone; side by side, every request of both
    in any second stays within the rate (10% and one request of slack), and together they
    still use most of it."""
    sent: list[float] = []
    seconds = 2.0

    async def requests(shared: SharedBudget, until: float) -> None:
        while time.time() < until:
            await shared.acquire()
            sent.append(time.time())

    until = time.time() + seconds
    async with anyio.create_task_group() as tg:
        for shared in (budget(store), budget(second_store)):
            for _ in range(3):  # requests in flight per process
                tg.start_soon(requests, shared, until)

    assert busiest_second(sent) <= RATE * 1.1 + 1
    assert len(sent) >= RATE * seconds * 0.75


async def test_a_429_one_process_sees_slows_the_other_at_its_next_take(
    store: SqlStore, second_store: SqlStore,
) -> None:
    """Not at once (nothing is read per request), but as soon as each takes turns again: the
    other's rate is cut as its own 429 would cut it, and its run still counts only the 429s
    it got itself."""
    first, second = budget(store), budget(second_store)
    await first.acquire()
    await second.acquire()
    first.on_response(429, None)
    assert second.snapshot().current_per_second == RATE
    # Turns are taken a few at a time (8 at first): the first process writes its 429 with its
    # next take, the second reads it with its own next take.
    for _ in range(10):
        await first.acquire()
        first.on_response(200, None)  # admitted: a hold after a 429 ends with its probe
    slowed = False
    for _ in range(10):
        await second.acquire()
        if second.snapshot().current_per_second < RATE:
            slowed = True
            break
        second.on_response(200, None)
    assert slowed
    assert (first.snapshot().throttled, second.snapshot().throttled) == (1, 0)

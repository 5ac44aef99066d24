"""What a run does before its first write: wait for Wix's first answer, check the rows still to
do against Wix (`precheck`), and record the rows the checks settle: creates `--if-exists adopt`
takes an existing site for, and connect_domain rows whose domain is connected as asked already.
Both succeed with 0 attempts and a note: nothing was sent for them.

With domain rows still to do, the checks first probe the key's Domains permission (`precheck`):
a refusal is one line and exit 2 (ConfigError), before any other domain read.

Wix unreachable at the start is an outage like any other: the first read (the roles call) is
tried again with back-off until it answers, a stop is asked for, the deadline comes, or Wix has
been unreachable for --outage-limit. The rows are only checked once Wix has answered; otherwise
the engine starts with `unreachable_since` and stops at once with the outage's reason (exit 3,
every row as it was), or as the stop or deadline says.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Mapping
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import anyio

from bulkops.actions.domains import setup_details
from bulkops.domaincheck import Settled
from bulkops.errors import JobFileError, WixApiError, WixError
from bulkops.identity import scope_of
from bulkops.model import Action, JobInfo, OpState
from bulkops.precheck import Candidate, Findings, check_rows, refused_credentials
from bulkops.retry import ReadRetry, Verdict, backoff_delay, classify
from bulkops.roles import RoleBook
from bulkops.settings import Settings
from bulkops.stopping import Cut, bounded
from bulkops.store.base import Store
from bulkops.wix import Role, WixClient

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_PAUSE = 30.0  # seconds between two tries of the first read, at most
SAVE_BATCH = 500  # adopted rows recorded per transaction


@dataclass(frozen=True)
class Ready:
    """The outcome of the checks. `roles`: the role book read (None: no read was made, or Wix
    did not answer); `unreachable_since`: Wix did not answer before a stop, the deadline or
    --outage-limit, and was unreachable since then (unix seconds); `adopted`: rows recorded
    as succeeded without a request (an existing site adopted, a domain connected as asked)."""

    roles: RoleBook | None = None
    unreachable_since: float | None = None
    adopted: int = 0


async def check_before_sending(
    store: Store, job: JobInfo, client: WixClient, settings: Settings, stop: anyio.Event,
    *, clock: Callable[[], float] = time.time, rand: Callable[[], float] = random.random,
) -> Ready:
    """Check the job's rows still to do (those it owns and that are not final) with read calls
    only. Raises JobFileError listing every problem (nothing sent, nothing changed), ConfigError
    when Wix refuses the key (`domaincheck.DomainsRefused` when it refuses the key's domain reads:
    the "Manage Domains" permission), a WixError when a read failed for good. With no row to
    check, no read is made."""

    async def rows(actions: Collection[Action] | None = None) -> AsyncGenerator[Candidate, None]:
        # Only the rows still to do are read (`Store.open_rows`); the second pass, only those
        # of the actions it judges.
        async with aclosing(store.open_rows(job.job_id, actions=actions)) as still_to_do:
            async for op in still_to_do:
                yield Candidate(op.spec, op)

    if not await store.has_open_rows(job.job_id):
        return Ready()
    roles, down_since = await first_answer(client, stop, settings, clock=clock, rand=rand)
    if roles is None:
        return Ready(unreachable_since=down_since)
    scope = scope_of(job.account_id, job.base_url)

    async def produced(site_ids: Collection[str]) -> set[str]:
        return await store.produced_sites(scope, site_ids)

    async def check() -> Findings:
        return await check_rows(rows, client, roles, account_id=settings.account_id,
                                if_exists=settings.if_exists, produced=produced,
                                retry=settings.reads, of_actions=rows)

    findings = await _unless_stopped(check, stop)
    if findings is None:  # a signal: the engine ends the run as interrupted, nothing sent
        return Ready()
    if findings.problems:
        raise JobFileError(job.path, findings.problems)
    settled = [_Done(a.row, a.site.id, a.note, "op_adopted") for a in findings.adoptions]
    for found in findings.settled:
        details, note = await _registrar_records(client, found, settings.reads)
        settled.append(_Done(found.row, found.site_id, note, "op_settled", details))
    await _record(store, settled)
    return Ready(roles=roles, adopted=len(settled))


@dataclass(frozen=True)
class _Done:
    """A row the checks settled: its result (the site) and how it was established."""

    row: Candidate
    site_id: str
    note: str
    event: str  # the log event that tells it
    details: Mapping[str, Any] | None = None


async def _registrar_records(
    client: WixClient, found: Settled, retry: ReadRetry
) -> tuple[Mapping[str, Any] | None, str]:
    """A domain connected as asked before the run: its report still says what the client
    must set at their registrar (Setup Info, one read), as a connect the run makes does."""
    details, missing = await setup_details(client, found.domain, retry)
    return details, found.note if missing is None else f"{found.note}; {missing}"


async def _record(store: Store, settled: list[_Done]) -> None:
    """Settled rows succeed with their site, 0 attempts: nothing was sent for them."""
    for start in range(0, len(settled), SAVE_BATCH):
        batch = settled[start : start + SAVE_BATCH]
        done = []
        for found in batch:
            op = found.row.op
            assert op is not None  # rows of a stored job always have their operation
            done.append(replace(op, state=OpState.SUCCEEDED, site_id=found.site_id,
                                details=found.details or op.details, error=None,
                                note=found.note, not_before=None, lease_owner=None))
            log.info(found.event, extra={"job": op.job_id, "line": op.spec.line,
                                         "op": op.spec.key, "site": found.site_id})
        await store.save(done)


async def first_answer(
    client: WixClient, stop: anyio.Event, settings: Settings, *,
    clock: Callable[[], float] = time.time, rand: Callable[[], float] = random.random,
) -> tuple[RoleBook | None, float | None]:
    """The account's role book, waiting for Wix as for any outage: (book, None) once it
    answers; (None, since when it was unreachable) when a stop was asked for, the deadline came
    or Wix stayed unreachable for --outage-limit. Each try is bounded by all three.

    Raises ConfigError for a refused key (401/403), the WixApiError of any other answer that
    no retry fixes."""
    down_since = clock()
    attempt = 0
    while True:
        give_up_at = down_since + settings.outage_limit
        if settings.deadline is not None:
            give_up_at = min(give_up_at, settings.deadline)
        roles, failure = await _bounded(client.list_roles, stop, give_up_at - clock())
        if roles is not None:
            return RoleBook(roles), None
        if isinstance(failure, WixApiError):
            if failure.status in (401, 403):
                raise refused_credentials(failure) from failure
            if classify(failure) is Verdict.FINAL:
                raise failure
        if stop.is_set() or clock() >= give_up_at:
            return None, down_since
        attempt += 1
        log.warning("first_read_failed", extra={"error": str(failure), "attempt": attempt})
        pause = min(backoff_delay(attempt, base=settings.backoff_base, rand=rand), MAX_PAUSE,
                    max(0.0, give_up_at - clock()))
        with anyio.move_on_after(pause):
            await stop.wait()


async def _unless_stopped(fn: Callable[[], Awaitable[T]], stop: anyio.Event) -> T | None:
    """`fn()`'s result, or None when `stop` was set first. Its errors are raised as they are."""
    outcome = await bounded(fn, stop)
    return None if isinstance(outcome, Cut) else outcome


async def _bounded(
    fn: Callable[[], Awaitable[list[Role]]], stop: anyio.Event, seconds: float
) -> tuple[list[Role] | None, BaseException | None]:
    """Run `fn` for at most `seconds`, or until `stop` is set: (its result, None), or (None,
    the WixError it raised), or (None, TimeoutError) when it was cut short."""
    try:
        outcome = await bounded(fn, stop, seconds)
    except WixError as exc:
        return None, exc
    return (None, TimeoutError()) if isinstance(outcome, Cut) else (outcome, None)

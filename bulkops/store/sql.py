"""`SqlStore`: the `Store` port on SQLAlchemy Core, for SQLite files and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import Select, Table, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bulkops.errors import JobFileError, RowError, StoreError
from bulkops.identity import Holder, KnownOp, TakeOver, referenced_keys, scope_of
from bulkops.locations import sqlite_name_problem
from bulkops.model import (
    Action,
    JobInfo,
    JobOverview,
    JobSource,
    JobState,
    OpRecord,
    OpSpec,
    OpState,
    RunRecord,
    Turns,
)
from bulkops.store import checkrows, history, sharing, statements, takeover
from bulkops.store.adding import (
    ID_CHUNK,
    conflicts,
    conflicts_of,
    existing_ops,
    insert_rows,
    scope_used,
    site_ids,
)
from bulkops.store.direct import Busy, DirectSaver
from bulkops.store.engine import checkpoint_soon, create_engine, loader, writer
from bulkops.store.failures import store_errors
from bulkops.store.history import JobListing, PruneResult
from bulkops.store.migrate import foreign_tables, upgrade_to_head
from bulkops.store.rows import (
    SAVE_PARAMS,
    job_info,
    op_record,
    row_record,
    save_params_of,
    save_values,
)
from bulkops.store.tables import (
    OWNER_ROW_COLUMNS,
    job_rows,
    job_workers,
    jobs,
    op_aliases,
    ops,
    row_value,
)
from bulkops.store.urls import describe, normalise_url, sqlite_path

Clock = Callable[[], float]

PAGE_SIZE = 1000  # rows per page of iter_ops
OPEN_ATTEMPTS = 6  # tries to open a database another process is creating (0.1 s, doubling)

# The job states a worker takes up: a job stopped early (breaker, deadline) waits for a person.
WORKER_STATES = (JobState.PENDING.value, JobState.RUNNING.value, JobState.INTERRUPTED.value)


async def open_store(url: str, *, clock: Clock = time.time) -> SqlStore:
    """Open (creating if needed) the checkpoint database at `url` and upgrade its schema.

    `url` is a SQLAlchemy URL or a plain file path (SQLite). `clock` stamps created_at and
    updated_at; the scheduling times (`now` of claim_ready) are always passed in by the caller.
    """
    target = normalise_url(url)
    path = sqlite_path(target)
    if path is not None:
        _check_sqlite_location(path)
    engine = create_engine(target)
    try:
        for attempt in range(OPEN_ATTEMPTS):
            try:
                async with store_errors(f"cannot open database {describe(target)}", target):
                    await upgrade_to_head(engine)
                break
            except StoreError as exc:
                # SQLite: switching a new file to WAL while another process migrates it can be
                # refused at once ("database is locked") instead of waiting for busy_timeout.
                if "locked" not in str(exc) or attempt == OPEN_ATTEMPTS - 1:
                    raise
                await engine.dispose()
                await anyio.sleep(0.1 * 2**attempt)
    except BaseException:
        await engine.dispose()
        raise
    return SqlStore(engine, clock=clock)


def _check_sqlite_location(path: Path) -> None:
    """Raises StoreError for a file that cannot be a store: in no directory, a directory, a
    name too long for the file system or for SQLite's files beside it, another program's
    database."""
    try:
        # SQLite would create the file, but a missing directory is almost always a typo.
        if not path.parent.is_dir():
            raise StoreError(
                f"cannot open database {path}: directory {path.parent} does not exist")
        problem = sqlite_name_problem(path)
        if problem is not None:
            raise StoreError(f"cannot open database {path}: {problem}")
        if path.is_dir():
            raise StoreError(f"cannot open database {path}: it is a directory")
        others = foreign_tables(path)
    except OSError as exc:
        raise StoreError(f"cannot open database {path}: {exc.strerror}") from None
    if others:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise StoreError(f"cannot open database {path}: it is another program's database "
                         f"(tables {shown}), left untouched: point --db at a bulkops "
                         "database, or at a new file")


def _lease_params(job_id: str, owner: str, now: float, lease_seconds: float) -> dict[str, Any]:
    """The bind parameters of the lease statements (`takeover`, `sharing`)."""
    return {"b_job_id": job_id, "b_owner": owner, "b_now": now, "b_until": now + lease_seconds}


class SqlStore:
    """The checkpoint store. Every method is one short transaction (or one per page)."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = time.time) -> None:
        self._engine = engine
        self._writer = writer(engine)
        self._loader = loader(engine)
        self._checkpoints: list[threading.Thread] = []  # `checkpoint_soon`'s, joined at close
        self._clock = clock
        # This process's write transactions, one at a time: a save on a SQLite file runs on
        # the loop's thread (`direct`) and must never wait for a lock one of them holds.
        self._local_writes = anyio.Lock()
        self._file = sqlite_path(engine.url)
        self._direct: DirectSaver | None = None

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    def __repr__(self) -> str:
        return f"SqlStore({describe(self._engine.url)!r})"

    # -- transactions ---------------------------------------------------------------------

    @asynccontextmanager
    async def _write(
        self, action: str, engine: AsyncEngine | None = None,
    ) -> AsyncIterator[AsyncConnection]:
        async with (self._local_writes, store_errors(action, self._engine.url),
                    (engine or self._writer).begin() as conn):
            yield conn

    @asynccontextmanager
    async def _read(self, action: str) -> AsyncIterator[AsyncConnection]:
        async with store_errors(action, self._engine.url), self._engine.connect() as conn:
            yield conn

    # -- jobs -----------------------------------------------------------------------------

    async def add_job(
        self, job: JobSource, ops: Iterable[OpSpec], *, owner: str | None = None,
        lease_seconds: float = 0.0,
    ) -> tuple[JobInfo, bool]:
        now = self._clock()
        leased = owner is not None
        action = f"cannot store job {job.job_id}"
        scope = scope_of(job.account_id, job.base_url)
        adding_with = await self._adding_engine(action, scope)
        async with self._write(action, adding_with) as conn:
            insert_job = statements.insert_job_if_absent(conn.dialect.name)
            values = {
                "job_id": job.job_id,
                "path": job.path,
                "format": job.format,
                "total": job.total,
                "account_id": job.account_id,
                "base_url": job.base_url,
                "state": JobState.PENDING.value,
                "created_at": now,
                "updated_at": now,
                # A new job is stored already held, so no other process can start it first.
                "lease_owner": owner,
                "lease_expires_at": now + lease_seconds if leased else None,
                "lease_since": now if leased else None,
            }
            if (await conn.execute(insert_job, values)).rowcount == 0:
                existing = await self._job_row(conn, job.job_id)
                if existing is None:  # only possible if it vanished between the two statements
                    raise StoreError(f"job {job.job_id} exists but cannot be read")
                if existing.pruned_at is None or existing.held_at(now):
                    return existing, False
                # Pruned: its file is run again, so its rows come back (their done ops stayed).
                await conn.execute(
                    update(jobs).where(jobs.c.job_id == job.job_id).values(
                        pruned_at=None, lease_owner=owner, lease_since=values["lease_since"],
                        lease_expires_at=values["lease_expires_at"], updated_at=now,
                    )
                )
            fresh = await insert_rows(conn, job.job_id, scope, ops, job.total, now)
            errors = [] if fresh else await conflicts(conn, job.job_id, scope, now=now)
            if errors:
                raise JobFileError(job.path, errors)  # rolls the whole job back
        if adding_with is self._loader and self._file is not None:
            # Its commit left the log to copy back (`engine.loader`): the run's first reads
            # need not wait for that.
            self._checkpoints.append(checkpoint_soon(self._file))
        return JobInfo(
            job_id=job.job_id,
            path=job.path,
            format=job.format,
            total=job.total,
            state=JobState.PENDING,
            created_at=now,
            updated_at=now,
            account_id=job.account_id,
            base_url=job.base_url,
            lease_owner=owner,
            lease_since=now if leased else None,
            lease_expires_at=now + lease_seconds if leased else None,
        ), True

    async def _adding_engine(self, action: str, scope: str) -> AsyncEngine:
        """The engine a job is added with: on SQLite, to a scope with no operation yet, the
        `loader` (every row makes a new op: its references are to rows it writes itself).
        Looked at before the transaction, as SQLite switches foreign keys only outside one;
        should another process add to the scope meanwhile, `insert_rows` sees it and links
        the rows to that process's ops by the same statements, made from rows it reads."""
        if self._engine.dialect.name != "sqlite":
            return self._writer
        async with self._read(action) as conn:
            return self._writer if await scope_used(conn, scope) else self._loader

    async def conflicts(self, job: JobInfo) -> list[RowError]:
        now = self._clock()
        async with self._read(f"cannot read job {job.job_id}") as conn:
            return await conflicts(conn, job.job_id, scope_of(job.account_id, job.base_url),
                                   now=now)

    async def conflicts_of(self, scope: str, specs: Iterable[OpSpec]) -> list[RowError]:
        async with self._read("cannot read operations") as conn:
            return await conflicts_of(conn, scope, specs, now=self._clock())

    async def take_over(self, job_id: str, *, now: float, rerun: bool) -> TakeOver:
        params = {"b_job_id": job_id, "b_now": now}
        async with self._write(f"cannot take over operations of job {job_id}") as conn:
            # Adopting and counting what is held elsewhere join every row of the job to its
            # op (seconds for a million rows); a job that owns the ops of all its rows has
            # neither, which the index of ops tells at once (as `counts` reads it).
            others = not await _owns_every_row(conn, job_id)
            adopted = 0
            if others:
                await conn.execute(takeover.keep_owner_rows(rerun=rerun), params)
                adopted = (await conn.execute(takeover.adopt(rerun=rerun), params)).rowcount
            rearmed = 0
            if rerun:
                for maybe_applied in (False, True):
                    rearm = takeover.rearm(maybe_applied=maybe_applied)
                    rearmed += (await conn.execute(rearm, params)).rowcount
            held = 0
            if others:
                held = (await conn.execute(takeover.held_elsewhere(), params)).scalar() or 0
        return TakeOver(adopted=adopted, rearmed=rearmed, held_elsewhere=held)

    async def cancel_job(self, job_id: str) -> int:
        params = {"b_job_id": job_id, "b_now": self._clock()}
        async with self._write(f"cannot cancel job {job_id}") as conn:
            cancelled = 0
            for in_flight in (False, True):
                cancelled += (await conn.execute(takeover.cancel(in_flight=in_flight),
                                                 params)).rowcount
            await conn.execute(
                update(jobs).where(jobs.c.job_id == job_id).values(
                    state=JobState.CANCELLED.value, stop_reason="cancelled",
                    updated_at=params["b_now"],
                )
            )
        return cancelled

    async def known_ops(self, scope: str | None, keys: Iterable[str]) -> dict[str, KnownOp]:
        wanted = sorted(set(keys))
        found: dict[str, KnownOp] = {}
        async with self._read("cannot read operations") as conn:
            for name, table in (("op", ops), ("alias", op_aliases)):
                rest = [key for key in wanted if key not in found]
                for start in range(0, len(rest), ID_CHUNK):
                    query = _known(name, table, scope, rest[start : start + ID_CHUNK])
                    for row in (await conn.execute(query)).mappings():
                        found[row["name"]] = KnownOp(
                            key=row["name"], action=row["action"],
                            state=OpState(row["state"]), job_id=row["job_id"],
                            line=row["line"], site_id=row["site_id"],
                        )
        return found

    async def prior_ops(self, scope: str, specs: Sequence[OpSpec]) -> dict[str, OpRecord]:
        async with self._read("cannot read operations") as conn:
            named = await existing_ops(conn, scope, specs)
            by_id: dict[int, OpRecord] = {}
            wanted = sorted(set(named.values()))
            for start in range(0, len(wanted), ID_CHUNK):
                query = select(ops).where(ops.c.op_id.in_(wanted[start : start + ID_CHUNK]))
                for row in (await conn.execute(query)).mappings():
                    by_id[row["op_id"]] = op_record(row)
        return {key: by_id[op_id] for key, op_id in named.items() if op_id in by_id}

    async def produced_sites(self, scope: str, site_ids: Iterable[str]) -> set[str]:
        wanted = sorted({site.lower() for site in site_ids})
        found: set[str] = set()
        produced = func.lower(ops.c.site_id)
        async with self._read("cannot read operations") as conn:
            for start in range(0, len(wanted), ID_CHUNK):
                query = select(produced).where(
                    ops.c.scope == scope,
                    ops.c.state == OpState.SUCCEEDED.value,
                    produced.in_(wanted[start : start + ID_CHUNK]),
                )
                found.update((await conn.execute(query)).scalars().all())
        return found

    # -- runs and the morning after --------------------------------------------------------

    async def start_run(self, record: RunRecord, owner: str) -> RunRecord:
        async with self._write(f"cannot record a run of job {record.job_id}") as conn:
            run_id = (await conn.execute(history.insert_run(record, owner))).scalar_one()
        return dataclasses.replace(record, run_id=run_id)

    async def save_run(self, record: RunRecord) -> None:
        async with self._write(f"cannot record a run of job {record.job_id}") as conn:
            await conn.execute(history.update_run(record))

    async def overview(self, job: JobInfo) -> JobOverview:
        async with self._read(f"cannot read job {job.job_id}") as conn:
            actions = (await conn.execute(history.counts_by_action(job.job_id))).all()
            found = (await conn.execute(history.runs_of(job.job_id))).mappings().all()
            errors = (await conn.execute(history.top_errors(job.job_id))).all()
        per_action = history.by_action(list(actions))
        counts = {state: sum(c[state] for c in per_action.values()) for state in OpState}
        return JobOverview(
            job=job,
            counts=counts,
            by_action=per_action,
            runs=tuple(history.run_record(row) for row in found),
            top_errors=history.error_counts(list(errors)),
        )

    async def list_jobs(self, *, limit: int | None = None) -> list[JobListing]:
        query = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.job_id.desc())
        if limit is not None:
            query = query.limit(limit)
        async with self._read("cannot read jobs") as conn:
            found = (await conn.execute(query)).mappings().all()
            owned: dict[str, dict[OpState, int]] = {}
            for job_id, state, count in (await conn.execute(history.owned_counts())).all():
                owned.setdefault(job_id, {})[OpState(state)] = count
            counts = {row["job_id"]: await _row_counts(
                conn, row["job_id"], row["total"], row["pruned_at"], owned.get(row["job_id"], {})
            ) for row in found}
            spans = {row[0]: row[1:] for row in (await conn.execute(history.run_spans())).all()}
        listing = []
        for row in found:
            started, finished, run_count = spans.get(row["job_id"], (None, None, 0))
            listing.append(history.JobListing(
                job=job_info(row),
                counts=counts[row["job_id"]],
                started_at=started,
                finished_at=finished,
                runs=run_count,
                pruned_at=row["pruned_at"],
            ))
        return listing

    async def prune(self, *, before: float) -> PruneResult:
        now = self._clock()
        async with self._write("cannot prune old jobs") as conn:
            job_ids = list((await conn.execute(history.prunable(before, now))).scalars().all())
            if not job_ids:
                return PruneResult(jobs=0, rows=0, ops=0)
            rows = ops_gone = 0
            for start in range(0, len(job_ids), ID_CHUNK):
                chunk = job_ids[start : start + ID_CHUNK]
                rows += (await conn.execute(history.delete_rows(chunk))).rowcount
                ops_gone += (await conn.execute(history.forget_ops(chunk))).rowcount
                await conn.execute(history.mark_pruned(chunk, now))
        return PruneResult(jobs=len(job_ids), rows=rows, ops=ops_gone)

    # -- the job lease ----------------------------------------------------------------------

    async def acquire_job(
        self, job_id: str, owner: str, *, now: float, lease_seconds: float
    ) -> Holder | None:
        params = _lease_params(job_id, owner, now, lease_seconds)
        async with self._write(f"cannot lease job {job_id}") as conn:
            if (await conn.execute(takeover.acquire(), params)).rowcount == 1:
                return None
            return await self._holder(conn, job_id)

    async def renew_job(self, job_id: str, owner: str, *, now: float,
                        lease_seconds: float) -> bool:
        params = _lease_params(job_id, owner, now, lease_seconds)
        async with self._write(f"cannot renew the lease of job {job_id}") as conn:
            return bool((await conn.execute(takeover.renew(), params)).rowcount)

    async def release_job(self, job_id: str, owner: str) -> None:
        async with self._write(f"cannot release job {job_id}") as conn:
            await conn.execute(takeover.release(), {"b_job_id": job_id, "b_owner": owner})

    async def join_job(self, job_id: str, owner: str, *, now: float,
                       lease_seconds: float) -> Holder | None:
        params = _lease_params(job_id, owner, now, lease_seconds)
        async with self._write(f"cannot join job {job_id}") as conn:
            if (await conn.execute(sharing.share_lease(), params)).rowcount == 1:
                await conn.execute(sharing.remove_worker(), params)
                await conn.execute(sharing.add_worker(), params)
                if (await conn.execute(sharing.live_workers(), params)).scalar_one() == 1:
                    # The first worker on the job: rows a process that held it alone left
                    # leased (it died) are taken back, those in flight to be reconciled.
                    await conn.execute(sharing.take_back_orphans(), params)
                return None
            return await self._holder(conn, job_id)

    async def _holder(self, conn: AsyncConnection, job_id: str) -> Holder:
        """Who holds the job's lease. Raises StoreError for an unknown job."""
        job = await self._job_row(conn, job_id)
        if job is None:
            raise StoreError(f"no job {job_id} in the database")
        return Holder(job.lease_owner or "?", job.lease_since, job.lease_expires_at)

    async def renew_worker(self, job_id: str, owner: str, *, now: float,
                           lease_seconds: float) -> bool:
        params = _lease_params(job_id, owner, now, lease_seconds)
        async with self._write(f"cannot renew this worker's turn on job {job_id}") as conn:
            if (await conn.execute(sharing.share_lease(), params)).rowcount == 0:
                return False  # a `run` holds the job: this worker's turn lapsed before
            return bool((await conn.execute(sharing.renew_worker(), params)).rowcount)

    async def leave_job(self, job_id: str, owner: str, *, now: float) -> bool:
        params = {"b_job_id": job_id, "b_owner": owner, "b_now": now}
        async with self._write(f"cannot leave job {job_id}") as conn:
            # The job's row first: a worker joining now waits for this to end, or this for it.
            await conn.execute(select(jobs.c.job_id).where(jobs.c.job_id == job_id)
                               .with_for_update())
            await conn.execute(sharing.remove_worker(), params)
            await conn.execute(
                update(ops)
                .where(ops.c.job_id == job_id, ops.c.lease_owner == owner,
                       ops.c.state != OpState.RUNNING.value)
                .values(lease_owner=None, lease_expires_at=None, updated_at=now)
            )
            return bool((await conn.execute(sharing.release_if_last(), params)).rowcount)

    async def take_back_from_dead_workers(self, job_id: str, *, now: float) -> int:
        params = {"b_job_id": job_id, "b_now": now}
        async with self._read(f"cannot read the workers of job {job_id}") as conn:
            if (await conn.execute(sharing.dead_workers(), params)).first() is None:
                return 0  # the common case: no write, no lock
        async with self._write(f"cannot take back operations of job {job_id}") as conn:
            dead = [str(owner) for owner in
                    (await conn.execute(sharing.dead_workers(), params)).scalars()]
            if not dead:
                return 0
            taken = await conn.execute(sharing.take_back(dead), params)
            await conn.execute(sharing.forget_workers(dead), params)
        return taken.rowcount

    async def held_by_others(self, job_id: str, owner: str) -> bool:
        params = {"b_job_id": job_id, "b_owner": owner}
        async with self._read(f"cannot read job {job_id}") as conn:
            return (await conn.execute(sharing.held_by_others(), params)).first() is not None

    async def take_turns(self, scope: str, *, count: int, rate: float, now: float,
                         throttled_at: float = 0.0) -> Turns:
        if count < 1 or not rate > 0:
            raise ValueError(f"take at least one turn at a positive rate, not {count} at {rate}")
        span = count / rate
        params = {"b_scope": scope, "b_now": now, "b_span": span, "b_throttled_at": throttled_at}
        taken: tuple[float, float] | None = None
        if self._file is not None and not self._local_writes.locked():
            # On the loop's thread, with nothing awaited: no other write of this process can
            # start meanwhile, and the requests waiting for these turns are not held up a turn
            # of the loop (taking the lock would yield to it).
            with suppress(Busy):
                taken = self._direct_saver().take_turns(params)
        if taken is None:
            async with self._write("cannot take turns from the account's request budget") as conn:
                await conn.execute(sharing.insert_budget_if_absent(conn.dialect.name), params)
                taken = (await conn.execute(sharing.take_turns(), params)).one()
        next_at, latest = taken
        return Turns(first_at=float(next_at) - span, spacing=1 / rate, count=count,
                     throttled_at=float(latest))

    async def get_job(self, job_id: str) -> JobInfo | None:
        async with self._read(f"cannot read job {job_id}") as conn:
            return await self._job_row(conn, job_id)

    async def latest_job(self, *, unfinished_only: bool = False) -> JobInfo | None:
        query = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.job_id.desc()).limit(1)
        if unfinished_only:
            query = query.where(
                jobs.c.state.not_in((JobState.FINISHED.value, JobState.CANCELLED.value))
            )
        async with self._read("cannot read jobs") as conn:
            row = (await conn.execute(query)).mappings().first()
        return job_info(row) if row is not None else None

    async def open_jobs(self) -> list[JobInfo]:
        query = (
            select(jobs)
            .where(jobs.c.state.in_(WORKER_STATES), jobs.c.pruned_at.is_(None))
            .order_by(jobs.c.created_at, jobs.c.job_id)
        )
        async with self._read("cannot read jobs") as conn:
            return [job_info(row) for row in (await conn.execute(query)).mappings()]

    async def set_job_state(
        self, job_id: str, state: JobState, *, stop_reason: str | None = None
    ) -> None:
        change = (
            update(jobs)
            .where(jobs.c.job_id == job_id)
            .values(state=state.value, stop_reason=stop_reason, updated_at=self._clock())
        )
        async with self._write(f"cannot update job {job_id}") as conn:
            if (await conn.execute(change)).rowcount == 0:
                raise StoreError(f"no job {job_id} in the database")

    @staticmethod
    async def _job_row(conn: AsyncConnection, job_id: str) -> JobInfo | None:
        row = (await conn.execute(select(jobs).where(jobs.c.job_id == job_id))).mappings().first()
        return job_info(row) if row is not None else None

    # -- operations -----------------------------------------------------------------------

    async def recover_in_flight(self, job_id: str) -> int:
        now = self._clock()
        released = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
        of_job = ops.c.job_id == job_id
        async with self._write(f"cannot recover job {job_id}") as conn:
            in_flight = await conn.execute(
                update(ops)
                .where(of_job, ops.c.state == OpState.RUNNING.value)
                .values(state=OpState.UNKNOWN.value, **released)
            )
            await conn.execute(
                update(ops).where(of_job, ops.c.lease_owner.is_not(None)).values(released)
            )
            # Held for itself, the job has no live worker: any left are dead ones.
            await conn.execute(delete(job_workers).where(job_workers.c.job_id == job_id))
        return in_flight.rowcount

    async def claim_ready(
        self, job_id: str, *, now: float, limit: int, owner: str, lease_seconds: float
    ) -> list[OpRecord]:
        if limit <= 0:
            return []
        params = {
            "b_job_id": job_id,
            "b_now": now,
            "b_owner": owner,
            "b_limit": limit,
            "b_lease_until": now + lease_seconds,
        }
        rows: Sequence[Any] | None = None  # by column name: sqlite3.Row or RowMapping
        if self._file is not None:
            # Busy: another connection writes; the claim waits for it off the loop, below.
            async with self._local_writes:
                with suppress(Busy):
                    rows, refs = self._direct_saver().claim(params)
        if rows is None:
            async with self._write(f"cannot claim operations of job {job_id}") as conn:
                claim = statements.claim(skip_locked=conn.dialect.name == "postgresql")
                rows = (await conn.execute(claim, params)).mappings().all()
                refs = await _refs(conn, [row["op_id"] for row in rows])
        # RETURNING gives no order guarantee: restore input order here.
        records = [op_record(row, refs.get(row["op_id"])) for row in rows]
        return sorted(records, key=lambda record: record.seq)

    async def save(self, ops: Sequence[OpRecord]) -> None:
        if not ops:
            return
        now = self._clock()
        plain_length = len(SAVE_PARAMS)
        plain: list[tuple[Any, ...]] = []
        printed: list[tuple[Any, ...]] = []
        for op in ops:
            values = save_values(op, now)
            (plain if len(values) == plain_length else printed).append(values)
        job_ids = sorted({op.job_id for op in ops})
        if self._file is not None:
            async with self._local_writes:
                try:
                    self._direct_saver().save(plain, printed, job_ids, now)
                    return
                except Busy:
                    pass  # another connection writes: wait for it off the loop, below
        async with self._write("cannot save operations") as conn:
            for with_print, rows in ((False, plain), (True, printed)):
                if rows:
                    await conn.execute(statements.save_many(fingerprint=with_print),
                                       [save_params_of(values) for values in rows])
            await conn.execute(statements.touch_jobs(), {"b_job_ids": job_ids, "b_now": now})

    def _direct_saver(self) -> DirectSaver:
        """The loop-thread connection of a SQLite store, opened on first use (under
        `_local_writes`)."""
        assert self._file is not None
        if self._direct is None:
            self._direct = DirectSaver(str(self._file))
        return self._direct

    async def block_dependents(self, job_id: str) -> int:
        now = self._clock()
        blocked = 0
        async with self._write(f"cannot block dependents in job {job_id}") as conn:
            total = (await conn.execute(_job_total(job_id))).scalar() or 0
            # Each pass blocks one more layer of waiters, so passes <= ops in the job.
            for _ in range(total + 1):
                layer = await conn.execute(
                    statements.block_waiting_on_dead(), {"b_job_id": job_id, "b_now": now}
                )
                if layer.rowcount == 0:
                    break
                blocked += layer.rowcount
        return blocked

    async def reopen_blocked(self, job_id: str) -> int:
        reopen = (
            update(ops)
            .where(ops.c.job_id == job_id, ops.c.state == OpState.BLOCKED.value)
            .values(
                state=OpState.PENDING.value,
                error_code=None,
                error_message=None,
                error_hint=None,
                error_status=None,
                error_request_id=None,
                updated_at=self._clock(),
            )
        )
        async with self._write(f"cannot reopen blocked operations of job {job_id}") as conn:
            return (await conn.execute(reopen)).rowcount

    async def next_wakeup(self, job_id: str) -> float | None:
        async with self._read(f"cannot read job {job_id}") as conn:
            found = await conn.execute(statements.next_wakeup(), {"b_job_id": job_id})
            earliest: float | None = found.scalar()
        return earliest

    async def counts(self, job_id: str) -> Mapping[OpState, int]:
        async with self._read(f"cannot count operations of job {job_id}") as conn:
            job = (await conn.execute(_job_size(job_id))).first()
            if job is None:
                return history.add_counts()
            owned = _by_state((await conn.execute(history.owned_counts(job_id))).all())
            return await _row_counts(conn, job_id, job.total, job.pruned_at, owned)

    async def produced_by_keys(self, job_id: str, keys: Collection[str]) -> dict[str, str]:
        wanted = sorted(set(keys))
        found: dict[str, str] = {}
        async with self._read(f"cannot read operations of job {job_id}") as conn:
            for start in range(0, len(wanted), ID_CHUNK):
                query = history.produced_by_rows(job_id, wanted[start : start + ID_CHUNK])
                found.update({key: site or "" for key, site in (await conn.execute(query)).all()})
        return found

    async def counts_by_action(self, job_id: str) -> Mapping[Action, Mapping[OpState, int]]:
        async with self._read(f"cannot count operations of job {job_id}") as conn:
            found = (await conn.execute(history.counts_by_action(job_id))).all()
        return history.by_action(list(found))

    async def iter_ops(
        self, job_id: str, *, only: OpState | Collection[OpState] | None = None
    ) -> AsyncIterator[OpRecord]:
        states = None if only is None else (only,) if isinstance(only, OpState) else tuple(only)
        after = -1
        # Ends: every page starts after the last seq seen, and seq is unique within a job.
        while True:
            page, sites = await self._page(job_id, states, after)
            for row in page:
                yield row_record(job_id, row, sites)
            if len(page) < PAGE_SIZE:
                return
            after = page[-1]["seq"]

    def open_rows(
        self, job_id: str, *, actions: Collection[Action] | None = None
    ) -> AsyncGenerator[OpRecord, None]:
        return checkrows.open_rows(self._engine, self._file, job_id, actions=actions)

    async def has_open_rows(self, job_id: str) -> bool:
        async with self._read(f"cannot read operations of job {job_id}") as conn:
            found = await conn.execute(checkrows.any_open_query(), {"b_job_id": job_id})
            return found.first() is not None

    async def _page(
        self, job_id: str, only: tuple[OpState, ...] | None, after: int
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """A page of the job's rows (`_PAGE_COLUMNS`), and key -> site id for the `@key`s of
        the rows whose key another job ran with a spec written otherwise (`rows.row_record`
        compares them)."""
        # One short read per page (keyset on seq, never OFFSET): a slow consumer holds neither
        # a connection nor a snapshot between pages. The row is the job's; the state is its op's.
        query = (
            select(*_PAGE_COLUMNS)
            .select_from(job_rows.join(ops, ops.c.op_id == job_rows.c.op_id))
            .where(job_rows.c.job_id == job_id, job_rows.c.seq > after)
            .order_by(job_rows.c.seq)
            .limit(PAGE_SIZE)
        )
        if only is not None:
            query = query.where(ops.c.state.in_([state.value for state in only]))
        async with self._read(f"cannot read operations of job {job_id}") as conn:
            result = await conn.execute(query)
            # Plain dicts made in C (zip), not RowMappings: `op_record` reads ~20 fields of
            # each of a report's million rows, and copying a RowMapping cost more than that.
            names = tuple(result.keys())
            page = [dict(zip(names, row, strict=True)) for row in result.all()]
            sites: dict[str, str] = {}
            for scope, specs in _written_otherwise(job_id, page).items():
                sites.update(await site_ids(conn, scope, referenced_keys(*specs)))
        return page, sites

    async def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
        await self._engine.dispose()
        for thread in self._checkpoints:  # a moment's work left at most, off the loop
            await anyio.to_thread.run_sync(thread.join)
        self._checkpoints.clear()


async def _refs(conn: AsyncConnection, op_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    """op_id -> {dependency key: the site id that dependency produced}, for `op_ids`."""
    refs: dict[int, dict[str, str]] = {}
    for start in range(0, len(op_ids), ID_CHUNK):
        chunk = op_ids[start : start + ID_CHUNK]
        found = await conn.execute(statements.refs(), {"b_op_ids": list(chunk)})
        for op_id, key, site_id in found.all():
            if site_id is not None:
                refs.setdefault(op_id, {})[key] = site_id
    return refs


def _job_total(job_id: str) -> Select[int]:
    return select(jobs.c.total).where(jobs.c.job_id == job_id)


def _job_size(job_id: str) -> Select[Any]:
    return select(jobs.c.total, jobs.c.pruned_at).where(jobs.c.job_id == job_id)


def _by_state(found: Sequence[Any]) -> dict[OpState, int]:
    """{state: n} from (job_id, state, n) rows of one job."""
    return {OpState(state): n for _, state, n in found}


async def _row_counts(conn: AsyncConnection, job_id: str, total: int, pruned_at: float | None,
                      owned: Mapping[OpState, int]) -> dict[OpState, int]:
    """Counts per state of the job's rows (every state), from the counts of the ops it owns
    (`history.owned_counts`) and, only where those are not all of its `total` rows, a join
    of the rows that name another job's op. A pruned job has no rows: its ops owned are not
    counted, only (none of) its rows."""
    if pruned_at is not None:
        return history.add_counts(
            _by_state_all((await conn.execute(history.row_counts(job_id))).all()))
    if sum(owned.values()) == total:
        # Each op the job owns is its row at `ops.seq` (one op a seq): as many as its rows
        # means every row names its own op, and no row another job's.
        return history.add_counts(owned)
    foreign = _by_state_all((await conn.execute(history.foreign_counts(job_id))).all())
    return history.add_counts(owned, foreign)


async def _owns_every_row(conn: AsyncConnection, job_id: str) -> bool:
    """Whether every row of the job names an op the job owns (none another job's): it owns as
    many ops as it has rows (`_row_counts`). False for a pruned or unknown job."""
    job = (await conn.execute(_job_size(job_id))).first()
    if job is None or job.pruned_at is not None:
        return False
    owned = _by_state((await conn.execute(history.owned_counts(job_id))).all())
    total: int = job.total
    return sum(owned.values()) == total


def _by_state_all(found: Sequence[Any]) -> dict[OpState, int]:
    """{state: n} from (state, n) rows."""
    return {OpState(state): n for state, n in found}


# A page of `iter_ops`: the row's own seq, line, key and spec under the names `op_record`
# reads, its op's state and results, and the op's owner, line, key and spec as `op_*` (they
# differ when another job owns the op).
_ROW_OWN = ("seq", "line", "key", "spec")
_PAGE_COLUMNS = (
    *(column for column in ops.c if column.name not in (*_ROW_OWN, "job_id")),
    *(row_value(name) if name in OWNER_ROW_COLUMNS else job_rows.c[name]
      for name in (*_ROW_OWN, "job_id")),
    *(ops.c[name].label(f"op_{name}") for name in (*_ROW_OWN, "job_id")),
)


def _written_otherwise(job_id: str, page: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
    """By scope: both specs of each row of the page whose own key another job owns and wrote
    otherwise (the rows `rows.row_record` must compare)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for row in page:
        if (row["op_job_id"] != job_id and row["op_key"] == row["key"]
                and row["op_spec"] != row["spec"]):
            found.setdefault(row["scope"], []).extend(
                [json.loads(row["op_spec"]), json.loads(row["spec"])])
    return found


def _known(name: str, table: Table, scope: str | None, keys: list[str]) -> Select[Any]:
    """The ops named by `keys` through `table` (ops: their own key; op_aliases: another)."""
    query = select(
        table.c.key.label("name"), ops.c.action, ops.c.state, ops.c.job_id, ops.c.line,
        ops.c.site_id,
    ).where(table.c.key.in_(keys))
    if name == "alias":
        query = query.join_from(table, ops, ops.c.op_id == table.c.op_id)
    if scope is not None:
        query = query.where(table.c.scope == scope)
    return query

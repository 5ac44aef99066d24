"""`SqlStore`: the `Store` port on SQLAlchemy Core, for SQLite files and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bulkops.errors import StoreError
from bulkops.model import JobInfo, JobSource, JobState, OpRecord, OpSpec, OpState
from bulkops.store import statements
from bulkops.store.engine import create_engine, writer
from bulkops.store.failures import store_errors
from bulkops.store.migrate import upgrade_to_head
from bulkops.store.rows import job_info, mutable_values, new_op_row, op_record
from bulkops.store.tables import jobs, ops
from bulkops.store.urls import describe, normalise_url, sqlite_path

Clock = Callable[[], float]

INSERT_BATCH = 2000  # ops per executemany while adding a job: bounded memory, few round trips
PAGE_SIZE = 1000  # ops per page of iter_ops
ID_CHUNK = 1000  # ids per IN (...) list: far below every driver's parameter limit


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
        async with store_errors(f"cannot open database {describe(target)}", target):
            await upgrade_to_head(engine)
    except BaseException:
        await engine.dispose()
        raise
    return SqlStore(engine, clock=clock)


def _check_sqlite_location(path: Path) -> None:
    # SQLite would create the file, but a missing directory is almost always a typo.
    if not path.parent.is_dir():
        raise StoreError(f"cannot open database {path}: directory {path.parent} does not exist")
    if path.is_dir():
        raise StoreError(f"cannot open database {path}: it is a directory")


class SqlStore:
    """The checkpoint store. Every method is one short transaction (or one per page)."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = time.time) -> None:
        self._engine = engine
        self._writer = writer(engine)
        self._clock = clock

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    def __repr__(self) -> str:
        return f"SqlStore({describe(self._engine.url)!r})"

    # -- transactions ---------------------------------------------------------------------

    @asynccontextmanager
    async def _write(self, action: str) -> AsyncIterator[AsyncConnection]:
        async with store_errors(action, self._engine.url), self._writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _read(self, action: str) -> AsyncIterator[AsyncConnection]:
        async with store_errors(action, self._engine.url), self._engine.connect() as conn:
            yield conn

    # -- jobs -----------------------------------------------------------------------------

    async def add_job(self, job: JobSource, ops: Iterable[OpSpec]) -> tuple[JobInfo, bool]:
        now = self._clock()
        async with self._write(f"cannot store job {job.job_id}") as conn:
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
            }
            if (await conn.execute(insert_job, values)).rowcount == 0:
                existing = await self._job_row(conn, job.job_id)
                if existing is None:  # only possible if it vanished between the two statements
                    raise StoreError(f"job {job.job_id} exists but cannot be read")
                return existing, False
            await _insert_ops(conn, job, ops, now)
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
        ), True

    async def get_job(self, job_id: str) -> JobInfo | None:
        async with self._read(f"cannot read job {job_id}") as conn:
            return await self._job_row(conn, job_id)

    async def latest_job(self, *, unfinished_only: bool = False) -> JobInfo | None:
        query = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.job_id.desc()).limit(1)
        if unfinished_only:
            query = query.where(jobs.c.state != JobState.FINISHED.value)
        async with self._read("cannot read jobs") as conn:
            row = (await conn.execute(query)).mappings().first()
        return job_info(row) if row is not None else None

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
        params = [_save_params(op, now) for op in ops]
        job_ids = sorted({op.job_id for op in ops})
        async with self._write("cannot save operations") as conn:
            await conn.execute(statements.save_many(), params)
            await conn.execute(statements.touch_jobs(), {"b_job_ids": job_ids, "b_now": now})

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
        query = (
            select(ops.c.state, func.count()).where(ops.c.job_id == job_id).group_by(ops.c.state)
        )
        async with self._read(f"cannot count operations of job {job_id}") as conn:
            found = {OpState(state): n for state, n in (await conn.execute(query)).all()}
        return {state: found.get(state, 0) for state in OpState}

    async def iter_ops(
        self, job_id: str, *, only: OpState | None = None
    ) -> AsyncIterator[OpRecord]:
        after = -1
        # Ends: every page starts after the last seq seen, and seq is unique within a job.
        while True:
            page = await self._page(job_id, only, after)
            for row in page:
                yield op_record(row)
            if len(page) < PAGE_SIZE:
                return
            after = page[-1]["seq"]

    async def _page(self, job_id: str, only: OpState | None, after: int) -> Sequence[Any]:
        # One short read per page (keyset on seq, never OFFSET): a slow consumer holds neither
        # a connection nor a snapshot between pages.
        query = (
            select(ops)
            .where(ops.c.job_id == job_id, ops.c.seq > after)
            .order_by(ops.c.seq)
            .limit(PAGE_SIZE)
        )
        if only is not None:
            query = query.where(ops.c.state == only.value)
        async with self._read(f"cannot read operations of job {job_id}") as conn:
            return (await conn.execute(query)).mappings().all()

    async def close(self) -> None:
        await self._engine.dispose()


async def _insert_ops(
    conn: AsyncConnection, job: JobSource, specs: Iterable[OpSpec], now: float
) -> None:
    """Insert the ops batch by batch, then link dependencies once every key exists."""
    staging = statements.staged_deps
    seq = 0
    staged = False
    source = iter(specs)
    # Ends when the iterable does; each batch holds at most INSERT_BATCH specs in memory.
    while batch := list(islice(source, INSERT_BATCH)):
        rows: list[dict[str, Any]] = []
        deps: list[dict[str, Any]] = []
        for spec in batch:
            rows.append(new_op_row(job.job_id, seq, spec, now))
            deps.extend({"seq": seq, "dep_key": key} for key in spec.dependency_keys())
            seq += 1
        await conn.execute(insert(ops), rows)
        if deps:
            if not staged:
                await conn.run_sync(staging.create)
                staged = True
            await conn.execute(insert(staging), deps)
    if seq != job.total:
        raise StoreError(f"job {job.job_id}: expected {job.total} operations, got {seq}")
    await _refresh_statistics(conn, ["ops", staging.name] if staged else ["ops"])
    if staged:
        await _link_dependencies(conn, job.job_id)
        await conn.run_sync(staging.drop)
        await _refresh_statistics(conn, ["op_deps"])


async def _refresh_statistics(conn: AsyncConnection, tables: list[str]) -> None:
    """PostgreSQL only: re-sample tables a bulk insert has just changed out of recognition.

    Until autovacuum catches up, the planner would believe the tables hold what they held
    before this job, and join the new rows by nested scans, quadratic in the job's size.
    Temporary tables are never analysed automatically at all.
    """
    if conn.dialect.name != "postgresql":
        return
    for table in tables:
        await conn.execute(text(f"ANALYZE {table}"))


async def _link_dependencies(conn: AsyncConnection, job_id: str) -> None:
    dangling = (await conn.execute(statements.first_dangling_dependency(job_id))).first()
    if dangling is not None:
        line, key = dangling
        raise StoreError(f"job {job_id}, line {line}: dependency @{key} names no row of the job")
    await conn.execute(statements.link_dependencies(job_id))


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


def _save_params(op: OpRecord, now: float) -> dict[str, Any]:
    params = {f"p_{name}": value for name, value in mutable_values(op).items()}
    params["p_op_id"] = op.op_id
    params["p_updated_at"] = now
    return params


def _job_total(job_id: str) -> Select[int]:
    return select(jobs.c.total).where(jobs.c.job_id == job_id)

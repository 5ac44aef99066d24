"""Storing a job's rows: each row is mapped to its operation, an existing one or a new one.

A row names the operation with its key in the job's scope. A row with no such operation yet may
still name one under another key: the same work (`identity.fingerprint`: a site of that name
created, that site moved there, that person invited there with those roles). Its key then
becomes another name of that op (`op_aliases`). Otherwise a new pending operation is made,
owned by the job. Existing operations are not changed here; `takeover` decides what a run does
with them.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from itertools import islice
from typing import Any

from sqlalchemy import Insert, Select, Table, and_, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from bulkops.errors import RowError, StoreError
from bulkops.identity import (
    EarlierOp,
    Holder,
    alias_conflict,
    conflict,
    fingerprint,
    referenced_keys,
)
from bulkops.jobrows import derive_key
from bulkops.model import Action, OpSpec, OpState, is_ref
from bulkops.store import statements
from bulkops.store.rows import new_op_row, new_row
from bulkops.store.tables import (
    FINGERPRINT,
    OWNER_ROW_COLUMNS,
    SCOPE_KEY,
    job_rows,
    jobs,
    op_aliases,
    ops,
    row_value,
)
from bulkops.storedspec import create_fingerprint, specs_and_stored, stored_rows

INSERT_BATCH = 2000  # rows per executemany while adding a job: bounded memory, few round trips
ID_CHUNK = 1000  # values per IN (...) list: far below every driver's parameter limit


async def insert_rows(
    conn: AsyncConnection, job_id: str, scope: str, specs: Iterable[OpSpec], total: int,
    now: float,
) -> bool:
    """Insert the job's rows batch by batch, each pointing at its op, then link dependencies
    once every key of the file is known. Raises StoreError if the count is not `total` or a
    dependency names no op. True when the scope had no operation before: every op is new, so
    no row can conflict with earlier work."""
    if conn.dialect.name == "sqlite" and not await scope_used(conn, scope):
        await _insert_fresh(conn, job_id, scope, specs, total, now)
        return True
    staging = statements.staged_deps
    seq = 0
    staged = False
    source = specs_and_stored(specs)
    # Ends when the iterable does; each batch holds at most INSERT_BATCH specs in memory.
    while pairs := list(islice(source, INSERT_BATCH)):
        batch: list[OpSpec] = []
        rows: list[dict[str, Any]] = []
        deps: list[dict[str, Any]] = []
        for spec, (_, _, _, spec_json, _, dependency_keys) in pairs:
            batch.append(spec)
            rows.append(new_row(job_id, seq, spec, spec_json))
            deps.extend({"seq": seq, "dep_key": key} for key in dependency_keys)
            seq += 1
        op_ids = await _ops_of(conn, scope, batch, rows, now)
        for row in rows:
            row["op_id"] = op_ids[row["key"]]
        await _leave_to_ops(conn, job_id, rows)
        await conn.execute(insert(job_rows), rows)
        if deps:
            if not staged:
                await conn.run_sync(staging.create)
                staged = True
            await conn.execute(insert(staging), deps)
    if seq != total:
        raise StoreError(f"job {job_id}: expected {total} operations, got {seq}")
    await refresh_statistics(conn, ["ops", "job_rows", staging.name] if staged else ["ops",
                                                                                      "job_rows"])
    if staged:
        await _link_dependencies(conn, job_id, scope)
        await conn.run_sync(staging.drop)
        await refresh_statistics(conn, ["row_deps"])
    return False


async def _leave_to_ops(conn: AsyncConnection, job_id: str, rows: list[dict[str, Any]]) -> None:
    """Clear the line, action and spec of each row (`new_row`, with its op_id) whose op the job
    owns at that row's seq with those same values (`tables.job_rows`): the op was just made
    for it. Any other row keeps its own."""
    ids = list({row["op_id"] for row in rows})
    owned: dict[tuple[int, int], tuple[int, str, str]] = {}
    for start in range(0, len(ids), ID_CHUNK):
        query = select(ops.c.op_id, ops.c.seq, ops.c.line, ops.c.action, ops.c.spec).where(
            ops.c.op_id.in_(ids[start : start + ID_CHUNK]), ops.c.job_id == job_id,
        )
        for op_id, seq, *values in (await conn.execute(query)).all():
            owned[op_id, seq] = tuple(values)
    for row in rows:
        if owned.get((row["op_id"], row["seq"])) == (row["line"], row["action"], row["spec"]):
            row.update(dict.fromkeys(OWNER_ROW_COLUMNS))


async def scope_used(conn: AsyncConnection, scope: str) -> bool:
    """Whether any operation (or alias) of the scope is stored already."""
    for table in (ops, op_aliases):
        query = select(table.c.key).where(table.c.scope == scope).limit(1)
        if (await conn.execute(query)).first() is not None:
            return True
    return False


# Raw driver statements of the fresh-scope load: the per-row work of SQLAlchemy's
# executemany (bind processing, result set-up) costs more than SQLite's own insert. Only the
# columns that differ from row to row are bound: the job, scope, state and time are the same
# for every row of a load, written into the statement (`_insert_fresh_ops`), and attempts,
# checks and maybe_applied take their defaults; SQLite's driver binds each value of each row.
_FRESH_OP_COLUMNS = ("seq", "line", "key", "action", "spec", "fingerprint")


def _insert_fresh_ops(job_id: str, scope: str, now: float) -> str:
    """The INSERT of a fresh load's ops: `_FRESH_OP_COLUMNS` bound per row, the rest as SQL
    literals (text quoted as SQLite quotes it; the time as Python writes a float, which
    SQLite reads back to well within a microsecond)."""
    constants = {"job_id": _sql_text(job_id), "scope": _sql_text(scope),
                 "state": _sql_text(OpState.PENDING.value), "updated_at": repr(float(now))}
    return (f"INSERT INTO ops ({', '.join((*_FRESH_OP_COLUMNS, *constants))}) "
            f"VALUES ({', '.join(('?',) * len(_FRESH_OP_COLUMNS) + tuple(constants.values()))})")


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# Every row of a fresh load owns the op made for it: its line, action and spec stay in ops.
_ROWS_OF_FRESH_OPS = (
    "INSERT INTO job_rows (job_id, seq, key, op_id) "
    "SELECT job_id, seq, key, op_id FROM ops "
    "WHERE job_id = ? AND seq >= ? AND seq < ?"
)
_STAGE_DEPS = "INSERT INTO bulkops_staged_deps (seq, dep_key) VALUES (?, ?)"
FRESH_BATCH = 20_000  # rows per executemany on the fresh-scope path


# The ops indexes whose columns come in no order (keys, fingerprints) are dropped for a large
# load and built again after it, within the same transaction: SQLite builds an index from
# sorted rows several times faster than it takes the same rows one by one. Only when the job
# is at least this large and larger than what the table holds already (the build reads every
# op of every scope).
REBUILD_FROM = 10_000
_REBUILT_INDEXES = (SCOPE_KEY.name, FINGERPRINT.name)
_INDEX_SQL = "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?"


async def _insert_fresh(
    conn: AsyncConnection, job_id: str, scope: str, specs: Iterable[OpSpec], total: int,
    now: float,
) -> None:
    """`insert_rows` on SQLite when the scope has no operation yet: every row makes a new op,
    so there is nothing to look up. The connection holds SQLite's write lock (the job row is
    written), so no other process can add ops to the scope in between, and readers see the
    database as it was (indexes included) until the commit. A large load builds the ops
    indexes on keys and fingerprints after the rows are in: the same indexes (their own
    CREATE statement, read back), the same rows, in one transaction that a failure rolls back
    whole, indexes included."""
    rebuild = await _drop_unordered_indexes(conn, total)
    await _load_fresh(conn, job_id, scope, specs, total, now)
    for create in rebuild:
        await conn.exec_driver_sql(create)


async def _drop_unordered_indexes(conn: AsyncConnection, total: int) -> list[str]:
    """Drop the indexes `_insert_fresh` builds again after a large load; their CREATE
    statements. None when the job is small, or small beside the ops stored already."""
    if total < REBUILD_FROM:
        return []
    highest = (await conn.exec_driver_sql("SELECT max(op_id) FROM ops")).scalar()
    if highest is not None and highest >= total:  # op ids only grow: an upper bound of the rows
        return []
    creates: list[str] = []
    for name in _REBUILT_INDEXES:
        create = (await conn.exec_driver_sql(_INDEX_SQL, (name,))).scalar()
        if create is None:  # not this schema's index: left alone
            continue
        await conn.exec_driver_sql(f'DROP INDEX "{name}"')
        creates.append(create)
    return creates


async def _load_fresh(
    conn: AsyncConnection, job_id: str, scope: str, specs: Iterable[OpSpec], total: int,
    now: float,
) -> None:
    """The rows of `_insert_fresh`: each row's job_rows entry is copied from its new op,
    dependencies are linked in one statement.

    A batch's copy into job_rows is one statement that SQLite runs in its driver's thread
    without holding the GIL (no row crosses into Python), so it goes on there while the next
    batch is built here: one statement at a time on the connection, as always. The driver's
    own connection runs it, in one hand-off to its thread; the transaction is the same."""
    insert_ops = _insert_fresh_ops(job_id, scope, now)
    staging = statements.staged_deps
    seq = staged = 0
    source = stored_rows(specs)  # as made when the rows were checked, if they come from there
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None  # an open connection's: aiosqlite's
    copying: asyncio.Future[Any] | None = None  # the previous batch's copy into job_rows
    try:
        while batch := list(islice(source, FRESH_BATCH)):
            rows: list[tuple[Any, ...]] = []
            deps: list[tuple[int, str]] = []
            first = seq
            for line, key, action, spec_json, fingerprint_, dependency_keys in batch:
                rows.append((seq, line, key, action, spec_json, fingerprint_))
                if dependency_keys:
                    deps += [(seq, dep) for dep in dependency_keys]
                seq += 1
            if copying is not None:
                await copying
                copying = None
            await conn.exec_driver_sql(insert_ops, rows)
            if deps:
                if not staged:
                    await conn.run_sync(staging.create)
                await conn.exec_driver_sql(_STAGE_DEPS, deps)
                staged += len(deps)
            copying = asyncio.ensure_future(_copy_rows(driver, (job_id, first, seq)))
            # Its outcome is always read: awaited below, or here if this load is given up.
            copying.add_done_callback(lambda done: done.cancelled() or done.exception())
            await asyncio.sleep(0)  # the copy is handed to the driver's thread
        if copying is not None:
            await copying
            copying = None
    finally:
        if copying is not None:  # the next batch failed to build: the copy is let finish
            with suppress(Exception):
                await copying
    if seq != total:
        raise StoreError(f"job {job_id}: expected {total} operations, got {seq}")
    if staged:
        # Every key is the file's own here: there is no earlier op of the scope to name.
        linked = (await conn.execute(statements.link_dependencies(job_id, scope)[0])).rowcount
        if linked != staged:
            await _raise_dangling(conn, job_id)
        await conn.run_sync(staging.drop)


async def _copy_rows(driver: Any, params: tuple[str, int, int]) -> None:
    """`_ROWS_OF_FRESH_OPS` on aiosqlite's connection; its failure as SQLAlchemy's would be
    (a DBAPIError around the driver's), so that `store_errors` words it as any other."""
    try:
        cursor = await driver.execute(_ROWS_OF_FRESH_OPS, params)
        await cursor.close()
    except sqlite3.Error as exc:
        raise DBAPIError.instance(_ROWS_OF_FRESH_OPS, params, exc, sqlite3.Error) from exc


async def _ops_of(
    conn: AsyncConnection, scope: str, specs: Sequence[OpSpec], rows: Sequence[dict[str, Any]],
    now: float,
) -> dict[str, int]:
    """key -> op_id for every row of a batch, making the ops that do not exist yet."""
    found = await _by_key(conn, scope, [spec.key for spec in specs])
    # Creates first: a transfer or invite of the batch may name a site by a create's new key.
    missing = [spec for spec in specs if spec.key not in found]
    row_of = {row["key"]: row for row in rows}
    new: list[dict[str, Any]] = []
    for group in (
        [spec for spec in missing if spec.action is Action.CREATE_SITE],
        [spec for spec in missing if spec.action is not Action.CREATE_SITE],
    ):
        same = await _same_work(conn, scope, group)
        if same:
            # The row's own key names that op from now on (a later file's `@key`, a later
            # edit of the row): the same identity, reached by another name.
            aliases = [
                {"scope": scope, "key": key, "op_id": op_id,
                 "job_id": row_of[key]["job_id"], "line": row_of[key]["line"]}
                for key, op_id in same.items()
            ]
            await conn.execute(
                _insert_ignoring(conn.dialect.name, op_aliases, ["scope", "key"]), aliases
            )
            found.update(same)
        new += [
            new_op_row(row_of[spec.key], scope, now, create_fingerprint(spec))
            for spec in group if spec.key not in same
        ]
    if new:
        # ON CONFLICT: on PostgreSQL another process adding a file with the same new keys may
        # have made them a moment ago; the look-up below finds its ops then.
        await conn.execute(_insert_ignoring(conn.dialect.name, ops, ["scope", "key"]), new)
        found.update(await _by_key(conn, scope, [row["key"] for row in new]))
    return found


async def existing_ops(
    conn: AsyncConnection, scope: str, specs: Sequence[OpSpec]
) -> dict[str, int]:
    """key -> op_id of the ops these rows would name if they were stored now (`_ops_of`'s
    mapping, read only): their key or an alias of it, else the same work under another key.
    Rows absent from the result would make new operations."""
    found = await _by_key(conn, scope, [spec.key for spec in specs])
    missing = [spec for spec in specs if spec.key not in found]
    for group in (
        [spec for spec in missing if spec.action is Action.CREATE_SITE],
        [spec for spec in missing if spec.action is not Action.CREATE_SITE],
    ):
        found.update(await _same_work(conn, scope, group))
    return found


def _insert_ignoring(dialect_name: str, table: Table, unique: list[str]) -> Insert:
    dialect_insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    return dialect_insert(table).on_conflict_do_nothing(index_elements=unique)


async def _by_key(conn: AsyncConnection, scope: str, keys: Sequence[str]) -> dict[str, int]:
    """key -> op_id of the ops `keys` name in the scope: by their own key, or by an alias."""
    found: dict[str, int] = {}
    for table in (ops, op_aliases):
        wanted = [key for key in keys if key not in found]
        for start in range(0, len(wanted), ID_CHUNK):
            chunk = wanted[start : start + ID_CHUNK]
            query = select(table.c.key, table.c.op_id).where(
                table.c.scope == scope, table.c.key.in_(chunk)
            )
            found.update({key: op_id for key, op_id in (await conn.execute(query)).all()})
    return found


async def _same_work(
    conn: AsyncConnection, scope: str, specs: Sequence[OpSpec]
) -> dict[str, int]:
    """key -> op_id of the ops that do what these rows do under another key: the same site
    created (any state: it may be under way), or the same move or invite done."""
    if not specs:
        return {}
    sites = await site_ids(conn, scope, referenced_keys(*(s.to_json() for s in specs)))

    def resolve(value: str) -> str:
        return sites.get(value[1:], value) if is_ref(value) else value

    wanted: dict[str, str] = {}
    for spec in specs:
        print_ = fingerprint(spec, resolve)
        if print_ is not None:
            wanted.setdefault(print_, spec.key)
    prints = list(wanted)
    found: dict[str, int] = {}
    for start in range(0, len(prints), ID_CHUNK):
        query = select(ops.c.fingerprint, ops.c.op_id).where(
            ops.c.scope == scope, ops.c.fingerprint.in_(prints[start : start + ID_CHUNK])
        )
        for print_, op_id in (await conn.execute(query)).all():
            found[wanted[print_]] = op_id
    return found


async def site_ids(conn: AsyncConnection, scope: str, keys: Iterable[str]) -> dict[str, str]:
    """key -> the site id its op produced, for those of `keys` (own keys or aliases) whose op
    produced one."""
    wanted = sorted(keys)
    found: dict[str, str] = {}
    for table in (ops, op_aliases):
        rest = [key for key in wanted if key not in found]
        for start in range(0, len(rest), ID_CHUNK):
            query = (
                select(table.c.key, ops.c.site_id)
                .select_from(table if table is ops else table.join(
                    ops, ops.c.op_id == table.c.op_id))
                .where(
                    table.c.scope == scope,
                    table.c.key.in_(rest[start : start + ID_CHUNK]),
                    ops.c.site_id.is_not(None),
                )
            )
            found.update({key: site for key, site in (await conn.execute(query)).all()})
    return found


async def _link_dependencies(conn: AsyncConnection, job_id: str, scope: str) -> None:
    for link in statements.link_dependencies(job_id, scope):
        await conn.execute(link)
    await _raise_dangling(conn, job_id)


async def _raise_dangling(conn: AsyncConnection, job_id: str) -> None:
    """Raise StoreError naming the first staged dependency that was linked to no op."""
    dangling = (await conn.execute(statements.first_dangling_dependency(job_id))).first()
    if dangling is not None:
        line, key = dangling
        raise StoreError(f"job {job_id}, line {line}: dependency @{key} names no operation")


async def refresh_statistics(conn: AsyncConnection, tables: list[str]) -> None:
    """PostgreSQL only: re-sample tables a bulk insert has just changed out of recognition.

    Until autovacuum catches up, the planner would believe the tables hold what they held
    before this job, and join the new rows by nested scans, quadratic in the job's size.
    Temporary tables are never analysed automatically at all.
    """
    if conn.dialect.name != "postgresql":
        return
    for table in tables:
        await conn.execute(text(f"ANALYZE {table}"))


# -- rows whose key names other work -----------------------------------------------------------


def _reused_keys(job_id: str) -> Select[Any]:
    """The job's rows whose key names an op another job owns, with other spec text.

    Fingerprint matches (another key) are the same invite by construction, so left out.
    """
    owner = jobs.alias("owner")
    return (
        select(
            row_value("line"), row_value("spec"), ops.c.key, ops.c.spec.label("op_spec"),
            ops.c.state, ops.c.maybe_applied, ops.c.job_id, ops.c.line.label("op_line"),
            ops.c.updated_at, owner.c.lease_owner, owner.c.lease_since, owner.c.lease_expires_at,
        )
        .select_from(job_rows)
        .join(ops, ops.c.op_id == job_rows.c.op_id)
        .join(owner, owner.c.job_id == ops.c.job_id)
        .where(
            job_rows.c.job_id == job_id,
            ops.c.job_id != job_id,
            ops.c.key == job_rows.c.key,
            ops.c.spec != row_value("spec").element,
        )
        .order_by(job_rows.c.seq)
    )


def _reused_aliases(job_id: str) -> Select[Any]:
    """The job's rows whose key is another name of a done invite (see `op_aliases`), where
    this job did not make that alias: their row must still be that invite."""
    return (
        select(
            row_value("line"), row_value("spec"), op_aliases.c.key, ops.c.fingerprint,
            op_aliases.c.job_id, op_aliases.c.line.label("alias_line"), ops.c.updated_at,
        )
        .select_from(job_rows)
        .join(ops, ops.c.op_id == job_rows.c.op_id)
        .join(op_aliases, and_(op_aliases.c.op_id == ops.c.op_id,
                               op_aliases.c.key == job_rows.c.key))
        .where(job_rows.c.job_id == job_id, op_aliases.c.job_id != job_id)
        .order_by(job_rows.c.seq)
    )


async def conflicts(
    conn: AsyncConnection, job_id: str, scope: str, *, now: float
) -> list[RowError]:
    """Rows of the job whose key names work done (or maybe done, or running now) with other
    content: each one is an error naming the earlier job, line and date."""
    errors = await _alias_conflicts(conn, job_id, scope)
    found = (await conn.execute(_reused_keys(job_id))).mappings().all()
    if not found:
        return errors
    specs = [(json.loads(r["spec"]), json.loads(r["op_spec"])) for r in found]
    sites = await site_ids(conn, scope, referenced_keys(*(s for pair in specs for s in pair)))

    def resolve(value: str) -> str:
        return sites.get(value[1:], value) if is_ref(value) else value

    for row, (spec, op_spec) in zip(found, specs, strict=True):
        error = conflict(row["line"], spec, _earlier(row, op_spec, now), resolve)
        # A row without a key in its file names its content: its key's op doing other work
        # means a later file (a fixed report of failed rows) gave that key to the fixed row;
        # this row is the version it replaced, not new work under a reused name.
        if error is not None and not _derived(OpSpec.from_json(row["line"], row["key"], spec)):
            errors.append(error)
    return sorted(errors, key=lambda error: error.line)


async def _alias_conflicts(conn: AsyncConnection, job_id: str, scope: str) -> list[RowError]:
    """A key first seen as the same work as an op of another key stays that work: another
    site name, move, person, place or roles under it is other work (its fingerprint differs)."""
    found = (await conn.execute(_reused_aliases(job_id))).mappings().all()
    if not found:
        return []
    specs = [json.loads(row["spec"]) for row in found]
    sites = await site_ids(conn, scope, referenced_keys(*specs))

    def resolve(value: str) -> str:
        return sites.get(value[1:], value) if is_ref(value) else value

    errors: list[RowError] = []
    for row, data in zip(found, specs, strict=True):
        spec = OpSpec.from_json(row["line"], row["key"], data)
        if fingerprint(spec, resolve) != row["fingerprint"]:
            errors.append(alias_conflict(row["line"], row["key"], row["job_id"],
                                         row["alias_line"], row["updated_at"]))
    return errors


def _earlier(row: Mapping[Any, Any], spec: Mapping[str, Any], now: float) -> EarlierOp:
    live = row["lease_owner"] is not None and (row["lease_expires_at"] or 0.0) > now
    holder = Holder(row["lease_owner"], row["lease_since"], row["lease_expires_at"])
    return EarlierOp(
        key=row["key"],
        spec=spec,
        state=OpState(row["state"]),
        maybe_applied=bool(row["maybe_applied"]),
        job_id=row["job_id"],
        line=row["op_line"],
        updated_at=row["updated_at"],
        held_by=holder if live else None,
    )


async def conflicts_of(
    conn: AsyncConnection, scope: str, specs: Iterable[OpSpec], *, now: float
) -> list[RowError]:
    """`conflicts` for rows not stored yet (`validate --db`): every row whose key names work
    done, maybe done or running now with other content. Streams `specs` in batches."""
    errors: list[RowError] = []
    source = iter(specs)
    while batch := list(islice(source, ID_CHUNK)):
        by_key = {spec.key: spec for spec in batch}
        owner = jobs.alias("owner")
        query = (
            select(
                ops.c.key, ops.c.spec.label("op_spec"), ops.c.state, ops.c.maybe_applied,
                ops.c.job_id, ops.c.line.label("op_line"), ops.c.updated_at,
                owner.c.lease_owner, owner.c.lease_since, owner.c.lease_expires_at,
            )
            .select_from(ops.join(owner, owner.c.job_id == ops.c.job_id))
            .where(ops.c.scope == scope, ops.c.key.in_(list(by_key)))
        )
        found = (await conn.execute(query)).mappings().all()
        op_specs = [json.loads(row["op_spec"]) for row in found]
        rows = [by_key[row["key"]].to_json() for row in found]
        sites = await site_ids(conn, scope, referenced_keys(*op_specs, *rows))

        def resolve(value: str, sites: dict[str, str] = sites) -> str:
            return sites.get(value[1:], value) if is_ref(value) else value

        for row, data, op_spec in zip(found, rows, op_specs, strict=True):
            spec = by_key[row["key"]]
            error = conflict(spec.line, data, _earlier(row, op_spec, now), resolve)
            if error is not None and not _derived(spec):
                errors.append(error)
    return errors


def _derived(spec: OpSpec) -> bool:
    """The row's key is the one derived from its own content (it had none in the file)."""
    return spec.key == derive_key(spec)

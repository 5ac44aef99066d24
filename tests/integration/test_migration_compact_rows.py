"""Migration 0005_compact_rows: no (job_id, key) index on ops, every row and id kept."""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from bulkops.jobfile import load_job
from bulkops.model import Action, OpSpec
from bulkops.store import open_store

REPO = Path(__file__).resolve().parents[2]
JOB = REPO / "jobs" / "onboarding.csv"


def _alembic(db: Path) -> Config:
    return Config(str(REPO / "alembic.ini"), cmd_opts=argparse.Namespace(x=[f"db={db}"]))


def _snapshot(db: Path) -> tuple[list[Any], ...]:
    with sqlite3.connect(db) as conn:
        return (
            # As they read: a row may leave its line, action and spec to its op (0007).
            conn.execute(
                "SELECT r.job_id, r.seq, coalesce(r.line, o.line), r.key, "
                "coalesce(r.action, o.action), coalesce(r.spec, o.spec), r.op_id "
                "FROM job_rows AS r JOIN ops AS o ON o.op_id = r.op_id ORDER BY r.job_id, r.seq"
            ).fetchall(),
            conn.execute("SELECT * FROM row_deps ORDER BY job_id, seq, dep_key").fetchall(),
            conn.execute("SELECT * FROM op_aliases ORDER BY scope, key").fetchall(),
            conn.execute("SELECT * FROM ops ORDER BY op_id").fetchall(),
            conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'ops'").fetchall(),
        )


def _keyed_by_job(db: Path) -> bool:
    """Whether ops still has its unique (job_id, key) constraint."""
    with sqlite3.connect(db) as conn:
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'ops'").fetchone()
        problems = conn.execute("PRAGMA foreign_key_check").fetchall()
    assert problems == []
    return "uq_ops_job_id_key" in sql


async def _stored_specs(db: Path, job_id: str) -> list[OpSpec]:
    store = await open_store(str(db))
    try:
        return [op.spec async for op in store.iter_ops(job_id)]
    finally:
        await store.close()


async def test_a_database_at_0004_with_a_job_upgrades_with_every_row_and_id_kept(
    tmp_path: Path,
) -> None:
    """Every action's row (domain rows included) reads back the same spec after the upgrade,
    and the rows, dependencies, aliases, operations and the op id high-water mark are the
    same, row for row (down to 0004 and up again)."""
    db = tmp_path / "bulkops.db"
    source, specs = load_job(JOB)
    written = list(specs())
    assert {spec.action for spec in written} == set(Action)
    store = await open_store(str(db))
    try:
        job, created = await store.add_job(
            replace(source, account_id="11111111-1111-4111-8111-111111111111",
                    base_url="http://127.0.0.1:1"), iter(written))
    finally:
        await store.close()
    assert created and not _keyed_by_job(db)
    fresh = _snapshot(db)
    assert fresh[1], "the job has dependencies to carry over"

    # Alembic's env runs its own event loop: from a thread, as the command line would.
    await asyncio.to_thread(command.downgrade, _alembic(db), "0004")
    assert _keyed_by_job(db)
    assert _snapshot(db) == fresh

    read_back = await _stored_specs(db, job.job_id)  # opening the database upgrades it
    assert not _keyed_by_job(db)
    assert _snapshot(db) == fresh
    assert read_back == written

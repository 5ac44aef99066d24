"""`bulkops status` and `bulkops jobs` print the same, whichever way the database is read.

On a SQLite file at the newest revision they read through the standard library's driver
(`store.quickread`), without loading SQLAlchemy; through a URL naming SQLAlchemy's driver
(`sqlite+aiosqlite:///`), on PostgreSQL, and on a database at an older revision, through the
store. Every test runs the installed command as a subprocess on real databases, holding jobs in
every state the commands show: pending, running (held by a live lease), interrupted (stopped by
a signal, or running with no live holder), stopped with a reason, cancelled, finished, finished
by a later job, pruned, and a job whose rows name another job's operations.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config

from bulkops.model import Action, JobSource, JobState, OpSpec, OpState, RunRecord
from bulkops.store import SqlStore, open_store
from bulkops.store.migrate import script_heads

REPO = Path(__file__).resolve().parents[2]
START = 1_700_000_000.0
SITE = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
HOLDER = "build-host:4242:0badcafe"
# Every job the seed stores, oldest first (`jobs` lists them newest first).
JOB_IDS = ("pending", "pruned", "finished", "stopped", "signalled", "crashed", "held",
           "cancelled", "done-later", "grown")
# The command's output names the job file, never the database: the same on every database.
SHOWN = [["jobs"], ["jobs", "--json"], ["status"], ["status", "--json"],
         *([*args, job_id] for job_id in JOB_IDS for args in (["status"], ["status", "--json"]))]


def ticking(start: float) -> Callable[[], float]:
    """A clock advancing a second a reading: every database gets the same stamps."""
    now = [start]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    return clock


def create(key: str, line: int) -> OpSpec:
    return OpSpec(line=line, key=key, action=Action.CREATE_SITE, site_name=f"Site {key}")


async def add(store: SqlStore, job_id: str, keys: list[str]) -> None:
    await store.add_job(JobSource(job_id=job_id, path=f"/jobs/{job_id}.csv", format="csv",
                                  total=len(keys), account_id="acc",
                                  base_url="https://www.wixapis.com"),
                        [create(key, line) for line, key in enumerate(keys, start=2)])


async def settle(store: SqlStore, job_id: str, *states: OpState) -> None:
    """Claim the job's first ops (one per state given) and record those states."""
    claimed = await store.claim_ready(job_id, now=START, limit=len(states), owner="w",
                                      lease_seconds=60)
    await store.save([dataclasses.replace(op, state=state, lease_owner=None,
                                          site_id=SITE if state is OpState.SUCCEEDED else None)
                      for op, state in zip(claimed, states, strict=True)])


async def ran(store: SqlStore, job_id: str, minutes: float, outcome: str | None) -> None:
    started = await store.start_run(RunRecord(run_id=0, job_id=job_id, command="run",
                                              started_at=START + 60), owner="w")
    if outcome is not None:
        await store.save_run(dataclasses.replace(started, finished_at=START + 60 + minutes * 60,
                                                 outcome=outcome, requests=3))


async def seed(url: str) -> None:
    """The jobs of JOB_IDS, in those states, with the same stamps on every database."""
    store = await open_store(url, clock=ticking(START))
    try:
        await add(store, "pending", ["p1", "p2"])

        await add(store, "pruned", ["r1", "r2"])
        await settle(store, "pruned", OpState.SUCCEEDED, OpState.FAILED)
        await store.set_job_state("pruned", JobState.FINISHED)
        await store.prune(before=START + 10_000)  # the only job done with, so far

        await add(store, "finished", ["f1", "f2", "f3"])
        await settle(store, "finished", OpState.SUCCEEDED, OpState.SUCCEEDED, OpState.FAILED)
        await store.set_job_state("finished", JobState.FINISHED, stop_reason="finished")
        await ran(store, "finished", 75.5, "finished")

        await add(store, "stopped", ["s1", "s2", "s3", "s4"])
        await settle(store, "stopped", OpState.FAILED, OpState.BLOCKED, OpState.UNKNOWN)
        await store.set_job_state("stopped", JobState.STOPPED,
                                  stop_reason="breaker: 80% of the last 20 failed")
        await ran(store, "stopped", 2, "stopped")

        await add(store, "signalled", ["i1", "i2"])
        await settle(store, "signalled", OpState.SUCCEEDED)
        await store.set_job_state("signalled", JobState.INTERRUPTED, stop_reason="SIGTERM")
        await ran(store, "signalled", 1, "interrupted")

        await add(store, "crashed", ["c1", "c2"])
        await settle(store, "crashed", OpState.RUNNING)
        await store.set_job_state("crashed", JobState.RUNNING)
        await ran(store, "crashed", 0, None)  # the process died: the run never ended

        await add(store, "held", ["h1", "h2"])
        await store.set_job_state("held", JobState.RUNNING)
        # Held for years from a fixed moment: live whenever the test runs, the same stamps.
        await store.acquire_job("held", HOLDER, now=START, lease_seconds=1e9)

        await add(store, "cancelled", ["x1", "x2", "x3"])
        await settle(store, "cancelled", OpState.SUCCEEDED)
        await store.cancel_job("cancelled")

        await add(store, "done-later", ["d1"])
        await settle(store, "done-later", OpState.SUCCEEDED)
        await store.set_job_state("done-later", JobState.STOPPED, stop_reason="deadline")

        # A grown file: its first rows name the finished job's operations.
        await add(store, "grown", ["f1", "f2", "f3", "g1"])
    finally:
        await store.close()


def bulkops(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bulkops", *args], capture_output=True,
                          text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)


def shown(db: str) -> list[tuple[int, str, str]]:
    """(exit code, stdout, stderr) of every command in SHOWN, on `db`."""
    results = [bulkops(*args, "--db", db) for args in SHOWN]
    return [(result.returncode, result.stdout, result.stderr) for result in results]


# With an exit hook, the command says whether it loaded SQLAlchemy: the last line of stderr.
PROBE = ("import atexit, sys; atexit.register(lambda: print('sqlalchemy' in sys.modules, "
         "file=sys.stderr)); from bulkops.cli import main; main()")


def loads_sqlalchemy(*args: str) -> bool:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                            text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    return result.stderr.splitlines()[-1] == "True"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    db = tmp_path_factory.mktemp("views") / "bulkops.db"
    asyncio.run(seed(str(db)))
    yield db


@pytest.fixture(scope="module")
def quick_output(seeded: Path) -> list[tuple[int, str, str]]:
    return shown(str(seeded))


def test_the_seed_holds_every_state_the_commands_show(
    quick_output: list[tuple[int, str, str]],
) -> None:
    listing = json.loads(quick_output[1][1])
    assert [entry["job"] for entry in listing] == list(reversed(JOB_IDS))
    states = {entry["job"]: entry["state"] for entry in listing}
    assert states == {
        "pending": "pending", "finished": "finished", "stopped": "stopped",
        "signalled": "interrupted", "crashed": "interrupted", "held": "running",
        "cancelled": "cancelled", "pruned": "pruned", "done-later": "finished",
        "grown": "pending",
    }
    grown = next(entry for entry in listing if entry["job"] == "grown")
    assert (grown["counts"]["succeeded"], grown["counts"]["failed"],
            grown["counts"]["pending"]) == (2, 1, 1)
    assert all(code == 0 and not err for code, _, err in quick_output)


def test_a_sqlite_file_at_the_newest_revision_is_read_without_sqlalchemy(
    seeded: Path,
) -> None:
    assert not loads_sqlalchemy("status", "--db", str(seeded))
    assert not loads_sqlalchemy("jobs", "--json", "--db", f"sqlite:///{seeded}")
    assert loads_sqlalchemy("jobs", "--db", f"sqlite+aiosqlite:///{seeded}")


def test_the_store_s_path_prints_the_same_for_every_job(
    seeded: Path, quick_output: list[tuple[int, str, str]],
) -> None:
    assert shown(f"sqlite+aiosqlite:///{seeded}") == quick_output


@pytest.mark.postgres
async def test_postgresql_prints_the_same_as_the_sqlite_file(
    pg_url: str, quick_output: list[tuple[int, str, str]],
) -> None:
    await seed(pg_url)
    assert await asyncio.to_thread(shown, pg_url) == quick_output


def test_unknown_job_and_missing_database_are_one_line_as_before(
    seeded: Path, tmp_path: Path,
) -> None:
    for db in (str(seeded), f"sqlite+aiosqlite:///{seeded}"):
        for args in (["status", "nope"], ["status", "nope", "--json"]):
            result = bulkops(*args, "--db", db)
            assert (result.returncode, result.stdout, result.stderr) == (
                2, "", "error: no job 'nope' in this database\n")
    missing = tmp_path / "nothing-here.db"
    for args in (["status"], ["jobs"]):
        result = bulkops(*args, "--db", str(missing))
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr == (f"error: no database at {missing}: run a job first, or point "
                                 "--db at its database\n")
    assert not missing.exists()


def test_an_empty_database_at_the_newest_revision_has_no_jobs(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    asyncio.run(seed_nothing(str(db)))
    assert bulkops("jobs", "--db", str(db)).stdout == "no jobs in this database yet\n"
    assert bulkops("jobs", "--json", "--db", str(db)).stdout == "[]\n"
    result = bulkops("status", "--db", str(db))
    assert (result.returncode, result.stderr) == (2, "error: no job in this database yet\n")


async def seed_nothing(url: str) -> None:
    store = await open_store(url)
    await store.close()


def revisions(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}


def test_a_database_at_an_older_revision_is_read_by_the_store_which_upgrades_it(
    seeded: Path, tmp_path: Path,
) -> None:
    """No process holds a job of it (a live lease there would be an earlier bulkops at work,
    which refuses the upgrade: `test_migrated_database`), so the seed's held job is let go in
    both copies: the newest revision's, read by the quick path, and the old one's."""
    expected, db = tmp_path / "new.db", tmp_path / "old.db"
    for path in (expected, db):
        with sqlite3.connect(seeded) as source, sqlite3.connect(path) as copy:
            source.backup(copy)
            copy.execute("UPDATE jobs SET lease_expires_at = 1 WHERE lease_owner IS NOT NULL")
    quick_output = shown(str(expected))
    config = Config(str(REPO / "alembic.ini"), cmd_opts=argparse.Namespace(x=[f"db={db}"]))
    command.downgrade(config, "0004")
    assert revisions(db) == {"0004"}

    assert bulkops("jobs", "--db", str(db)).stdout == quick_output[0][1]

    assert revisions(db) == set(script_heads())  # the store's path ran, and migrated it
    assert shown(str(db)) == quick_output

"""Fixtures of the acceptance tests: sandbox subprocesses, the CLI's environment, a db path.

The helpers themselves live in `harness.py` (importable as `harness` from test modules in this
directory), so a test can also start its own sandboxes and commands.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import SandboxFactory, SandboxProcess, cli_env, start_sandbox
from pgserver import pg_admin_url, pg_schema


@pytest.fixture
def sandbox_factory() -> Iterator[SandboxFactory]:
    """Start sandboxes with `factory(**options)` (options as in `harness.sandbox_flags`);
    every one of them is stopped when the test ends, however it ends."""
    started: list[SandboxProcess] = []

    def factory(**options: Any) -> SandboxProcess:
        sandbox = start_sandbox(**options)
        started.append(sandbox)
        return sandbox

    try:
        yield factory
    finally:
        for sandbox in started:
            sandbox.stop()


@pytest.fixture
def sandbox(sandbox_factory: SandboxFactory) -> SandboxProcess:
    """A healthy sandbox (no faults) with the default key and account."""
    return sandbox_factory()


@pytest.fixture
def env() -> dict[str, str]:
    """The CLI's environment: the sandbox's default key and account, nothing else of ours."""
    return cli_env()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh checkpoint database path (SQLite file) for the test."""
    return tmp_path / "bulkops.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def each_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh checkpoint database of each kind, as a `--db` value: a SQLite file, and a schema
    of its own on the PostgreSQL server the tests found (`pgserver`), dropped after the test
    (skipped, saying why, where no server answers)."""
    if request.param == "sqlite":
        yield str(tmp_path / "bulkops.db")
        return
    admin, why_not = pg_admin_url()
    if admin is None:
        pytest.skip(why_not)
    with pg_schema(admin) as url:
        yield url

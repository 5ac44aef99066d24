"""Which PostgreSQL server the tests use, found once per test session (see tests/conftest.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import socket
import uuid
from collections.abc import Iterator, Sequence

from sqlalchemy import NullPool, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

PG_ENV = "BULKOPS_TEST_PG_URL"
# This project's machines run PostgreSQL here (trust auth, database `test`).
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
PG_PROBE_SECONDS = 3.0


@functools.cache
def pg_admin_url() -> tuple[str | None, str]:
    """(URL of a PostgreSQL server the tests may create roles and schemas on, or None; why not).
    Probed once per test session with a real login, so a server that answers but refuses the
    user is told apart from no server at all."""
    given = os.environ.get(PG_ENV, "").strip()
    if given.lower() in ("off", "no", "0", "false"):
        return None, f"{PG_ENV}={given}: PostgreSQL tests turned off"
    url = given or PG_DEFAULT
    where = make_url(url).set(password=None).render_as_string()
    try:
        with socket.create_connection((make_url(url).host or "127.0.0.1",
                                       make_url(url).port or 5432), timeout=PG_PROBE_SECONDS):
            pass
    except OSError as exc:
        hint = "" if given else f"; set {PG_ENV} to use another server"
        return None, f"no PostgreSQL answers at {where} ({exc.strerror or exc}){hint}"
    try:
        # In a thread of its own: the caller may be inside a running event loop already.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _login(url)).result()
    except Exception as exc:  # any refusal: bad user, no database, auth required
        return None, f"PostgreSQL at {where} refused the tests' login: {exc}"
    return url, ""


async def _login(url: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(
        hide_password=False), timeout=PG_PROBE_SECONDS)
    await conn.close()


def admin_execute(admin_url: str, statements: Sequence[str]) -> None:
    """Run `statements` one by one, each in its own transaction, as the admin user (from
    synchronous code, outside any event loop)."""

    async def execute() -> None:
        engine = create_async_engine(make_url(admin_url).set(drivername="postgresql+asyncpg"),
                                     isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                for statement in statements:
                    await conn.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(execute())


@contextlib.contextmanager
def pg_schema(admin_url: str, prefix: str = "bulkops_a") -> Iterator[str]:
    """A URL whose default schema is new and empty, on the server at `admin_url`: a login role
    and a schema of the same name (PostgreSQL's default search_path "$user" then finds the
    tables there), both dropped after the block."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin_execute(admin_url, [f"CREATE ROLE {name} LOGIN",
                              f"CREATE SCHEMA {name} AUTHORIZATION {name}"])
    try:
        url = make_url(admin_url).set(drivername="postgresql", username=name, password=None)
        yield url.render_as_string(hide_password=False)
    finally:
        admin_execute(admin_url, [
            # A killed process's connections may linger for a moment and keep the role alive.
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'",
            f"DROP SCHEMA IF EXISTS {name} CASCADE", f"DROP ROLE IF EXISTS {name}",
        ])

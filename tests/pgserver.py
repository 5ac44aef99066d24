"""Which PostgreSQL server the tests use, found once per test session (see tests/conftest.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import socket

from sqlalchemy.engine import make_url

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

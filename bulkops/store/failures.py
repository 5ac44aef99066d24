"""Driver, SQLAlchemy and Alembic failures become one `StoreError` with a readable reason, and
what to check when the reason alone does not say it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from bulkops.errors import StoreBusy, StoreError
from bulkops.store.engine import lock_wait

# OSError: asyncpg reports refused connections and timeouts as plain OS errors. Alembic's own
# errors are told by their module (`_from_alembic`): importing Alembic to name its class would
# cost every command that only reads.
_TRANSLATED = (SQLAlchemyError, OSError)

# What to check, after the driver's own words (SQLite's and asyncpg's messages, lower case).
_HINTS = (
    ("unable to open database file",
     "check that the file's directory exists and this user may create files in it"),
    ("readonly database",
     "check that this user may write the file, its -wal and -shm files and their directory"),
    ("file is not a database",
     "it is some other file: point --db at a bulkops database, or at a new file"),
    ("database disk image is malformed",
     "the file is damaged: restore it from a backup, or point --db at a new file"),
    ("disk i/o error", "check the disk and the file system the database is on"),
    ("database or disk is full", "free some space where the database is"),
    ("connect call failed",
     "is the database server running and listening there? check --db / BULKOPS_DB"),
    ("connection refused",
     "is the database server running and listening there? check --db / BULKOPS_DB"),
    ("name or service not known", "check the host name in --db / BULKOPS_DB"),
    ("nodename nor servname", "check the host name in --db / BULKOPS_DB"),
    ("temporary failure in name resolution", "check the host name in --db / BULKOPS_DB"),
    ("password authentication failed", "check the user and password in --db / BULKOPS_DB"),
)
_LOCKED = ("database is locked", "database table is locked")


@asynccontextmanager
async def store_errors(action: str, url: URL) -> AsyncIterator[None]:
    """Re-raise any database failure inside the block as StoreError("<action>: <reason>"), or
    StoreBusy when another process held the write lock for all of `lock_wait()`."""
    started = time.monotonic()
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        if not isinstance(exc, _TRANSLATED) and not _from_alembic(exc):
            raise
        raise translated(action, exc, url, waited=time.monotonic() - started) from exc


def _from_alembic(exc: BaseException) -> bool:
    """An error Alembic raised about the scripts or the database's revision (CommandError)."""
    return type(exc).__module__.split(".")[0] == "alembic"


def translated(action: str, exc: BaseException, url: URL, *, waited: float = 0.0) -> StoreError:
    """The StoreError for `exc`, raised by the block of `action` after `waited` seconds."""
    text = reason(exc, url)
    wait = lock_wait()
    if waited >= wait > 0 and any(locked in text.lower() for locked in _LOCKED):
        # A lock refused at once (a WAL switch, an upgrade of a read) is worth trying again;
        # one waited for until the busy timeout is another process's long transaction.
        return StoreBusy(
            f"{action}: another process held the database's write lock for more than "
            f"{wait:g} s; nothing was done: try again once it has finished, or wait longer "
            "with --lock-wait SECONDS (BULKOPS_LOCK_WAIT)"
        )
    hint = next((hint for match, hint in _HINTS if match in text.lower()), None)
    return StoreError(f"{action}: {text}" + (f" ({hint})" if hint else ""))


def reason(exc: BaseException, url: URL) -> str:
    """The first line of the driver's own message: no SQL text, no row values, no password."""
    # DBAPIError's str() appends the statement and a documentation link; the driver's does not.
    source = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(source).strip().splitlines()
    text = lines[0] if lines else type(source).__name__
    if url.password:
        text = text.replace(str(url.password), "***")
    return text

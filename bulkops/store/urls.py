"""Turn what a user types for `--db` into the async SQLAlchemy URL the store connects with."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from bulkops.errors import StoreError

SQLITE_DRIVER = "sqlite+aiosqlite"
POSTGRES_DRIVER = "postgresql+asyncpg"

# What a user may write before "://", and the async driver each one means.
_DRIVERS = {
    "sqlite": SQLITE_DRIVER,
    SQLITE_DRIVER: SQLITE_DRIVER,
    "postgres": POSTGRES_DRIVER,
    "postgresql": POSTGRES_DRIVER,
    POSTGRES_DRIVER: POSTGRES_DRIVER,
}

_MEMORY = ("", ":memory:")

# What make_url raises: ArgumentError for a URL of no known shape, ValueError for a port that
# is not a number (`host:notaport`, `[::1` read as a port).
_UNPARSEABLE = (ArgumentError, ValueError)


def _why(exc: Exception) -> str:
    if isinstance(exc, ArgumentError):
        return "expected driver://user@host:port/database, sqlite:///path, or a file path"
    return "its port is not a number"


def normalise_url(raw: str) -> URL:
    """A SQLAlchemy URL or a plain file path -> an absolute, async-driver URL.

    A plain path (anything without "://") is a SQLite file. Relative SQLite paths are made
    absolute against the current directory, so the same job database is found again after a
    `cd` inside a script. libpq's `sslmode=` becomes asyncpg's `ssl=` so a URL copied from
    `psql` works as it is.
    """
    text = raw.strip()
    if not text:
        raise StoreError("empty database URL")
    if "://" not in text:
        return sqlite_file_url(Path(text))
    try:
        url = make_url(text)
    except _UNPARSEABLE as exc:
        raise StoreError(f"invalid database URL {redacted(text)}: {_why(exc)}") from exc
    if "\x00" in (url.database or "") or "\x00" in (url.host or ""):
        raise StoreError(f"invalid database URL {redacted(url)}: it holds a NUL character")
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        supported = "sqlite://, postgresql:// (or a plain file path)"
        raise StoreError(f"unsupported database {url.drivername!r}: use {supported}")
    if driver == SQLITE_DRIVER:
        database = url.database or ""
        if database in _MEMORY or database.startswith("file:"):
            return url.set(drivername=driver)
        return sqlite_file_url(Path(database))
    return _postgres_url(url.set(drivername=driver))


def memory_only(raw: str) -> bool:
    """Whether `raw` (a `--db` value) is a SQLite URL of a database that lives only in the
    process's memory: no file (`sqlite://`, `sqlite:///`, `sqlite:///:memory:`) or a URI
    asking for memory (`file::memory:`, `mode=memory`). A URL that does not parse is not:
    the store says what is wrong with it."""
    try:
        url = make_url(raw.strip())
    except _UNPARSEABLE:
        return False
    if _DRIVERS.get(url.drivername) != SQLITE_DRIVER:
        return False
    database = url.database or ""
    # SQLite's URI filenames (https://sqlite.org/uri.html): memory by name, by mode or by the
    # memdb VFS; `file:` with no name is a private temporary database, gone at close too.
    return (database in (*_MEMORY, "file:") or database.startswith("file::memory:")
            or (database.startswith("file:") and (url.query.get("mode") == "memory"
                                                  or url.query.get("vfs") == "memdb")))


def sqlite_file_url(path: Path) -> URL:
    return URL.create(SQLITE_DRIVER, database=str(path.expanduser().absolute()))


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for PostgreSQL and in-memory SQLite."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in _MEMORY or database.startswith("file:"):
        return None
    return Path(database)


def describe(url: URL) -> str:
    """How a message names the database: its file for SQLite, else the URL without password."""
    path = sqlite_path(url)
    return str(path) if path is not None else redacted(url)


def redacted(url: URL | str) -> str:
    """The URL as it may appear in a message: never with its password."""
    if isinstance(url, URL):
        if any(key.lower() == "password" for key in url.query):  # libpq's ?password=
            url = url.update_query_dict({key: "***" for key in url.query
                                         if key.lower() == "password"})
        return url.render_as_string(hide_password=True)
    try:
        return redacted(make_url(url))
    except _UNPARSEABLE:
        # As typed, but for anything between "user:" and "@", as SQLAlchemy hides it.
        hidden = re.sub(r"(://[^:/@]*):.*@", r"\1:***@", url)  # to the last "@": all of it
        return re.sub(r"([?&]password=)[^&]*", r"\1***", hidden, flags=re.IGNORECASE)


def _postgres_url(url: URL) -> URL:
    query = dict(url.query)
    sslmode = query.pop("sslmode", None)
    if sslmode is not None and "ssl" not in query:
        query["ssl"] = sslmode
    return url.set(query=query)

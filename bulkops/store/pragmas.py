"""The settings every SQLite connection of the store starts with, and this process's wait for
another process's write lock.

Plain values, no SQLAlchemy: the CLI sets the wait (`--lock-wait`) and the lean read path
(`quickread`) opens its connection with them without loading the store's engine. Why each
setting is what it is: `bulkops.store.engine`.
"""

from __future__ import annotations

BUSY_TIMEOUT_MS = 30_000  # the default wait for another process's write lock

_SETTINGS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
)
# The pragmas of every connection, with the default wait (`sqlite_pragmas()`: the current one).
SQLITE_PRAGMAS = (f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}", *_SETTINGS)

_lock_wait_ms = BUSY_TIMEOUT_MS


def set_lock_wait(seconds: float) -> None:
    """How long this process waits for another one's write lock before giving up (StoreBusy).
    Set once by the CLI, before any store is opened; connections opened later use it."""
    global _lock_wait_ms  # one process-wide setting, as the driver's own busy_timeout is
    _lock_wait_ms = max(0, round(seconds * 1000))


def lock_wait() -> float:
    """Seconds a write waits for another process's lock (SQLite's busy_timeout)."""
    return _lock_wait_ms / 1000


def sqlite_pragmas() -> tuple[str, ...]:
    """Every connection's pragmas, the lock wait first: the others may need to wait for it."""
    return (f"PRAGMA busy_timeout = {_lock_wait_ms}", *_SETTINGS)

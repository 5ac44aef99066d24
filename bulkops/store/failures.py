"""Driver, SQLAlchemy and Alembic failures become one `StoreError` with a readable reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from alembic.util import CommandError
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from bulkops.errors import StoreError

# OSError: asyncpg reports refused connections and timeouts as plain OS errors.
_TRANSLATED = (SQLAlchemyError, OSError, CommandError)


@asynccontextmanager
async def store_errors(action: str, url: URL) -> AsyncIterator[None]:
    """Re-raise any database failure inside the block as StoreError("<action>: <reason>")."""
    try:
        yield
    except StoreError:
        raise
    except _TRANSLATED as exc:
        raise StoreError(f"{action}: {reason(exc, url)}") from exc


def reason(exc: BaseException, url: URL) -> str:
    """The first line of the driver's own message: no SQL text, no row values, no password."""
    # DBAPIError's str() appends the statement and a documentation link; the driver's does not.
    source = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(source).strip().splitlines()
    text = lines[0] if lines else type(source).__name__
    if url.password:
        text = text.replace(str(url.password), "***")
    return text

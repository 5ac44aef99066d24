"""What `--db` accepts and the async URL each form becomes (no database is opened here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkops.errors import StoreError
from bulkops.store.urls import describe, memory_only, normalise_url, redacted, sqlite_path


def test_a_plain_path_is_an_absolute_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = normalise_url("jobs/bulkops.db")
    assert url.drivername == "sqlite+aiosqlite"
    assert sqlite_path(url) == tmp_path / "jobs" / "bulkops.db"


def test_a_relative_sqlite_url_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert sqlite_path(normalise_url("sqlite:///x.db")) == tmp_path / "x.db"


def test_an_absolute_sqlite_url_keeps_its_path() -> None:
    url = normalise_url("sqlite:////var/lib/bulkops/x.db")
    assert (url.drivername, sqlite_path(url)) == ("sqlite+aiosqlite", Path("/var/lib/bulkops/x.db"))


def test_a_path_with_url_characters_stays_one_path(tmp_path: Path) -> None:
    odd = tmp_path / "a b#c?d.db"
    assert sqlite_path(normalise_url(str(odd))) == odd


def test_in_memory_sqlite_has_no_file() -> None:
    url = normalise_url("sqlite://")
    assert url.drivername == "sqlite+aiosqlite"
    assert sqlite_path(url) is None


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+asyncpg"])
def test_postgres_urls_use_asyncpg(scheme: str) -> None:
    url = normalise_url(f"{scheme}://user@db.example:5433/bulk")
    assert url.drivername == "postgresql+asyncpg"
    assert (url.username, url.host, url.port, url.database) == (
        "user",
        "db.example",
        5433,
        "bulk",
    )


def test_libpq_sslmode_becomes_asyncpg_ssl() -> None:
    url = normalise_url("postgresql://u@h/db?sslmode=require")
    assert dict(url.query) == {"ssl": "require"}


@pytest.mark.parametrize("raw", ["mysql://u@h/db", "postgresql+psycopg2://u@h/db"])
def test_other_databases_and_drivers_are_refused(raw: str) -> None:
    with pytest.raises(StoreError, match="unsupported database"):
        normalise_url(raw)


def test_an_empty_url_is_refused() -> None:
    with pytest.raises(StoreError, match="empty"):
        normalise_url("  ")


def test_messages_never_show_the_password() -> None:
    url = normalise_url("postgresql://u:s3cret@h/db")
    assert "s3cret" not in redacted(url)
    assert "s3cret" not in describe(url)
    assert "s3cret" not in redacted("postgresql://u:s3cret@h/db")


def test_a_sqlite_database_is_described_by_its_file() -> None:
    assert describe(normalise_url("sqlite:////tmp/x.db")) == "/tmp/x.db"


@pytest.mark.parametrize(("given", "memory"), [
    ("sqlite://", True),
    ("sqlite:///", True),
    ("sqlite:///:memory:", True),
    ("sqlite+aiosqlite://", True),
    ("sqlite:///file::memory:?cache=shared&uri=true", True),
    ("sqlite:///file:jobs?mode=memory&uri=true", True),
    ("sqlite:///file:/tmp/jobs.db?mode=ro&uri=true", False),
    ("sqlite:///file:?uri=true", True),  # a private temporary database
    ("sqlite:///file:/tmp/jobs.db?vfs=memdb&uri=true", True),
    ("sqlite:///jobs.db", False),
    ("postgresql://u@h/db", False),
    ("sqlite://:not a url", False),  # make_url: ValueError (the port)
])
def test_memory_only_tells_a_database_that_ends_with_the_process(given: str,
                                                                 memory: bool) -> None:
    assert memory_only(given) is memory


@pytest.mark.parametrize(("given", "why"), [
    ("postgresql://bob:s3cr@t@db.example:54x2/jobs", "its port is not a number"),
    ("postgresql://bob:s3cr@t@[::1/jobs", "its port is not a number"),
    ("no such:scheme://bob:s3cr@t@db.example/jobs", "expected driver://"),
])
def test_an_unparseable_url_is_a_store_error_that_hides_the_password(given: str,
                                                                     why: str) -> None:
    with pytest.raises(StoreError) as caught:
        normalise_url(given)
    message = str(caught.value)
    assert why in message and "bob:***@" in message
    assert "s3cr" not in message and "@t" not in message


@pytest.mark.parametrize("given", [
    "postgresql://bob@db.example:5432/jobs?password=s3cret",
    "postgresql://bob@db.example:54x2/jobs?sslmode=require&PASSWORD=s3cret",
])
def test_a_password_in_the_query_is_hidden_too(given: str) -> None:
    assert "s3cret" not in redacted(given)
    with pytest.raises(StoreError) as caught:
        normalise_url(given.replace("5432", "54x2"))
    assert "s3cret" not in str(caught.value)


def test_a_nul_character_in_a_path_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="NUL"):
        normalise_url("sqlite:///jobs%00.db")

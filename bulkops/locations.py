"""Where bulkops keeps its files when the user does not say: one database per user.

The default database lives in the platform's per-user data directory (platformdirs:
`~/.local/share/bulkops` on Linux, `~/Library/Application Support/bulkops` on macOS,
`%LOCALAPPDATA%\\bulkops` on Windows), so the same file run from any folder finds its history.
An existing `bulkops.db` in the current folder (where older versions kept it) is still used.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from bulkops.errors import ConfigError

APP_NAME = "bulkops"
_NAME_MAX = 255  # a file name's bytes on the common file systems, where none can be read
DB_NAME = "bulkops.db"
# Stored as a job's base URL when it ran against the in-process sandbox: its port changes on
# every start, and `resume` must know to start it again with the same state.
SANDBOX_TARGET = "sandbox:in-process"


@dataclass(frozen=True)
class DbChoice:
    """The database a command uses: `url` as given to the store, `default` when the user
    named none, `note` a line to tell the user (the legacy folder database was picked)."""

    url: str
    default: bool
    note: str | None = None

    @property
    def shown(self) -> str:
        """`url` as output may show it (next steps, summaries): never with its password."""
        if "://" not in self.url:
            return self.url  # a file path
        from bulkops.store.urls import redacted

        return redacted(self.url)


def data_dir() -> Path:
    return platformdirs.user_data_path(APP_NAME, appauthor=False)


def choose_db(given: str | None, cwd: Path | None = None) -> DbChoice:
    """The database for `--db`/`BULKOPS_DB` = `given` (None or "": the default).

    A file path is made absolute, so that the commands bulkops prints can be pasted anywhere.
    Only the per-user database is `default`: the folder's old `bulkops.db` is named in them.
    """
    if given:
        _refuse_memory(given)
        if "://" in given:
            return DbChoice(given, default=False)
        return DbChoice(str((cwd or Path.cwd()) / Path(given).expanduser()), default=False)
    legacy = (cwd or Path.cwd()) / DB_NAME
    if legacy.is_file():
        return DbChoice(
            str(legacy), default=False,
            note=f"note: using {DB_NAME} in this folder (new databases go to {data_dir()})",
        )
    return DbChoice(str(data_dir() / DB_NAME), default=True)


def _refuse_memory(given: str) -> None:
    """ConfigError for a `--db` naming an in-memory SQLite database (`:memory:`, or a URL as
    `memory_only` tells): every command would keep its work there and lose it as it ends
    (`submit` would print a job id that no later command can find)."""
    text = given.strip()
    if text != ":memory:":  # SQLite's own name for it, given as a path
        if "://" not in text or not text.lower().startswith("sqlite"):
            return
        # A plain sqlite:///path is a file, told without loading SQLAlchemy (`status` and
        # `jobs` read such a file without it); the rest as SQLAlchemy reads the URL.
        from bulkops.store.quickread import database_file

        if database_file(text) is not None:
            return
        from bulkops.store.urls import memory_only

        if not memory_only(text):
            return
    raise ConfigError(f"--db {given} is a database in memory, which ends with the command "
                      "(and every job in it): give a file (a path, or "
                      "sqlite:///path/to/bulkops.db) or a PostgreSQL URL")


def prepare_default(choice: DbChoice) -> None:
    """Create the data directory for a default database about to be written. Raises
    ConfigError when it cannot be made (say, XDG_DATA_HOME names a file)."""
    if not choice.default:
        return
    folder = Path(choice.url).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the data directory {folder}: {exc.strerror}; "
                          "pass --db to keep the database elsewhere") from None


def database_exists(db_url: str) -> bool:
    """Whether the database at `db_url` is there already (a server database always counts:
    only a SQLite file can be missing). Raises ConfigError for a name too long for SQLite's
    files (`sqlite_name_problem`), or a folder that cannot be looked into."""
    text = db_url.strip()
    if text and "://" not in text:  # a file path (the default database's): as the store reads it
        return _sqlite_file_exists(Path(text).expanduser())
    # Here, not at the top: `bulkops.store.urls` loads SQLAlchemy's core (~0.2 s, ~10 MB),
    # which commands that never name a database by URL (--help, validate) need not pay for.
    from bulkops.store.urls import normalise_url, sqlite_path

    path = sqlite_path(normalise_url(db_url))
    return path is None or _sqlite_file_exists(path)


def _sqlite_file_exists(path: Path) -> bool:
    problem = sqlite_name_problem(path)
    if problem is not None:
        raise ConfigError(f"cannot use database {path}: {problem}")
    return file_exists(path, "database")


def file_exists(path: Path, what: str) -> bool:
    """Whether anything is at `path`. Raises ConfigError naming `what` when its folder cannot
    be looked into, or its name is too long for the file system."""
    try:
        return path.exists()
    except OSError as exc:
        raise ConfigError(f"cannot look for {what} {path}: {exc.strerror}") from None


# The longest name SQLite gives a file it keeps beside a database (its rollback journal; the
# write-ahead log and its index are "-wal" and "-shm").
_SQLITE_COMPANION = "-journal"


def sqlite_name_problem(path: Path) -> str | None:
    """Why a SQLite database cannot have this file name, or None: SQLite keeps files named
    after it beside it (`<name>-journal`, `-wal`, `-shm`), which must fit the folder's file
    system too. A name only a little short of the limit makes an empty database file that
    SQLite then cannot open ("unable to open database file"), every time."""
    return name_problem(path, len(_SQLITE_COMPANION), "the files SQLite keeps beside it")


def name_problem(path: Path, longer_by: int, beside: str) -> str | None:
    """Why `path` cannot be a file that has files named after it, at most `longer_by` bytes
    longer, kept in its folder (what `beside` says they are), or None: all fit the folder's
    file system's limit on a name (`os.pathconf` PC_NAME_MAX)."""
    try:
        limit = os.pathconf(path.parent, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # Windows has no pathconf; no such folder
        limit = _NAME_MAX  # (said elsewhere); no limit to read
    size = len(os.fsencode(path.name))
    if size + longer_by <= limit:
        return None
    return (f"its file name is {size} bytes long, and the file system allows {limit}, less "
            f"{longer_by} for {beside}: use a shorter name")


def plain_file(path: Path) -> bool:
    """Whether `path` is a regular file; False too when it cannot be looked at (a name too
    long, a folder not to be searched): for a fast path whose caller's other path opens the
    file, and says what is wrong with it."""
    try:
        return path.is_file()
    except OSError:
        return False


def sandbox_state_file(db_url: str) -> Path:
    """Where the in-process sandbox of `run --sandbox` keeps its world: beside a SQLite
    database, or in the data directory for a server database (named by its URL's digest).
    Raises ConfigError when the files it needs there cannot have their names
    (`state_file_problem`): before a file is read, not at the first request."""
    from bulkops.store.urls import normalise_url, sqlite_path  # as in database_exists

    path = sqlite_path(normalise_url(db_url))
    if path is not None:
        path = path.with_name(path.name + ".sandbox.json")
        problem = state_file_problem(path)
        if problem is not None:
            raise ConfigError(f"cannot keep the sandbox's world beside the database, in "
                              f"{path}: {problem} for the database")
        return path
    digest = hashlib.sha256(db_url.encode()).hexdigest()[:12]
    return data_dir() / f"sandbox-{digest}.json"


# How much longer than a sandbox state file's name the names of the files kept beside it
# are: its journal (+ ".journal") and the new copy made while it is written whole: "." +
# name + "." + eight random characters + ".tmp" (`sandbox.statefile.write_atomically`, whose
# tempfile.mkstemp draws eight).
_STATE_FILE_BESIDE = max(len(".journal"), len("..") + 8 + len(".tmp"))


def state_file_problem(path: Path) -> str | None:
    """Why the sandbox cannot keep its world in `path` (see `name_problem`), or None."""
    return name_problem(path, _STATE_FILE_BESIDE,
                        "its journal and the new copy made while it is written")

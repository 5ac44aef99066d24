"""Every command, started where Wix or the database cannot be reached or used, ends with one
clear line (what was tried, what to check) and the contract's exit code: never a traceback.

Commands run in parallel within a test (each is a process of its own), so the whole matrix
takes seconds per condition rather than seconds per command.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import socket
import sqlite3
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from harness import (
    SandboxProcess,
    bulkops_command,
    cli_env,
    free_port,
    running_sandbox,
    write_job_csv,
)

ROWS = [{"action": "create_site", "key": "sf-site", "site_name": "Start Failures Site"}]
LINE_PREFIXES = ("error:", "stopped:", "busy:")
NEVER = ("Traceback", "ExceptionGroup", 'File "')
TIMEOUT = 60.0
# Reads before the first write are tried at least five times: keep their pauses short.
FAST_READS = ["--max-attempts", "1", "--backoff-base", "0.01", "--timeout", "0.5"]

Result = subprocess.CompletedProcess[str]


# -- running commands -----------------------------------------------------------------------

_PR_CAPBSET_DROP = 24
_DAC_CAPS = (1, 2, 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER


def _drop_dac_caps() -> None:
    """In the child, before exec: root without the capabilities that let it ignore file modes,
    so chmod 444/555 mean for it what they mean for any user."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in _DAC_CAPS:
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _modes_bind_root() -> bool:
    """Whether a child started with `_drop_dac_caps` is refused a chmod 444 file."""
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"bulkops-mode-probe-{os.getpid()}"
    probe.write_text("")
    probe.chmod(0o444)
    try:
        result = subprocess.run(["sh", "-c", f"echo x > {probe}"], preexec_fn=_drop_dac_caps,
                                capture_output=True, check=False, timeout=10)
        return result.returncode != 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        probe.unlink()


AS_ROOT = os.geteuid() == 0
MODES_HOLD = not AS_ROOT or _modes_bind_root()


def cli(args: Sequence[str], env: Mapping[str, str], timeout: float = TIMEOUT) -> Result:
    """`bulkops ARGS` as `harness.run_cli` runs it; as root, without the file-mode override
    (when this system lets a process give it up)."""
    drop = _drop_dac_caps if AS_ROOT and MODES_HOLD else None
    return subprocess.run([*bulkops_command(), *args], env=dict(env), capture_output=True,
                          text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL,
                          preexec_fn=drop)


def cli_all(commands: Mapping[str, Sequence[str]], env: Mapping[str, str]) -> dict[str, Result]:
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        futures = {name: pool.submit(cli, args, env) for name, args in commands.items()}
        return {name: future.result() for name, future in futures.items()}


def one_line(result: Result, code: int, *needles: str) -> str:
    """Assert the exit code, no traceback anywhere, and (exit != 0) exactly one error line
    holding every needle; returns that line."""
    output = result.stdout + result.stderr
    for marker in NEVER:
        assert marker not in output, f"{marker!r} in the output of {result.args}:\n{output}"
    assert result.returncode == code, (
        f"exit {result.returncode}, expected {code}: {result.args}\n{output}")
    lines = [line for line in result.stderr.splitlines() if line.startswith(LINE_PREFIXES)]
    if code == 0:
        assert not lines, output
        return ""
    assert len(lines) == 1, f"not one error line: {result.args}\n{output}"
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    assert "sandbox-key" not in output and "refused-key-123" not in output
    return lines[0]


# -- what the commands run on -----------------------------------------------------------------


@pytest.fixture(scope="module")
def job_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_job_csv(tmp_path_factory.mktemp("job") / "job.csv", ROWS)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, job_file: Path) -> tuple[Path, str]:
    """A database holding one unfinished job (stored by a run that found no Wix): its path and
    the job's id. Tests use copies of it."""
    db = tmp_path_factory.mktemp("seeded") / "seeded.db"
    url = f"http://127.0.0.1:{free_port()}"
    result = cli(["run", str(job_file), "--db", str(db), "--base-url", url,
                  "--outage-limit", "1", *FAST_READS], cli_env())
    one_line(result, 3, "--outage-limit")
    listing = json.loads(cli(["jobs", "--json", "--db", str(db)], cli_env()).stdout)
    return db, listing[0]["job"]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with running_sandbox() as process:
        yield process


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A loopback address that accepts connections and never answers (a listening socket
    nobody accepts on: the kernel completes the handshake)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def commands(job: Path, db: str, job_id: str) -> dict[str, list[str]]:
    """Every command of the CLI that touches the database, each with what it needs."""
    flags = ["--db", db]
    return {
        "run": ["run", str(job), "--sandbox", "--rate", "50/s", *flags],
        "resume": ["resume", *flags, "--outage-limit", "1", *FAST_READS],
        "validate": ["validate", str(job), *flags],
        "plan": ["plan", str(job), "--sandbox", *flags],
        "status": ["status", *flags],
        "jobs": ["jobs", *flags],
        "report": ["report", *flags],
        "cancel": ["cancel", job_id, *flags],
        "prune": ["prune", "--older-than", "1", *flags],
        "submit": ["submit", str(job), "--sandbox", *flags],
        # The seeded job stopped early (Wix unreachable): a worker leaves it to a person, so
        # it only reads.
        "worker": ["worker", "--until-idle", *flags, "--outage-limit", "1", *FAST_READS],
    }


# -- Wix cannot be reached --------------------------------------------------------------------


@pytest.mark.parametrize("where", ["refused", "unresolvable", "blackhole"])
def test_unreachable_wix_is_one_stopped_line_naming_the_url(
    where: str, tmp_path: Path, job_file: Path, request: pytest.FixtureRequest
) -> None:
    """run and resume wait --outage-limit for Wix's first answer, then stop (exit 3, rows
    pending) naming the URL and what to check; plan says the same after its reads (exit 3)."""
    url = {"refused": "http://127.0.0.1:9", "unresolvable": "https://no-such-host.invalid",
           "blackhole": ""}[where] or request.getfixturevalue("blackhole")
    db = str(tmp_path / "wix.db")
    tries = ["--base-url", url, *FAST_READS]
    first = cli_all({
        "run": ["run", str(job_file), "--db", db, "--outage-limit", "1", *tries],
        "plan": ["plan", str(job_file), "--db", db, *tries],
    }, cli_env())
    one_line(first["run"], 3, url, "--base-url", "--outage-limit")
    one_line(first["plan"], 3, url, "--base-url", "nothing was sent")
    resumed = cli(["resume", "--db", db, "--outage-limit", "1", *FAST_READS], cli_env())
    one_line(resumed, 3, url, "--base-url")


# -- credentials ------------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "env", "needle"), [
    ("account id not a GUID", {"account_id": "not-a-guid"}, "not-a-guid"),
    ("no API key", {"api_key": None}, "WIX_API_KEY"),
    ("key the sandbox refuses", {"api_key": "refused-key-123"}, "WIX_API_KEY"),
])
def test_bad_credentials_are_one_error_line_exit_2(
    case: str, env: dict[str, str | None], needle: str, tmp_path: Path, job_file: Path,
    sandbox: SandboxProcess, seeded: tuple[Path, str],
) -> None:
    """run, resume and plan refuse bad credentials with exit 2 before anything is sent."""
    environment = cli_env(**env)  # type: ignore[arg-type]
    db = tmp_path / "creds.db"
    shutil.copy(seeded[0], db)
    target = ["--base-url", sandbox.base_url, *FAST_READS]
    results = cli_all({
        "run": ["run", str(job_file), "--db", str(db), *target],
        "plan": ["plan", str(job_file), "--db", str(db), *target],
    }, environment)
    one_line(results["run"], 2, needle)
    one_line(results["plan"], 2, needle)
    # The latest unfinished job: the one `run` stored before Wix refused the key, else the
    # seeded one, whose account a different account id may not resume.
    resumed = cli(["resume", "--db", str(db), *FAST_READS], environment)
    one_line(resumed, 2, "account" if case.startswith("account") else needle)
    assert sandbox.state()["requests"]["by_endpoint"].get("create_site", 0) == 0


# -- the database cannot be used --------------------------------------------------------------

WRITES = {"run", "resume", "cancel", "submit"}
READS = {"validate", "plan", "status", "jobs", "report", "prune", "worker"}


def _missing_dir(tmp: Path, seeded: Path) -> str:
    return str(tmp / "no-such-dir" / "bulkops.db")


def _parent_is_file(tmp: Path, seeded: Path) -> str:
    (tmp / "a-file").write_text("not a directory\n")
    return str(tmp / "a-file" / "bulkops.db")


def _unwritable_dir(tmp: Path, seeded: Path) -> str:
    locked = tmp / "r-x"
    locked.mkdir()
    locked.chmod(0o555)
    return str(locked / "bulkops.db")


def _unwritable_dir_with_db(tmp: Path, seeded: Path) -> str:
    locked = tmp / "r-x-db"
    locked.mkdir()
    shutil.copy(seeded, locked / "bulkops.db")
    locked.chmod(0o555)
    return str(locked / "bulkops.db")


def _read_only_file(tmp: Path, seeded: Path) -> str:
    db = tmp / "read-only.db"
    shutil.copy(seeded, db)
    db.chmod(0o444)
    return str(db)


def _read_only_uri(tmp: Path, seeded: Path) -> str:
    """A file SQLite itself opens read-only: every write fails, whoever runs the test."""
    db = tmp / "ro-uri.db"
    shutil.copy(seeded, db)
    return f"sqlite:///file:{db}?mode=ro&uri=true"


def _not_sqlite(tmp: Path, seeded: Path) -> str:
    db = tmp / "random.db"
    db.write_bytes(os.urandom(4096))
    return str(db)


def _a_directory(tmp: Path, seeded: Path) -> str:
    (tmp / "dir.db").mkdir()
    return str(tmp / "dir.db")


def _name_too_long(tmp: Path, seeded: Path) -> str:
    """A file name longer than the file system allows (255 bytes on most): no file, ever."""
    return str(tmp / ("long" * 80 + ".db"))


def _name_too_long_for_the_log(tmp: Path, seeded: Path) -> str:
    """A name the file system takes, but not with "-journal" after it: SQLite would make an
    empty file it then cannot open."""
    return str(tmp / ("near" * 62 + ".db"))  # 251 bytes


def _name_too_long_for_the_sandbox(tmp: Path, seeded: Path) -> str:
    """Room for SQLite's files, none for the sandbox's world beside the database (its
    journal, its new copy): `run --sandbox` answered 500 to every request until it gave up."""
    return str(tmp / ("sbx" * 76 + ".db"))  # 231 bytes: 244 with ".sandbox.json"


def _memory_url(tmp: Path, seeded: Path) -> str:
    """No file at all: `submit` stored its job there and printed an id nothing could find."""
    return "sqlite:///"


def _memory_name(tmp: Path, seeded: Path) -> str:
    return ":memory:"


def _memory_uri(tmp: Path, seeded: Path) -> str:
    return "sqlite:///file:jobs?mode=memory&cache=shared&uri=true"


def _port_not_a_number(tmp: Path, seeded: Path) -> str:
    """make_url's ValueError, which was an 'unexpected failure', exit 3."""
    return "postgresql://postgres:secret@127.0.0.1:5432x/test"


def _postgres_down(tmp: Path, seeded: Path) -> str:
    return "postgresql://postgres@127.0.0.1:1/test"


def _code(everything: int, **by_command: int) -> Callable[[str], int]:
    return lambda name: by_command.get(name, everything)


# condition -> (the --db, needs file modes to hold, expected exit per command, needle)
_NO_DB_YET = _code(2, plan=0)  # plan never creates a database: it plans without history
_READ_ONLY = _code(0, run=2, resume=2, cancel=2, submit=2)
CONDITIONS: dict[str, tuple[Callable[[Path, Path], str], bool, Callable[[str], int], str]] = {
    "missing directory": (_missing_dir, False, _NO_DB_YET, "no-such-dir"),
    "parent is a file": (_parent_is_file, False, _NO_DB_YET, "a-file"),
    "unwritable directory": (_unwritable_dir, True, _NO_DB_YET, "r-x"),
    "database in unwritable directory": (_unwritable_dir_with_db, True, _code(2), "r-x-db"),
    "read-only file (chmod 444)": (_read_only_file, True, _READ_ONLY, "read-only.db"),
    "read-only file (SQLite mode=ro)": (_read_only_uri, False, _READ_ONLY, "readonly"),
    "not a SQLite file": (_not_sqlite, False, _code(2), "random.db"),
    "a directory": (_a_directory, False, _code(2), "dir.db"),
    "PostgreSQL not listening": (_postgres_down, False, _code(2), "127.0.0.1:1"),
    "file name too long": (_name_too_long, False, _code(2), "longlong"),
    "file name too long for SQLite's log": (_name_too_long_for_the_log, False, _code(2),
                                            "use a shorter name"),
    "file name too long for the sandbox's world": (_name_too_long_for_the_sandbox, False,
                                                   _code(2), "sbxsbx"),
    "a database in memory (sqlite:///)": (_memory_url, False, _code(2), "in memory"),
    "a URL whose port is not a number": (_port_not_a_number, False, _code(2),
                                         "port is not a number"),
    "a database in memory (:memory:)": (_memory_name, False, _code(2), "in memory"),
    "a database in memory (mode=memory)": (_memory_uri, False, _code(2), "in memory"),
}


WALK_ALL = {"missing directory", "read-only file (SQLite mode=ro)", "file name too long",
            "file name too long for SQLite's log", "file name too long for the sandbox's world",
            "a database in memory (sqlite:///)"}
SAMPLED = ("run", "status", "report")


@pytest.mark.parametrize("condition", list(CONDITIONS))
def test_unusable_database_is_one_error_line_from_every_command(
    condition: str, tmp_path: Path, job_file: Path, seeded: tuple[Path, str]
) -> None:
    """Each command either works (reads of a read-only database) or ends with one line naming
    the database and what to check, exit 2; never a traceback."""
    make, needs_modes, expected, needle = CONDITIONS[condition]
    if needs_modes and not MODES_HOLD:
        pytest.skip("running as root where file modes cannot be made to bind (no "
                    "PR_CAPBSET_DROP): the parent-is-a-file and SQLite mode=ro cases cover it")
    db = make(tmp_path, seeded[0])
    every = commands(job_file, db, seeded[1])
    # Every command under the conditions that split them (no database yet; reads work but
    # writes fail); a writer and two readers under the rest, each about a second of CPU.
    walked = every if condition in WALK_ALL else {name: every[name] for name in SAMPLED}
    results = cli_all(walked, cli_env())
    for name, result in results.items():
        code = expected(name)
        line = one_line(result, code)
        if code:
            assert needle in line or needle in db, f"{name}: {line}"
            assert ("--db" in line or db in line or "database" in line), f"{name}: {line}"
    if condition.startswith("file name too long"):
        assert not os.path.exists(db)  # no empty file left that SQLite cannot open
    if condition == "file name too long for the sandbox's world":
        for name in ("run", "plan", "submit"):
            assert "sandbox's world" in one_line(results[name], 2), name


def test_another_programs_sqlite_database_is_refused_by_every_command_and_left_untouched(
    tmp_path: Path, job_file: Path, seeded: tuple[Path, str]
) -> None:
    """A --db naming some other program's SQLite file (a mistyped path, the app's own
    database) gets one line naming the file, exit 2, from every command, reads included; the
    file is left byte for byte as it was: no bulkops tables added, no switch to WAL."""
    db = tmp_path / "app.sqlite"
    with contextlib.closing(sqlite3.connect(db)) as app:
        app.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        app.execute("INSERT INTO customers (name) VALUES ('Acme')")
        app.commit()
    before = db.read_bytes()
    results = cli_all(commands(job_file, str(db), seeded[1]), cli_env())
    for name, result in results.items():
        line = one_line(result, 2, str(db), "another program's database", "customers")
        assert "--db" in line, f"{name}: {line}"
    assert db.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["app.sqlite"]


# -- the database is locked by another process ------------------------------------------------


@contextlib.contextmanager
def held_exclusively(db: Path) -> Iterator[None]:
    """Another process's write transaction on `db` (BEGIN EXCLUSIVE), held for the block."""
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


def test_locked_database_reads_work_and_writes_end_with_one_line(
    tmp_path: Path, job_file: Path, seeded: tuple[Path, str]
) -> None:
    """While another process holds the write lock, status, jobs and report read as usual;
    commands that write wait --lock-wait, then end with one line naming the lock (exit 2)."""
    db = tmp_path / "locked.db"
    shutil.copy(seeded[0], db)
    env = cli_env(BULKOPS_LOCK_WAIT="0.5")
    with held_exclusively(db):
        results = cli_all(commands(job_file, str(db), seeded[1]), env)
    for name in ("status", "jobs", "report", "validate", "plan", "worker"):
        one_line(results[name], 0)
    for name in ("run", "resume", "cancel", "prune", "submit"):
        one_line(results[name], 2, "write lock", "--lock-wait")


def test_lock_wait_flag_is_taken_and_a_short_lock_is_waited_for(
    tmp_path: Path, job_file: Path, seeded: tuple[Path, str]
) -> None:
    """--lock-wait is an option of every database command; a lock released within it is
    simply waited for."""
    db = tmp_path / "brief.db"
    shutil.copy(seeded[0], db)
    with held_exclusively(db):
        busy = cli(["prune", "--older-than", "1", "--db", str(db), "--lock-wait", "0.2"],
                   cli_env())
    one_line(busy, 2, "0.2 s", "--lock-wait")
    ok = cli(["cancel", seeded[1], "--db", str(db), "--lock-wait", "5"], cli_env())
    one_line(ok, 0)


# -- the sandbox command ----------------------------------------------------------------------


def test_sandbox_on_a_taken_port_is_one_error_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = cli(["sandbox", "--port", str(port)], cli_env(), timeout=20)
    one_line(result, 2, str(port), "--port")


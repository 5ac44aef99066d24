"""Bad input stops `bulkops` with exit 2 before anything reaches Wix.

Bad job files: every problem is named by its line (CSV physical line, JSON element index), for
`validate` and for `run`, and the sandbox sees zero requests. Missing credentials, bad flag
values and plain http to a non-loopback host: exit 2, nothing sent. A wrong key: exit 2 after
the one read that checks it, no site created.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import (
    ACCOUNT_ID,
    SANDBOX_KEY,
    SUB_ACCOUNTS,
    SandboxProcess,
    cli_env,
    fast_run_flags,
    realistic_rows,
    request_count,
    run_cli,
    running_sandbox,
    write_job_csv,
)

# (line, column or None, words the reason must contain)
Problem = tuple[int, str | None, str]


@dataclass(frozen=True)
class BadFile:
    name: str
    content: bytes
    problems: tuple[Problem, ...]


ROW_PROBLEMS_CSV = b"""action,key,site_name,site,to_account,email,role,sites,depends_on
create_site,alpha,Alpha Bakery,,,,,,
launch_rocket,bravo,,,,,,,
site_invite,charlie,,@alpha,,not-an-email,Website Manager,,
transfer_site,delta,,@nowhere,22222222-2222-4222-8222-222222222221,,,,
create_site,echo,Echo Cafe,,,,,,@foxtrot
create_site,foxtrot,Foxtrot Spa,,,,,,@echo
create_site,alpha,Another Alpha,,,,,,
create_site,golf,ALPHA BAKERY,,,,,,
"""

ROW_PROBLEMS_JSON = json.dumps([
    {"action": "create_site", "key": "a", "site_name": "Alpha"},
    {"action": "site_invite", "site": "@a", "email": "bad@", "role": "Website Manager"},
    {"action": "transfer_site", "site": "@zulu", "to_account": SUB_ACCOUNTS[0]},
], indent=1).encode()

BAD_FILES = (
    BadFile("rows.csv", ROW_PROBLEMS_CSV, (
        (3, "action", "unknown action"),
        (4, "email", "not a valid email"),
        (5, "site", "refers to no row"),
        (6, "depends_on", "cycle"),
        (8, "key", "duplicate key"),
        (9, "site_name", "duplicate site name"),
    )),
    BadFile("rows.json", ROW_PROBLEMS_JSON, (
        (2, "email", "not a valid email"),
        (3, "site", "refers to no row"),
    )),
    BadFile("header.csv", b"action,key,colour\ncreate_site,a,red\n", (
        (1, "colour", "unknown column"),
        (1, "site_name", "no site_name column"),
    )),
    BadFile("latin1.csv", b"action,key,site_name\ncreate_site,a,Alpha\ncreate_site,b,Caf\xe9\n",
            ((3, None, "not UTF-8"),)),
    BadFile("empty.csv", b"", ((1, None, "no operations"),)),
    BadFile("broken.json", b'[{"action": "create_site", "site_name": "A"},\n {"action": \n',
            ((3, None, "invalid JSON"),)),
)
# The JSON file's element-index line numbers are checked with `validate` only: `run` reads job
# files through the same validation, and every process start costs a second or more.
BAD_FILE_CASES = [(bad, command) for bad in BAD_FILES for command in ("validate", "run")
                  if (bad.name, command) != ("rows.json", "run")]

# Refusals that are not about the job file: (case id, extra run flags, environment changes).
# "base-url" points plain http at 0.0.0.0, which is not a loopback name but reaches this very
# sandbox: had the key been sent in clear, the sandbox would have counted the request.
MISSING_KEY, MISSING_ACCOUNT = "missing WIX_API_KEY", "missing WIX_ACCOUNT_ID"
# The key (and, for `submit`, the account) is checked before the file is read: one line at
# once, whatever the file holds, or if there is none.
MISSING_KEY_BAD_FILE = "missing WIX_API_KEY, a file with bad rows"
PLAN_MISSING_KEY_NO_FILE = "plan: missing WIX_API_KEY, no such file"
SUBMIT_MISSING_ACCOUNT_NO_FILE = "submit: missing WIX_ACCOUNT_ID, no such file"
PLAN_MISSING_BOTH = "plan: missing WIX_API_KEY and WIX_ACCOUNT_ID"
# Malformed credentials: (case id, environment changes, what the one line names).
MALFORMED = {
    "control character in WIX_API_KEY": ({"api_key": "sandbox\x07key"}, "WIX_API_KEY"),
    "account id not a GUID": ({"account_id": "notauuid"}, "'notauuid' is not a Wix account id"),
}
BAD_FLAGS = {"rate nonsense": ["--rate", "nonsense"], "concurrency 0": ["--concurrency", "0"]}
PLAIN_HTTP = "plain http to 0.0.0.0"


@dataclass(frozen=True)
class Refusals:
    """Every command that must be refused before sending, run once against one sandbox."""

    sandbox: SandboxProcess
    results: dict[str, subprocess.CompletedProcess[str]]
    requests_after: int  # the sandbox's request count once all of them had exited
    good_job: Path
    folder: Path


def _refusal_commands(folder: Path, base_url: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Case id -> (arguments, environment); bad files under "NAME validate" / "NAME run"."""
    env = cli_env()
    good_job = str(write_job_csv(folder / "good.csv", realistic_rows(4, tag="input")))
    commands: dict[str, tuple[list[str], dict[str, str]]] = {}
    for bad in BAD_FILES:
        path = folder / bad.name
        path.write_bytes(bad.content)
        flags = fast_run_flags(folder / f"{bad.name}.db", base_url)
        commands[f"{bad.name} validate"] = (["validate", str(path)], env)
        if (bad, "run") in BAD_FILE_CASES:
            commands[f"{bad.name} run"] = (["run", str(path), *flags], env)
    run_good = ["run", good_job, *fast_run_flags(folder / "good.db", base_url)]
    commands[MISSING_KEY] = (run_good, cli_env(api_key=None))
    commands[MISSING_ACCOUNT] = (run_good, cli_env(account_id=None))
    bad_run = commands[f"{BAD_FILES[0].name} run"][0]
    commands[MISSING_KEY_BAD_FILE] = (bad_run, cli_env(api_key=None))
    absent = str(folder / "absent.csv")
    commands[PLAN_MISSING_KEY_NO_FILE] = (["plan", absent, "--base-url", base_url],
                                          cli_env(api_key=None))
    commands[PLAN_MISSING_BOTH] = (["plan", good_job, "--base-url", base_url],
                                   cli_env(api_key=None, account_id=None))
    commands[SUBMIT_MISSING_ACCOUNT_NO_FILE] = (
        ["submit", absent, "--db", str(folder / "submit.db"), "--base-url", base_url],
        cli_env(account_id=None))
    for case, (changes, _) in MALFORMED.items():
        commands[case] = (run_good, cli_env(**changes))
    for case, extra in BAD_FLAGS.items():
        commands[case] = ([*run_good, *extra], env)
    port = base_url.rsplit(":", 1)[1]
    commands[PLAIN_HTTP] = ([*run_good, "--base-url", f"http://0.0.0.0:{port}"], env)
    return commands


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Refusals]:
    """Run every refused command a few at a time (each costs a process start and they are
    independent), then count what reached the sandbox."""
    folder = tmp_path_factory.mktemp("refusals")
    with running_sandbox() as sandbox:
        commands = _refusal_commands(folder, sandbox.base_url)
        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = {case: pool.submit(run_cli, args, env, 60)
                       for case, (args, env) in commands.items()}
            results = {case: future.result() for case, future in futures.items()}
        yield Refusals(sandbox, results, request_count(sandbox.base_url), folder / "good.csv",
                       folder)


@pytest.mark.parametrize(("bad", "command"), BAD_FILE_CASES,
                         ids=[f"{bad.name}-{command}" for bad, command in BAD_FILE_CASES])
def test_bad_job_file_exits_2_naming_every_problem_by_line(
    refusals: Refusals, bad: BadFile, command: str,
) -> None:
    """Exit 2, one stderr line per problem with its line, column and reason, and a closing
    line saying how many problems there were and that nothing was sent."""
    result = refusals.results[f"{bad.name} {command}"]
    assert result.returncode == 2, result.stdout + result.stderr
    reported = [line for line in result.stderr.splitlines() if f"{bad.name}: line " in line]
    assert len(reported) == len(bad.problems), result.stderr
    for (line, column, words), text in zip(bad.problems, reported, strict=True):
        where = f"line {line}" + (f", column {column}" if column else "") + ":"
        assert where in text and words in text, f"expected {where} ... {words!r} in {text!r}"
    assert f"{len(bad.problems)} problem(s)" in result.stderr
    assert "nothing was sent" in result.stderr


@pytest.mark.parametrize(("case", "variable"), [(MISSING_KEY, "WIX_API_KEY"),
                                                (MISSING_ACCOUNT, "WIX_ACCOUNT_ID"),
                                                (MISSING_KEY_BAD_FILE, "WIX_API_KEY"),
                                                (PLAN_MISSING_KEY_NO_FILE, "WIX_API_KEY"),
                                                (SUBMIT_MISSING_ACCOUNT_NO_FILE,
                                                 "WIX_ACCOUNT_ID"),
                                                (PLAN_MISSING_BOTH,
                                                 "WIX_API_KEY and WIX_ACCOUNT_ID")])
def test_missing_credential_exits_2_with_one_clear_line(
    refusals: Refusals, case: str, variable: str,
) -> None:
    """Without WIX_API_KEY or WIX_ACCOUNT_ID: exit 2 and a single stderr line naming it (both,
    when both are missing: the user sets them in one go)."""
    result = refusals.results[case]
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0], result.stderr


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_credential_exits_2_with_one_clear_line_and_no_secret(
    refusals: Refusals, case: str,
) -> None:
    """A key Wix could not take as a header, an account id that is not one: exit 2, one line
    naming it (never the key), nothing stored or sent (the sandbox count is checked below)."""
    result = refusals.results[case]
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert MALFORMED[case][1] in line and "sandbox" not in line, line


def test_a_key_copied_with_a_windows_line_end_still_works(
    tmp_path: Path,
) -> None:
    """An env file saved with CRLF line ends leaves "\\r" at the end of the key: it is not part
    of the key, and the run goes on as with the clean key."""
    job = write_job_csv(tmp_path / "one.csv", realistic_rows(1, tag="crlf"))
    with running_sandbox() as sandbox:
        result = run_cli(["run", str(job), *fast_run_flags(tmp_path / "crlf.db", sandbox.base_url)],
                         cli_env(api_key=SANDBOX_KEY + "\r", account_id=ACCOUNT_ID + "\r"), 60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 succeeded" in result.stdout


@pytest.mark.parametrize("case", list(BAD_FLAGS))
def test_bad_flag_value_exits_2_naming_the_flag_or_value(refusals: Refusals, case: str) -> None:
    """A flag value that makes no sense (--rate nonsense, --concurrency 0): one clear line."""
    result = refusals.results[case]
    flag, value = BAD_FLAGS[case]
    assert result.returncode == 2, result.stdout + result.stderr
    assert flag in result.stderr or repr(value) in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_plain_http_to_a_non_loopback_host_exits_2(refusals: Refusals) -> None:
    """The key never travels over plain http except to a loopback host."""
    result = refusals.results[PLAIN_HTTP]
    assert result.returncode == 2, result.stdout + result.stderr
    assert "http" in result.stderr and "0.0.0.0" in result.stderr


def test_every_refused_command_sent_zero_requests(refusals: Refusals) -> None:
    """Bad job files, missing or malformed credentials, bad flags, plain http to a non-loopback
    host: once all of them have exited, the sandbox has received no request at all."""
    assert len(refusals.results) == (len(BAD_FILE_CASES) + 6 + len(MALFORMED) + len(BAD_FLAGS)
                                     + 1)
    assert refusals.requests_after == 0


def test_wrong_key_is_refused_with_exit_2_and_creates_no_site(refusals: Refusals) -> None:
    """A key Wix refuses: exit 2 saying so; only the key-checking read arrived, no write."""
    flags = fast_run_flags(refusals.folder / "wrong-key.db", refusals.sandbox.base_url)
    result = run_cli(["run", str(refusals.good_job), *flags], cli_env(api_key="wrong-key"),
                     timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refused" in result.stderr
    state = refusals.sandbox.state()
    assert state["sites"] == [] and state["invites"] == []
    writes = set(state["requests"]["by_endpoint"]) - {"query_sites", "roles"}
    assert not writes, state["requests"]["by_endpoint"]


def test_resume_against_a_database_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    """A mistyped --db has no job to resume: one line, exit 2, and no new empty database."""
    missing = tmp_path / "typo.db"
    result = run_cli(["resume", "--db", str(missing)], cli_env(), 60)
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert f"no database at {missing}" in line
    assert not missing.exists()

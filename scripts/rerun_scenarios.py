"""Re-run scenarios: how many mutating requests a re-run sends, and how many duplicate effects.

    python scripts/rerun_scenarios.py

Runs, against a `bulkops sandbox` process on 127.0.0.1 and the installed `bulkops` command:

1. grown file: a 40-row mixed file runs to the end; 5 rows are appended; the file runs again;
2. fixed file: a 3-row file (two `create_site` rows without `key`, one `account_invite` to an
   address Wix refuses) runs; the address is fixed in the file and it runs again;
3. other folder: the 40-row file runs again from another working directory, with the default
   database (one per user), after a first run from the first directory.

For each second run it prints the mutating requests the sandbox received (creates, transfers,
invites) and the duplicate sites and invite e-mails the sandbox holds afterwards.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "acceptance"))

from harness import (  # noqa: E402  (after the path is set)
    BOUNCE_DOMAIN,
    SandboxProcess,
    cli_env,
    fast_run_flags,
    realistic_rows,
    run_cli,
    running_sandbox,
    write_job_csv,
)

MUTATING = ("create_site", "transfer_site", "account_invite", "site_invite_bulk")


def mutating(state: dict[str, object]) -> int:
    by_endpoint = state["requests"]["by_endpoint"]  # type: ignore[index]
    return sum(int(by_endpoint.get(name, 0)) for name in MUTATING)  # type: ignore[union-attr]


def duplicates(state: dict[str, object]) -> tuple[int, int]:
    return int(state["duplicate_sites"]), int(state["duplicate_invite_emails"])  # type: ignore[call-overload]


def second_run(
    name: str, first: list[str], second: list[str], *, cwd: tuple[Path, Path] | None = None,
    between: Callable[[], None] = lambda: None, env: dict[str, str],
    sandbox: SandboxProcess,
) -> str:
    """Run `bulkops FIRST`, then `between()`, then `bulkops SECOND`; say what the second run
    sent and what duplicates the sandbox holds afterwards."""
    run_cli(first, env, timeout=120, cwd=cwd[0] if cwd else None)
    before = mutating(sandbox.state())
    between()
    result = run_cli(second, env, timeout=120, cwd=cwd[1] if cwd else None)
    state = sandbox.state()
    sites, emails = duplicates(state)
    return (f"{name}: second run exit {result.returncode}, {mutating(state) - before} "
            f"mutating requests, {sites} duplicate sites, {emails} duplicate invite e-mails")


def grown_file(work: Path) -> str:
    with running_sandbox() as sandbox:
        rows = realistic_rows(45, tag="grow")
        job = write_job_csv(work / "grow.csv", rows[:40])
        args = ["run", str(job), *fast_run_flags(work / "grow.db", sandbox.base_url)]

        def grow() -> None:
            write_job_csv(job, rows)

        return second_run(
            "grown file (40 rows, then 45; 5 new rows)", args, args, between=grow,
            env=cli_env(XDG_DATA_HOME=str(work / "data")), sandbox=sandbox,
        )


def fixed_file(work: Path) -> str:
    with running_sandbox() as sandbox:
        header = "action,site_name,email,role\n"
        rows = ("create_site,Fix Bakery,,\ncreate_site,Fix Florist,,\n"
                "account_invite,,{email},Website Manager\n")
        job = work / "fix.csv"
        # Refused by Wix inside its 200 answer: only Wix can tell (roles are checked first).
        job.write_text(header + rows.format(email=f"team@{BOUNCE_DOMAIN}"), encoding="utf-8")
        args = ["run", str(job), *fast_run_flags(work / "fix.db", sandbox.base_url)]

        def fix() -> None:
            job.write_text(header + rows.format(email="team@agency.example.com"),
                           encoding="utf-8")

        return second_run(
            "fixed file (3 rows, a failed row's e-mail fixed; 1 row to send)", args, args,
            between=fix, env=cli_env(XDG_DATA_HOME=str(work / "data")), sandbox=sandbox,
        )


def other_folder(work: Path) -> str:
    with running_sandbox() as sandbox:
        job = write_job_csv(work / "folder.csv", realistic_rows(40, tag="fold"))
        flags = fast_run_flags("bulkops.db", sandbox.base_url)[2:]  # no --db: the default
        first_dir, second_dir = work / "one", work / "two"
        first_dir.mkdir()
        second_dir.mkdir()
        args = ["run", str(job), *flags]
        return second_run(
            "other folder (40 rows, default database; nothing new)", args, args,
            cwd=(first_dir, second_dir), env=cli_env(XDG_DATA_HOME=str(work / "data")),
            sandbox=sandbox,
        )


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for scenario in (grown_file, fixed_file, other_folder):
            print(scenario(work), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One saved sandbox world, many jobs: the in-process sandboxes of `run --sandbox` and of a
worker's sandbox jobs take turns on the world beside the database, and another process's
waits or is told it is busy, so that no job's sites vanish from the world another one saved."""

from __future__ import annotations

import csv
import time
from collections import Counter
from pathlib import Path

from harness import cli_env, run_cli, start_cli

from bulkops.sandbox import Sandbox, SandboxConfig


def creates(path: Path, prefix: str, rows: int) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["action", "key", "site_name", "template_id"])
        for n in range(rows):
            writer.writerow(["create_site", f"{prefix}{n}", f"{prefix} site {n}", ""])
    return path


def names_in_world(db: Path) -> Counter[str]:
    world = Sandbox(SandboxConfig(state_file=db.with_name(db.name + ".sandbox.json")))
    return Counter(site.display_name.split(" site ")[0] for site in world.state.sites.values()
                   if not site.seeded)


def test_a_workers_sandbox_jobs_on_one_database_keep_every_site(tmp_path: Path) -> None:
    """A worker runs both jobs at once; each used to save its own world over the other's."""
    db = tmp_path / "jobs.db"
    env = cli_env()
    for prefix in ("x", "y"):
        submitted = run_cli(["submit", str(creates(tmp_path / f"{prefix}.csv", prefix, 120)),
                             "--sandbox", "--db", str(db)], env)
        assert submitted.returncode == 0, submitted.stderr
    worked = run_cli(["worker", "--until-idle", "--db", str(db), "--rate", "200/s"], env,
                     timeout=120)
    assert worked.returncode == 0, worked.stderr
    assert names_in_world(db) == {"x": 120, "y": 120}


def test_a_second_process_on_the_same_world_is_busy_and_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    env = cli_env()
    world = db.with_name(db.name + ".sandbox.json")
    first = start_cli(["run", str(creates(tmp_path / "x.csv", "x", 300)), "--sandbox",
                       "--db", str(db), "--rate", "60/s"], env)
    try:
        deadline = time.monotonic() + 30
        while not world.exists():  # the first holds its world once it has saved a site
            assert first.process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        second = run_cli(["run", str(creates(tmp_path / "y.csv", "y", 5)), "--sandbox",
                          "--db", str(db)], env)
        assert first.process.poll() is None  # the second came while the first still ran
        assert second.returncode == 4, second.stderr
        assert "in use by another bulkops process" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        assert first.process.wait(60) == 0
    finally:
        first.ensure_stopped()
    assert names_in_world(db) == {"x": 300}


def test_a_saved_world_plan_cannot_read_is_one_line_naming_it(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    world = db.with_name(db.name + ".sandbox.json")
    Sandbox(SandboxConfig(state_file=world)).persist(force=True)
    (tmp_path / (world.name + ".journal")).mkdir()  # was an unexpected failure, exit 3
    planned = run_cli(["plan", str(creates(tmp_path / "x.csv", "x", 3)), "--sandbox",
                       "--db", str(db)], cli_env())
    assert planned.returncode == 2, planned.stderr
    *notes, line = planned.stderr.strip().splitlines()  # a note: no database yet
    assert all(note.startswith("note: ") for note in notes)
    assert line.startswith("error: ") and str(world) in line and "Is a directory" in line

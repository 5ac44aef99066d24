"""Time and memory of validating a large CSV job file and reading back all its specs.

    python scripts/bench_validate.py [--rows 1000000] [--path FILE]

Writes a CSV of realistic mixed rows (create, transfer, invites, `@key` references, a few
forward `depends_on` so the cycle search runs) to a temporary directory if the file is missing,
then times `load_job` plus consuming every spec, and prints rows, seconds and peak RSS.
"""

from __future__ import annotations

import argparse
import csv
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from bulkops.jobfile import load_job

HEADER = ("action", "key", "site_name", "template_id", "folder_id", "site", "to_account",
          "email", "role", "sites", "depends_on")
SUB_ACCOUNTS = [f"22222222-2222-4222-8222-22222222222{n}" for n in range(1, 6)]
TEMPLATES = [str(uuid.UUID(int=n * 7919, version=4)) for n in range(1, 40)]
EXISTING_SITES = [str(uuid.UUID(int=n * 104729, version=4)) for n in range(1, 200)]
FOLDERS = [str(uuid.UUID(int=n * 15485863, version=4)) for n in range(1, 20)]
FORWARD_EVERY = 1000  # one row in this many waits for a row further down the file


def rows(count: int) -> Iterator[tuple[str, ...]]:
    """Blocks of ten rows: four sites, two transfers, three site invites, one account invite."""
    for n in range(count):
        block, slot = divmod(n, 10)
        site = f"@client-{block}-{min(slot, 3)}"
        if slot < 4:
            folder = FOLDERS[n % len(FOLDERS)] if slot == 3 else ""
            yield ("create_site", f"client-{block}-{slot}", f"Client {block}.{slot} — Main",
                   TEMPLATES[n % len(TEMPLATES)], folder, "", "", "", "", "", "")
        elif slot < 6:
            waits_ahead = n % FORWARD_EVERY == 4 and n + 10 < count
            forward = f"@client-{block + 1}-0" if waits_ahead else ""
            yield ("transfer_site", f"move-{block}-{slot}", "", "", "",
                   f"@client-{block}-{slot - 4}", SUB_ACCOUNTS[n % 5], "", "", "", forward)
        elif slot < 9:
            target = site if slot < 8 else EXISTING_SITES[n % len(EXISTING_SITES)]
            yield ("site_invite", "", "", "", "", target, "", f"user{n}@example.com",
                   "Website Manager" if slot % 2 else "Back Office Manager", "",
                   f"@move-{block}-4" if slot == 8 else "")
        else:
            yield ("account_invite", "", "", "", "", "", "", f"lead{n}@example.com",
                   "Website Manager", f"@client-{block}-0;@client-{block}-1", "")


def write_file(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        writer.writerows(rows(count))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--path", type=Path, default=None)
    args = parser.parse_args(argv)
    path = args.path or Path(tempfile.gettempdir()) / f"bulkops-bench-{args.rows}.csv"
    if not path.exists():
        started = time.perf_counter()
        write_file(path, args.rows)
        print(f"wrote {path} in {time.perf_counter() - started:.1f}s")
    started = time.perf_counter()
    source, specs = load_job(path)
    validated = time.perf_counter()
    consumed = sum(1 for _ in specs())
    finished = time.perf_counter()
    # ru_maxrss is in kilobytes on Linux.
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"file:      {path} ({path.stat().st_size / 2**20:.0f} MB)")
    print(f"rows:      {source.total} validated, {consumed} specs read back")
    print(f"seconds:   {finished - started:.1f} (validate {validated - started:.1f}, "
          f"read back {finished - validated:.1f})")
    print(f"peak RSS:  {peak_mb:.0f} MB")
    return 0 if consumed == source.total else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

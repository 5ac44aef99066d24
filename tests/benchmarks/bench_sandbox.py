"""The sandbox as its world grows: what runs, plans and reconciliations ask of it, timed in a
world of many sites, and `run --sandbox`, whose world is saved before every answer.

    python tests/benchmarks/bench_sandbox.py                     # 100,000 sites, 3,000 creates
    python tests/benchmarks/bench_sandbox.py --sites 20000 --creates 1000

A `bulkops sandbox` process is seeded with `--sites` sites (a tenth of them with one display
name), then timed over real HTTP, one request at a time: reading the account's every site
(pages of 100, as `plan` and the checks before a run do), looking sites up by id (a transfer's
reconciliation), creating sites of that one name, and transferring sites to a sub-account.
Then `bulkops run FILE --sandbox` of `--creates` create_site rows, from a new database, with
its world in the state file beside it. Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    ACCOUNT_ID,
    SANDBOX_KEY,
    cli_env,
    figure,
    run_alone,
    sandbox,
    scratch,
    write_creates,
)

from bulkops.sandbox import DEFAULT_SUB_ACCOUNTS

SAME_NAME = "Same Name"
SAMPLES = 200  # requests timed per kind of single-site request


def call(base_url: str, path: str, body: Any, account: str = ACCOUNT_ID) -> Any:
    request = urllib.request.Request(
        f"{base_url}{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": SANDBOX_KEY,
                 "wix-account-id": account})
    with urllib.request.urlopen(request, timeout=600) as answer:
        return json.loads(answer.read())


def seed(base_url: str, sites: int) -> None:
    chunk = 10_000
    for start in range(0, sites, chunk):
        specs = [{"displayName": SAME_NAME if n % 10 == 0 else f"Client {n}"}
                 for n in range(start, min(start + chunk, sites))]
        call(base_url, "/_sandbox/sites", {"sites": specs})


def read_every_site(base_url: str) -> tuple[int, int, list[str]]:
    """(sites read, pages, the first SAMPLES ids), paging as the client does."""
    body: dict[str, Any] = {"query": {"cursorPaging": {"limit": 100}}}
    count, pages, ids = 0, 0, []
    while True:
        answer = call(base_url, "/site-list/v2/sites/query", body)
        pages += 1
        count += len(answer["sites"])
        ids += [site["id"] for site in answer["sites"]][: SAMPLES - len(ids)]
        cursor = answer["metadata"]["cursors"]["next"]
        if cursor is None:
            return count, pages, ids
        body = {"query": {"cursorPaging": {"limit": 100, "cursor": cursor}}}


def per_request_ms(started: float, requests: int) -> str:
    return f"{(time.perf_counter() - started) / requests * 1000:,.2f} ms"


def world_figures(sites: int) -> None:
    with sandbox() as box:
        started = time.perf_counter()
        seed(box.base_url, sites)
        print(figure("seed (POST /_sandbox/sites, 10,000 a call)",
                     f"{time.perf_counter() - started:,.1f} s", f"{sites:,} sites"))
        started = time.perf_counter()
        count, pages, ids = read_every_site(box.base_url)
        seconds = time.perf_counter() - started
        print(figure("read every site (Query Sites, 100 a page)", f"{seconds:,.1f} s",
                     f"{count:,} sites in {pages:,} pages, {seconds / pages * 1000:,.1f} ms "
                     "a page"))
        started = time.perf_counter()
        for site_id in ids:
            call(box.base_url, "/site-list/v2/sites/query",
                 {"query": {"filter": {"id": site_id}, "cursorPaging": {"limit": 1}}})
        print(figure("look a site up by id", per_request_ms(started, len(ids)), "a request"))
        started = time.perf_counter()
        for _ in range(SAMPLES):
            call(box.base_url, "/funnel/projects/v1/create", {"type": "WIX", "name": SAME_NAME})
        print(figure(f"create a site named {SAME_NAME!r}", per_request_ms(started, SAMPLES),
                     f"a request ({sites // 10:,} of that name before)"))
        started = time.perf_counter()
        for site_id in ids:
            call(box.base_url, "/b2b-site-management/v1/transfer-site",
                 {"siteTransfer": {"siteId": site_id, "sourceAccountId": ACCOUNT_ID}},
                 account=DEFAULT_SUB_ACCOUNTS[0])
        print(figure("transfer a site to a sub-account", per_request_ms(started, len(ids)),
                     "a request"))


def run_sandbox_figure(creates: int) -> None:
    with scratch() as folder:
        job = write_creates(Path(folder) / "creates.csv", creates)
        db = Path(folder) / "bulkops.db"
        env = cli_env(XDG_DATA_HOME=os.path.join(folder, "data"))
        done = run_alone(["run", str(job), "--sandbox", "--db", str(db),
                          "--rate", "1000000/s"], env)
        state = db.with_name(db.name + ".sandbox.json")
        print(figure(f"run --sandbox, {creates:,} creates", f"{done.seconds:,.1f} s",
                     f"exit {done.returncode}, world saved: "
                     f"{state.stat().st_size / 1e6:,.1f} MB" if state.exists() else "no world"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sites", type=int, default=100_000)
    parser.add_argument("--creates", type=int, default=3_000)
    args = parser.parse_args(argv)
    world_figures(args.sites)
    run_sandbox_figure(args.creates)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""API calls per row: what a job costs at Wix against the fewest calls its API allows.

    python scripts/bench_calls.py                  # the 6,000-row onboarding job + jobs/ examples
    python scripts/bench_calls.py --sites 20       # a 120-row version of it (about a minute)
    python scripts/bench_calls.py --only examples  # just jobs/onboarding.csv and .json
    python scripts/bench_calls.py --only domains   # 20 domains and 200 DNS records on them
    python scripts/bench_calls.py --json           # one JSON array, for scripts

Each job is run as a user runs it: `bulkops run FILE` as a subprocess (a fresh SQLite database in
a temporary directory) against a `bulkops sandbox` process of its own over loopback HTTP. The
sandbox enforces a sliding-window limit equal to the scaled `--rate` (Wix's 200/min, sped up so
the big job takes a minute or two), so every call the run makes is allowed and counted.

The generated onboarding job (`--sites N`, default 1,000: 6 N rows) is the one of issue 8: per
site, `create_site` (keys s0001, ...), three `site_invite` collaborators on the same role set
(@sNNNN), then a `transfer_site` of @sNNNN to a sub-account the sandbox knows, waiting for the
invites (`depends_on`), as jobs/onboarding.csv orders its clients; then N `account_invite` team
members on the whole account.

The generated domains job (`--domains N --records M`, default 20 and 200) connects N domains
with nameservers, each to a Premium site seeded in the sandbox before the run (the sites a
connection needs exist before any onboarding), and sets M/N A records on each.

Figures, from the sandbox's own request counters (GET /_sandbox/state):
- calls per endpoint and in total, 429s among them, and whether the run's budget counted the
  same number (`counted`, from `--summary-json`);
- minimum: the fewest calls the API allows for the file, computed from its rows: one per create
  and per transfer, one site-invite call per (site, role set) and per 50 invitees in it, one
  account-invite call per 50 invitees (invites that wait for one another, like the team
  members of jobs/onboarding.csv that depend on other members, cannot share a call), one roles
  call, and the listing pages one pass over the account's sites takes (the existing-name check
  before the first write; at least one page; reconciliation adds none on a healthy run);
- ratio (measured / minimum), calls per row;
- wall time at the scaled rate (measured) and under the default budget of 200 requests a minute
  (computed: calls / (200/60) seconds; the run is paced by its budget, not by the engine).
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bulkops.jobfile import load_job
from bulkops.jobrows import COLUMNS
from bulkops.model import Action, OpSpec
from bulkops.sandbox.config import DEFAULT_ACCOUNT_ID, DEFAULT_API_KEY, DEFAULT_SUB_ACCOUNTS
from bulkops.settings import parse_rate

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = (ROOT / "jobs" / "onboarding.csv", ROOT / "jobs" / "onboarding.json")

ACCOUNT_INVITEES_PER_CALL = 50  # wix-api.md: at most 50 invitees per account-invite call
SITE_INVITEES_PER_CALL = 50  # no documented cap; bulkops sends at most 50 emails a call
SITES_PER_PAGE = 100  # Query Sites: at most 100 a page
ZONE_RECORDS_PER_CALL = 10  # wix-domains.md: at most 10 additions and 10 deletions an update
DEFAULT_BUDGET_PER_MINUTE = 200.0  # Wix's documented limit, bulkops' default --rate
COLLABORATORS = 3  # site_invite rows per generated site, all on COLLABORATOR_ROLE
COLLABORATOR_ROLE = "Website Manager"
TEAM_ROLE = "Website Manager"

STARTUP_TIMEOUT = 20.0
_LISTENING = "sandbox listening on "


# -- the generated job ---------------------------------------------------------------------------


def onboarding_rows(sites: int, team: int) -> Iterator[dict[str, str]]:
    """The generated onboarding job, row by row (6,000 rows for 1,000 sites and members):
    creates, then each site's collaborators, then each site's transfer once its invites are
    out, then the team; the order of jobs/onboarding.csv."""
    keys = [f"s{n:04d}" for n in range(1, sites + 1)]
    for n, key in enumerate(keys, 1):
        yield {"action": "create_site", "key": key, "site_name": f"Client {n:04d}"}
    for n, key in enumerate(keys, 1):
        for c in range(1, COLLABORATORS + 1):
            yield {"action": "site_invite", "key": f"{key}-c{c}", "site": f"@{key}",
                   "email": f"collab{c}@client{n:04d}.example.com", "role": COLLABORATOR_ROLE}
    for n, key in enumerate(keys, 1):
        invites = ";".join(f"@{key}-c{c}" for c in range(1, COLLABORATORS + 1))
        yield {"action": "transfer_site", "key": f"{key}-move", "site": f"@{key}",
               "to_account": DEFAULT_SUB_ACCOUNTS[n % len(DEFAULT_SUB_ACCOUNTS)],
               "depends_on": invites}
    for n in range(1, team + 1):
        yield {"action": "account_invite", "key": f"t{n:04d}",
               "email": f"member{n:04d}@agency.example.com", "role": TEAM_ROLE}


def domain_rows(sites: Sequence[str], records: int) -> Iterator[dict[str, str]]:
    """One nameservers connection per site in `sites` (a Premium site's id), then `records`
    A records spread evenly over those domains, each waiting for its domain's connection."""
    domains = [f"client{n:03d}-bakery.com" for n in range(1, len(sites) + 1)]
    for n, (site, domain) in enumerate(zip(sites, domains, strict=True), 1):
        yield {"action": "connect_domain", "key": f"d{n:03d}", "site": site, "domain": domain,
               "connection": "nameservers"}
    for r in range(records):
        domain = domains[r % len(domains)]
        yield {"action": "set_dns_record", "key": f"r{r:04d}", "domain": domain,
               "record_type": "A", "host": f"h{r:04d}.{domain}",
               "values": f"10.{r // 250}.{r % 250}.1", "ttl": "3600"}


def write_job(path: Path, rows: Iterable[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows({c: row.get(c, "") for c in COLUMNS} for row in rows)
    return path


# -- the fewest calls ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Minimum:
    """The fewest calls the API allows for a job, by kind."""

    creates: int
    transfers: int
    site_invites: int  # calls: per (site, role set), per SITE_INVITEES_PER_CALL
    account_invites: int  # calls: per ACCOUNT_INVITEES_PER_CALL
    roles: int
    listing_pages: int
    connects: int = 0  # one create, and one Setup Info read for the report, per domain
    zone_calls: int = 0  # per domain, per 10 records: one zone read and one zone update
    domain_reads: int = 0  # one connected-domains page: the permission check and what is there

    @property
    def total(self) -> int:
        return (self.creates + self.transfers + self.site_invites + self.account_invites
                + self.roles + self.listing_pages + 2 * self.connects + self.zone_calls
                + self.domain_reads)


def minimum_calls(specs: Iterable[OpSpec], existing_sites: int = 0) -> Minimum:
    """The fewest calls for `specs` in an account holding `existing_sites` sites before the
    run. Sites are told apart as written (`@key` or id), role sets by their titles or ids as
    written, case-folded. Two invites that could share a call never do when one waits for the
    other (through any chain of `@key`s and `depends_on`): they are counted in separate calls."""
    rows = list(specs)
    by_key = {spec.key: spec for spec in rows}
    actions = Counter(spec.action for spec in rows)
    calls: Counter[tuple[Hashable, int]] = Counter()  # (call group, wave) -> invitees

    def group(spec: OpSpec) -> Hashable | None:
        if spec.action is Action.SITE_INVITE:
            return ("site", (spec.site or "").casefold(),
                    frozenset(role.casefold() for role in spec.roles))
        return ("account",) if spec.action is Action.ACCOUNT_INVITE else None

    @functools.cache
    def waits_for(key: str, wanted: Hashable) -> int:
        """The most rows of call group `wanted` on one dependency chain ending at `key`'s row
        (itself excluded): the wave of calls the row can go out in at the earliest."""
        deps = [by_key[k] for k in by_key[key].dependency_keys() if k in by_key]
        return max((waits_for(dep.key, wanted) + (group(dep) == wanted) for dep in deps),
                   default=0)

    for spec in rows:
        kind = group(spec)
        if kind is not None:
            calls[(kind, waits_for(spec.key, kind))] += 1
    site_calls = sum(math.ceil(n / SITE_INVITEES_PER_CALL)
                     for (kind, _), n in calls.items() if kind != ("account",))
    account_calls = sum(math.ceil(n / ACCOUNT_INVITEES_PER_CALL)
                        for (kind, _), n in calls.items() if kind == ("account",))
    invites = actions[Action.SITE_INVITE] + actions[Action.ACCOUNT_INVITE]
    records = Counter(spec.domain for spec in rows if spec.action is Action.SET_DNS_RECORD)
    connects = actions[Action.CONNECT_DOMAIN]
    # Sites named by id are read once (Premium, in the account): the listing the name check
    # reads serves both.
    by_id = any(spec.site and not spec.site.startswith("@") for spec in rows
                if spec.action is Action.CONNECT_DOMAIN)
    return Minimum(
        connects=connects,
        zone_calls=sum(2 * math.ceil(n / ZONE_RECORDS_PER_CALL) for n in records.values()),
        domain_reads=1 if connects or records else 0,
        creates=actions[Action.CREATE_SITE],
        transfers=actions[Action.TRANSFER_SITE],
        site_invites=site_calls,
        account_invites=account_calls,
        roles=1 if invites else 0,
        listing_pages=max(1, math.ceil(existing_sites / SITES_PER_PAGE))
        if actions[Action.CREATE_SITE] or by_id else 0,
    )


# -- one measured run ----------------------------------------------------------------------------


@dataclass
class Measured:
    job: str
    rows: int
    exit_code: int
    calls: dict[str, int]  # per sandbox endpoint
    total_calls: int
    throttled: int  # 429 answers among the calls
    budget_requests: int | None  # as the run's own budget counted them
    minimum: Minimum
    rate_per_minute: float  # the scaled --rate
    seconds: float  # wall time of `bulkops run` at that rate
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.total_calls / self.minimum.total if self.minimum.total else 0.0

    @property
    def calls_per_row(self) -> float:
        return self.total_calls / self.rows if self.rows else 0.0

    @property
    def default_budget_seconds(self) -> float:
        """Wall time of these calls under the default budget, paced evenly at 200/min."""
        return self.total_calls / (DEFAULT_BUDGET_PER_MINUTE / 60.0)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["minimum"] = {**asdict(self.minimum), "total": self.minimum.total}
        out.update(ratio=round(self.ratio, 4), calls_per_row=round(self.calls_per_row, 4),
                   seconds=round(self.seconds, 1),
                   default_budget_seconds=round(self.default_budget_seconds, 1))
        return out


def bulkops_command() -> list[str]:
    """The `bulkops` of this interpreter's environment (the checkout's), else `python -m`."""
    beside = Path(sys.executable).parent / "bulkops"
    return [str(beside)] if beside.is_file() else [sys.executable, "-m", "bulkops"]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any WIX_/BULKOPS_ variable (the caller's shell must not leak
    into the measured run), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WIX_", "BULKOPS_"))}
    env.update(extra)
    return env


class Sandbox:
    """A `bulkops sandbox` process on a free loopback port, enforcing `rate_limit`."""

    def __init__(self, workdir: Path, rate_limit: str) -> None:
        self._log = (workdir / "sandbox.log").open("wb")
        self.process = subprocess.Popen(
            [*bulkops_command(), "sandbox", "--port", "0", "--rate-limit", rate_limit,
             "--demo-sites"],  # the Premium sites the examples connect domains to
            env=clean_env(PYTHONUNBUFFERED="1"), stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._log_path = workdir / "sandbox.log"
        self.base_url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            for line in self._log_path.read_text(errors="replace").splitlines():
                if line.startswith(_LISTENING):
                    return line[len(_LISTENING):].strip()
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sandbox did not start: {self._log_path.read_text()!r}")

    def seed_premium_sites(self, count: int) -> list[str]:
        """`count` live client sites with Premium, through the sandbox's admin route: ids."""
        body = json.dumps({"sites": [{"displayName": f"Live Client {n:03d}", "premium": True}
                                     for n in range(1, count + 1)]}).encode()
        request = urllib.request.Request(f"{self.base_url}/_sandbox/sites", data=body,
                                          headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return [site["id"] for site in json.loads(answer.read())["sites"]]

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base_url}/_sandbox/state", timeout=30) as answer:
            state: dict[str, Any] = json.loads(answer.read())
        return state

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def measure(make_job: Callable[[Sandbox], Path], name: str, run_dir: Path, *, rate: str,
            concurrency: int, timeout: float) -> Measured:
    """Run the job `make_job` writes (given the fresh sandbox it runs against, with its
    database and logs in `run_dir`) once, and count what reached the sandbox."""
    run_dir.mkdir(parents=True)
    sandbox = Sandbox(run_dir, rate)
    try:
        job = make_job(sandbox)
        source, specs = load_job(job)
        existing = len(sandbox.state()["sites"])  # sites seeded for the job
        minimum = minimum_calls(specs(), existing_sites=existing)
        baseline = int(sandbox.state()["requests"]["total"])  # the admin calls are not counted
        summary = run_dir / "summary.json"
        command = [*bulkops_command(), "run", str(job), "--db", str(run_dir / "bench.db"),
                   "--base-url", sandbox.base_url, "--rate", rate,
                   "--concurrency", str(concurrency), "--summary-json", str(summary)]
        env = clean_env(WIX_API_KEY=DEFAULT_API_KEY, WIX_ACCOUNT_ID=DEFAULT_ACCOUNT_ID)
        started = time.monotonic()
        result = subprocess.run(command, env=env, cwd=run_dir, capture_output=True, text=True,
                                timeout=timeout, check=False, stdin=subprocess.DEVNULL)
        seconds = time.monotonic() - started
        requests = sandbox.state()["requests"]
    finally:
        sandbox.stop()
    notes = []
    if result.returncode != 0:
        notes.append(f"bulkops run exited {result.returncode}: "
                     f"{(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    budget = None
    if summary.exists():
        run = json.loads(summary.read_text()).get("run") or {}
        budget = run.get("requests")
    return Measured(
        job=name, rows=source.total, exit_code=result.returncode,
        calls={k: int(v) for k, v in sorted(requests["by_endpoint"].items())},
        total_calls=int(requests["total"]) - baseline,
        throttled=int(requests["by_status"].get("429", 0)),
        budget_requests=budget, minimum=minimum,
        rate_per_minute=_per_minute(rate), seconds=seconds, notes=notes,
    )


def _per_minute(rate: str) -> float:
    parsed = parse_rate(rate)
    return parsed.count / parsed.period * 60.0


# -- output --------------------------------------------------------------------------------------


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def describe(m: Measured) -> str:
    lo = m.minimum
    counted = ("yes" if m.budget_requests == m.total_calls
               else f"no (budget {m.budget_requests})")
    lines = [
        f"{m.job}: {m.rows} rows, exit {m.exit_code}",
        "  calls:      " + ", ".join(f"{k} {v}" for k, v in m.calls.items()),
        f"  total:      {m.total_calls} calls ({m.throttled} answered 429; counted by the "
        f"budget: {counted})",
        f"  minimum:    {lo.total} = {lo.creates} creates + {lo.transfers} transfers + "
        f"{lo.site_invites} site-invite + {lo.account_invites} account-invite + {lo.roles} "
        f"roles + {lo.listing_pages} listing page(s) + 2 x {lo.connects} connects + "
        f"{lo.zone_calls} zone reads and updates + {lo.domain_reads} connected-domains page",
        f"  ratio:      {m.ratio:.3f} of the minimum ({(m.ratio - 1) * 100:+.1f}%); "
        f"{m.calls_per_row:.3f} calls per row (minimum {lo.total / m.rows:.3f})",
        f"  wall time:  {m.seconds:.1f} s measured at {m.rate_per_minute:.0f}/min; "
        f"{_clock(m.default_budget_seconds)} under the default 200/min "
        f"(one call per row: {_clock(m.rows / (DEFAULT_BUDGET_PER_MINUTE / 60.0))})",
    ]
    lines += [f"  note:       {note}" for note in m.notes]
    return "\n".join(lines)


# -- the command ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sites", type=int, default=1000,
                        help="sites of the generated job (6 rows each with --team equal)")
    parser.add_argument("--team", type=int,
                        help="account_invite team members of the generated job (default: "
                             "--sites)")
    parser.add_argument("--domains", type=int, default=20,
                        help="domains of the generated domains job")
    parser.add_argument("--records", type=int, default=200,
                        help="DNS records of the generated domains job, over its domains")
    parser.add_argument("--only", choices=["generated", "examples", "domains"],
                        help="run only the generated onboarding job, the jobs/ examples or "
                             "the generated domains job")
    parser.add_argument("--rate", default="60/s",
                        help="the scaled request budget, which the sandbox also enforces")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds one `bulkops run` may take")
    parser.add_argument("--json", action="store_true", help="print one JSON array")
    parser.add_argument("--keep", type=Path,
                        help="keep the job files, databases and sandbox logs in this folder")
    args = parser.parse_args(argv)
    if args.sites < 1 or (args.team is not None and args.team < 0):
        parser.error("--sites must be at least 1 and --team not negative")
    return args


def _given(path: Path) -> Callable[[Sandbox], Path]:
    return lambda sandbox: path


def bench(args: argparse.Namespace, workdir: Path) -> list[Measured]:
    jobs: list[tuple[str, Callable[[Sandbox], Path]]] = []
    if args.only in (None, "generated"):
        team = args.sites if args.team is None else args.team
        path = write_job(workdir / f"onboarding-{args.sites}-sites.csv",
                         onboarding_rows(args.sites, team))
        jobs.append((f"generated onboarding ({args.sites} sites, {team} members)", _given(path)))
    if args.only in (None, "domains"):

        def domains_job(sandbox: Sandbox) -> Path:
            sites = sandbox.seed_premium_sites(args.domains)
            return write_job(workdir / "domains.csv", domain_rows(sites, args.records))

        jobs.append((f"generated domains ({args.domains} domains, {args.records} records)",
                     domains_job))
    if args.only in (None, "examples"):
        jobs += [(f"jobs/{path.name}", _given(path)) for path in EXAMPLES if path.exists()]
    results = []
    for index, (name, make_job) in enumerate(jobs):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results.append(measure(make_job, name, workdir / f"run{index}", rate=args.rate,
                               concurrency=args.concurrency, timeout=args.timeout))
    return results


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bulkops-bench-calls-"))
    try:
        results = bench(args, workdir)
        if args.keep:
            shutil.copytree(workdir, args.keep, dirs_exist_ok=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps([m.to_json() for m in results], indent=1))
    else:
        print(f"budget {args.rate} (the sandbox enforces the same), concurrency "
              f"{args.concurrency}\n")
        print("\n\n".join(describe(m) for m in results))
    return 0 if all(m.exit_code == 0 for m in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

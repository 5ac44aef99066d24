"""Domain rows killed at any moment and run again are done exactly once, and never blind.

`bulkops run FILE` (a subprocess, a SQLite file as its checkpoint) works through a job of new
sites, domains connected to seeded Premium sites (pointing, nameservers, a subdomain, one
primary) and 36 DNS records in the zones of three nameservers domains, against a `bulkops
sandbox` subprocess that loses answers to the domain calls after their effect (dropped or
too late). The run is SIGKILLed several times, each time just after a chosen number of domain
writes reached the sandbox, and continued with `run FILE` or `resume` until it finishes.

The proof comes from the sandbox's world (its connected domains and zones) and from a log of
every request that reached it: a recording pass-through proxy sits between `bulkops` and the
sandbox. Every fault here applies the effect before losing the answer, so each domain write
that reached the sandbox took effect, or was refused; hence each connection and each record
must have been written by exactly one request, none refused, and every zone update must have
deleted exactly the record as it was before (its pre-image) — a write resent blind after its
effect would show as a second request carrying the same record, refused by the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import subprocess
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from evidence import assert_exactly_once
from harness import (
    DOMAIN_ENDPOINTS,
    DOMAIN_JOB_COLUMNS,
    DOMAIN_MUTATING,
    HTTP_TIMEOUT,
    STARTUP_TIMEOUT,
    BackgroundCli,
    Json,
    SandboxFactory,
    SandboxProcess,
    cell_values,
    cli_env,
    default_record,
    domain_problems,
    domain_rows,
    fast_run_flags,
    read_report_csv,
    report_json,
    run_cli,
    running_sandbox,
    seed_premium_sites,
    start_cli,
    status_json,
    wait_until,
    write_job_csv,
)

# Lost answers of the domain calls, all of them after the effect: dropped connections, and
# answers later than the client's 1 s timeout. A fixed seed keeps the draws repeatable.
FAULTS = {"drop_after": 0.25, "slow_rate": 0.15, "slow_delay": 1.5, "seed": 20260412}
RUN_TIMEOUT = 90.0
NEW_SITES = 4
NAMESERVER_DOMAINS = 3
RECORDS_PER_DOMAIN = 12

# The interrupted runs: the command, and the domain writes (of `endpoints`) that must reach
# the sandbox after its start before it is SIGKILLed. Early in the connects, at a zone
# update's arrival (its answer not yet back), and in between. The job needs at least 11
# domain writes (5 connects, 2 zone updates a domain); these take 7 of them, and the kill
# comes a few milliseconds late, so all but the last one must strike a running process.
CREATE, UPDATE = DOMAIN_MUTATING
KILLS: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("run", (CREATE,), 2),
    ("resume", (UPDATE,), 1),
    ("run", DOMAIN_MUTATING, 2),
    ("resume", (UPDATE,), 1),
    ("run", DOMAIN_MUTATING, 1),
)


# -- a proxy that keeps what reached the sandbox -----------------------------------------------


@dataclass(frozen=True)
class Forwarded:
    """One request the proxy passed on: its method, path, JSON body and how it ended at the
    sandbox (the HTTP status, or "dropped": the connection closed without an answer)."""

    method: str
    path: str
    body: Json | None
    outcome: str


# Headers that belong to one connection, not to the request or answer passed on.
_HOP_BY_HOP = frozenset({"host", "connection", "keep-alive", "content-length",
                         "transfer-encoding", "content-encoding"})


@dataclass
class RecordingProxy:
    """A pass-through HTTP proxy on 127.0.0.1 in front of `upstream`, in a thread of its own.

    Every request goes to the sandbox on a fresh connection (no client-side retries of a
    reused one), and a connection the sandbox drops is dropped to the client too, so the
    sandbox's faults reach `bulkops` as they are. `forwarded` lists every request passed on,
    whole, whatever happened to its sender afterwards (a SIGKILLed `bulkops` included).
    """

    upstream: str
    base_url: str = ""
    forwarded: list[Forwarded] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    def calls(self, method: str, path_prefix: str) -> list[Forwarded]:
        with self._lock:
            return [c for c in self.forwarded
                    if c.method == method and c.path.startswith(path_prefix)]

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        answer: web.Response | None = None
        try:
            async with self._session.request(
                request.method, self.upstream + request.path_qs, headers=headers, data=body,
                allow_redirects=False,
            ) as upstream:
                payload = await upstream.read()
                outcome = str(upstream.status)
                answer = web.Response(status=upstream.status, body=payload, headers={
                    k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP})
        except (TimeoutError, aiohttp.ClientError):
            outcome = "dropped"
        parsed = json.loads(body) if body.strip() else None
        with self._lock:
            self.forwarded.append(Forwarded(request.method, request.path, parsed, outcome))
        if answer is None:
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=502)  # never written: the connection is closed
        return answer

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=aiohttp.ClientTimeout(total=30), auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = next(int(address[1]) for address in self._runner.addresses)
        self.base_url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    @contextlib.contextmanager
    def serving(self) -> Iterator[RecordingProxy]:
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start())
            started.set()
            self._loop.run_forever()

        thread = threading.Thread(target=serve, name="recording-proxy", daemon=True)
        thread.start()
        try:
            assert started.wait(STARTUP_TIMEOUT), "the recording proxy did not start"
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(STARTUP_TIMEOUT)
            self._loop.call_soon_threadsafe(self._loop.stop)
            thread.join(STARTUP_TIMEOUT)
            self._loop.close()


# -- the kills ----------------------------------------------------------------------------------


def calls_to(sandbox: SandboxProcess, endpoints: Sequence[str]) -> int:
    """Requests the sandbox has received on `endpoints` so far."""
    by_endpoint = sandbox.state()["requests"]["by_endpoint"]
    return sum(int(by_endpoint.get(name, 0)) for name in endpoints)


def kill_after_calls(cli: BackgroundCli, sandbox: SandboxProcess, endpoints: Sequence[str],
                     more: int, *, timeout: float) -> int | None:
    """SIGKILL the run once `more` further requests to `endpoints` reached the sandbox;
    returns the count at the kill, or None if the run had ended before (exit 0 asserted)."""
    start = calls_to(sandbox, endpoints)
    wait_until(lambda: not cli.running() or calls_to(sandbox, endpoints) >= start + more,
               timeout=timeout, interval=0.005)
    if not cli.running():
        ended = cli.wait(1)
        assert ended.returncode == 0, ended.stdout + ended.stderr
        return None
    cli.kill()
    return calls_to(sandbox, endpoints)


# -- the job ------------------------------------------------------------------------------------


def job_rows(sites: Sequence[str]) -> list[dict[str, str]]:
    rows = [{"action": "create_site", "key": f"dc-site{n}", "site_name": f"DC Bakery {n}"}
            for n in range(1, NEW_SITES + 1)]
    return rows + domain_rows("dc", sites, nameservers=NAMESERVER_DOMAINS,
                              records=RECORDS_PER_DOMAIN)


def _records_of(patch: Forwarded, part: str) -> list[Json]:
    return list((patch.body or {}).get(part) or ())


def write_problems(rows: Sequence[dict[str, str]], proxy: RecordingProxy,
                   state: Json) -> list[str]:
    """Every domain write that reached the sandbox took effect once, and none was resent:

    - each connect row's domain was in exactly one Create Connected Domain, none refused;
    - each DNS row's record was added by exactly one zone update, none refused, and that
      update deleted exactly the record's pre-image (the default record it replaced, or none);
    - the sandbox received no domain write that did not come through the proxy.
    """
    problems: list[str] = []
    creates = proxy.calls("POST", "/domains/v1/connected-domains")
    patches = proxy.calls("PATCH", "/domains/v1/dns-zones/")
    by_endpoint = state["requests"]["by_endpoint"]
    if (len(creates), len(patches)) != (by_endpoint.get(CREATE, 0), by_endpoint.get(UPDATE, 0)):
        problems.append(f"the proxy passed on {len(creates)} connect(s) and {len(patches)} zone "
                        f"update(s), the sandbox received {by_endpoint}")
    refused = [c for c in [*creates, *patches] if c.outcome not in ("200", "dropped")]
    if refused:
        problems.append(f"domain writes refused (a resend after the effect?): {refused}")
    connected = Counter(c.body["connectedDomain"]["domain"] for c in creates if c.body)
    asked = Counter(row["domain"] for row in rows if row["action"] == "connect_domain")
    if connected != asked:
        problems.append(f"connect requests per domain {dict(connected)}, rows {dict(asked)}")
    added: dict[tuple[str, str, str], list[Forwarded]] = {}
    for patch in patches:
        domain = patch.path.rsplit("/", 1)[1]
        for record in _records_of(patch, "additions"):
            added.setdefault((domain, record["type"], record["hostName"]), []).append(patch)
    for row in rows:
        if row["action"] != "set_dns_record":
            continue
        domain, key = row["domain"], (row["record_type"], row["host"])
        writes = added.pop((domain, *key), [])
        if len(writes) != 1:
            problems.append(f"{row['key']}: {key} added by {len(writes)} zone updates")
            continue
        (write,) = writes
        (addition,) = [r for r in _records_of(write, "additions")
                       if (r["type"], r["hostName"]) == key]
        if set(addition["values"]) != cell_values(row):
            problems.append(f"{row['key']}: sent {addition}, asked {row['values']!r}")
        deleted = [(set(r["values"]), r.get("ttl")) for r in _records_of(write, "deletions")
                   if (r["type"], r["hostName"]) == key]
        default = default_record(domain, key)
        if deleted != ([(set(default[0]), default[1])] if default else []):
            problems.append(f"{row['key']}: the update deleted {deleted}, the record was "
                            f"{default or 'absent'} before")
    if added:
        problems.append(f"records added that no row asked for: {sorted(added)}")
    return problems


# -- the scenario: killed five times, then finished -------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What the killed-and-resumed job left: its rows, the last run, both reports, the
    sandbox's world and request log, and the proxy's log of what reached it."""

    rows: list[dict[str, str]]
    kill_points: list[int | None]  # None: the run had finished before its kill
    final: subprocess.CompletedProcess[str]
    report: list[Json]
    csv_report: list[dict[str, str]]
    status: Json
    state: Json
    proxy: RecordingProxy


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    """Run the job, SIGKILL it at each of KILLS (alternately started with `run FILE` and
    `resume`), then run the file again to its end; once for the module's tests."""
    workdir = tmp_path_factory.mktemp("domain-crash")
    db, env = workdir / "bulkops.db", cli_env()
    with running_sandbox(**FAULTS) as sandbox:
        sandbox.set_faults(fault_methods=list(DOMAIN_ENDPOINTS))
        rows = job_rows(seed_premium_sites(sandbox.base_url, 4, "dc"))
        job = str(write_job_csv(workdir / "onboarding.csv", rows, DOMAIN_JOB_COLUMNS))
        with RecordingProxy(sandbox.base_url).serving() as proxy:
            flags = fast_run_flags(db, proxy.base_url)
            kill_points: list[int | None] = []
            for command, endpoints, more in KILLS:
                args = ["run", job, *flags] if command == "run" else ["resume", *flags]
                cli = start_cli(args, env)
                try:
                    kill_points.append(kill_after_calls(cli, sandbox, endpoints, more,
                                                        timeout=RUN_TIMEOUT))
                finally:
                    cli.ensure_stopped()
            # The same file again continues the job (or, if the last kill came too late,
            # reports it finished, sending nothing).
            final = run_cli(["run", job, *flags], env, timeout=RUN_TIMEOUT)
        state = sandbox.state()
    csv_path = workdir / "report.csv"
    written = run_cli(["report", "--format", "csv", "--db", str(db), "-o", str(csv_path)], env,
                      timeout=30)
    assert written.returncode == 0, written.stderr
    print(f"domain kills at {kill_points} domain writes; sandbox answers "
          f"{state['requests']['by_status']}; calls {state['requests']['by_endpoint']}")
    yield Outcome(rows, kill_points, final, report_json(db, env), read_report_csv(csv_path),
                  status_json(db, env), state, proxy)


def test_sigkill_during_domain_rows_then_resume_does_every_row_exactly_once(
    killed_and_resumed: Outcome,
) -> None:
    """Killed five times while connects and zone updates reach Wix (answers lost after the
    effect besides), alternately continued with `run FILE` and `resume`: the job ends with
    exit 0, every row succeeded, the new sites exist once each, every domain is connected
    once, to its row's site, as asked, and every record holds exactly its values."""
    done = killed_and_resumed
    assert None not in done.kill_points[:-1], f"kills that came too late: {done.kill_points}"
    assert done.final.returncode == 0, done.final.stdout + done.final.stderr
    assert f"{len(done.rows)} succeeded" in done.final.stdout, done.final.stdout
    assert (done.status["state"], done.status["counts"]["succeeded"]) == (
        "finished", len(done.rows))
    assert_exactly_once(done.rows, done.report, done.state)
    assert domain_problems(done.rows, done.report, done.state, registrar=False) == []
    assert done.state["requests"]["by_status"].get("dropped", 0) > 0, (
        "the seed must lose some answers for this test to mean anything")


def test_no_domain_write_was_resent_blind(killed_and_resumed: Outcome) -> None:
    """Each connection was asked for by exactly one request and each record written by exactly
    one zone update, deleting the record's pre-image; the sandbox refused none (a blind
    resend after the effect would be refused: its deletion no longer matches, or its
    addition collides)."""
    done = killed_and_resumed
    assert write_problems(done.rows, done.proxy, done.state) == []
    assert done.state["requests"]["by_status"].get("428", 0) == 0


def test_reports_agree_with_the_sandbox_row_by_row(killed_and_resumed: Outcome) -> None:
    """The CSV report lists the rows in input order, all succeeded, with the site of each
    connect row, and no registrar records on rows that are not connects."""
    done = killed_and_resumed
    assert [line["key"] for line in done.csv_report] == [row["key"] for row in done.rows]
    for row, line in zip(done.rows, done.csv_report, strict=True):
        assert line["status"] == "succeeded", line
        if row["action"] == "connect_domain":
            assert line["site"] == row["site"], line
        else:
            assert line["registrar_records"] == "", line


def test_every_connect_row_reports_its_registrar_records(killed_and_resumed: Outcome) -> None:
    """Each connect row, however it ended up done (sent once, reconciled after a lost answer,
    or found connected by the checks of a later run), carries what the client must set at
    their registrar (Setup Info) in the JSON report, and in the CSV report's
    registrar_records column."""
    done = killed_and_resumed
    problems = [p for p in domain_problems(done.rows, done.report, done.state)
                if "registrar" in p]
    for row, line in zip(done.rows, done.csv_report, strict=True):
        if row["action"] == "connect_domain" and (
                line["registrar_records"].split(" ")[1:2] != [row["domain"]]):
            problems.append(f"{row['key']}: CSV registrar_records {line['registrar_records']!r}")
    assert problems == []


def test_no_row_that_was_sent_says_nothing_was_sent(killed_and_resumed: Outcome) -> None:
    """A row's note never says that nothing was sent for a row that was sent (attempts > 0):
    a connect the killed run had sent and the next run finds done is reconciled, not done
    before the job."""
    done = killed_and_resumed
    contradictions = [(r["key"], r["attempts"], r["note"]) for r in done.report
                      if r["attempts"] > 0 and "nothing sent" in (r["note"] or "")]
    assert contradictions == []


def test_failed_domain_row_report_is_a_job_file_again(
    sandbox_factory: SandboxFactory, env: dict[str, str], each_db: str, tmp_path: Path,
) -> None:
    """A job whose connect of a domain still for sale fails: `report --only failed` as CSV
    holds that row alone, with Wix's reason, and `bulkops validate` takes it as a job file."""
    sandbox = sandbox_factory()
    sites = seed_premium_sites(sandbox.base_url, 2, "fb")
    rows = [{"action": "create_site", "key": "fb-site", "site_name": "FB Florist"},
            *domain_rows("fb", sites, nameservers=1, records=4, for_sale=True)]
    job = write_job_csv(tmp_path / "domains.csv", rows, DOMAIN_JOB_COLUMNS)
    flags = fast_run_flags(each_db, sandbox.base_url)
    ran = run_cli(["run", str(job), *flags], env, timeout=RUN_TIMEOUT)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    report = report_json(each_db, env)
    assert domain_problems(rows, report, sandbox.state()) == []
    failed = {r["key"]: r["error"]["code"] for r in report if r["status"] != "succeeded"}
    assert failed == {"fb-dom-for-sale": "FOR_SALE"}

    again = tmp_path / "failed.csv"
    written = run_cli(["report", "--format", "csv", "--only", "failed", "--db", each_db,
                       "-o", str(again)], env, timeout=30)
    assert written.returncode == 0, written.stderr
    (line,) = read_report_csv(again)
    assert (line["action"], line["domain"], line["error_code"]) == (
        "connect_domain", "for-sale.com", "FOR_SALE")
    assert line["site"] == sites[0] and line["connection"] == "pointing"
    checked = run_cli(["validate", str(again)], env, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 operation(s), valid" in checked.stdout


def test_recording_proxy_passes_answers_and_drops_through(
    sandbox_factory: SandboxFactory,
) -> None:
    """The proxy the proof leans on: an answer comes back as the sandbox gave it, and a
    connection the sandbox drops reaches the client as a dropped connection."""
    sandbox = sandbox_factory()
    sandbox.set_faults(drop_after_rate=1.0, fault_methods=["get_connected_domain"])
    headers = {"Authorization": "sandbox-key", "wix-account-id": sandbox.state()["config"][
        "account_id"]}

    def fetch(base_url: str, path: str) -> str:
        request = urllib.request.Request(base_url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as answer:
                return str(answer.status)
        except urllib.error.HTTPError as refused:
            return str(refused.code)
        except (OSError, http.client.HTTPException):
            return "dropped"

    with RecordingProxy(sandbox.base_url).serving() as proxy:
        seen = [fetch(proxy.base_url, path) for path in
                ("/domains/v1/connected-domains?paging.limit=1",
                 "/domains/v1/connected-domains/nobody-here.com")]
    assert seen == ["200", "dropped"]
    assert [(c.method, c.outcome) for c in proxy.forwarded] == [
        ("GET", "200"), ("GET", "dropped")]

"""Drive the `bulkops` command as a user would: real subprocesses, a real sandbox over HTTP.

Everything here is synchronous and bounded: every wait has a timeout, and every process that is
started is stopped (SIGTERM, then SIGKILL) by whoever started it. Tests prove outcomes from the
sandbox's own state (`sandbox_state`), never from the tool's word alone.

Typical use:

    with running_sandbox(error_rate=0.1, drop_after=0.05, seed=7) as sandbox:
        rows = realistic_rows(40, tag="t1")
        job = write_job_csv(tmp_path / "job.csv", rows)
        result = run_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url)],
                         cli_env(), timeout=60)
        state = sandbox.state()
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

SANDBOX_KEY = "sandbox-key"
ACCOUNT_ID = "11111111-1111-4111-8111-111111111111"
SUB_ACCOUNTS = tuple(f"22222222-2222-4222-8222-22222222222{n}" for n in range(1, 6))
# A well-formed GUID the sandbox knows nothing about: transfers to it answer 428
# TARGET_ACCOUNT_ID_NOT_FOUND.
UNKNOWN_ACCOUNT = "33333333-3333-4333-8333-333333333333"
# Invites to this domain fail inside a 200 answer (the sandbox's default reject domain).
BOUNCE_DOMAIN = "bounce.invalid"

JOB_COLUMNS = (
    "action", "key", "site_name", "template_id", "folder_id", "site", "to_account",
    "from_account", "email", "role", "sites", "depends_on",
)

# The process start-up alone costs about a second; these bound one command, not a whole test.
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
HTTP_TIMEOUT = 5.0

Json = dict[str, Any]


# -- the command ------------------------------------------------------------------------------


def bulkops_command() -> list[str]:
    """The `bulkops` console script of the running interpreter's environment.

    The script next to `sys.executable` is the one installed with this checkout; PATH is only
    a fallback, and `python -m bulkops` the last resort.
    """
    beside = Path(sys.executable).parent / "bulkops"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("bulkops")
    if found:
        return [found]
    return [sys.executable, "-m", "bulkops"]


def cli_env(
    *, api_key: str | None = SANDBOX_KEY, account_id: str | None = ACCOUNT_ID,
    **extra: str,
) -> dict[str, str]:
    """The process environment for one command: this process's environment without any
    WIX_/BULKOPS_ variable (so the caller's shell cannot leak in), plus the credentials
    (None leaves the variable unset) and `extra` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WIX_", "BULKOPS_"))}
    if api_key is not None:
        env["WIX_API_KEY"] = api_key
    if account_id is not None:
        env["WIX_ACCOUNT_ID"] = account_id
    env.update(extra)
    return env


def fast_run_flags(
    db: str | Path, base_url: str, *, rate: str = "50/s", concurrency: int = 8,
    timeout: float = 1.0, settle: float = 0.3, backoff_base: float = 0.05,
    max_attempts: int = 20, lease_seconds: float = 3.0, wait: float | None = 30.0,
) -> list[str]:
    """Flags of `run`/`resume` that make a test run take seconds: a fast budget, short
    timeouts, a short listing-lag allowance and short backoffs; a short job lease, and (unless
    `wait` is None) waiting for a SIGKILLed run's lease to end instead of exiting 4."""
    flags = [
        "--db", str(db), "--base-url", base_url, "--rate", rate,
        "--concurrency", str(concurrency), "--timeout", str(timeout),
        "--settle", str(settle), "--backoff-base", str(backoff_base),
        "--max-attempts", str(max_attempts), "--lease-seconds", str(lease_seconds),
    ]
    return flags if wait is None else [*flags, f"--wait={wait}"]


def run_cli(
    args: Sequence[str], env: Mapping[str, str], timeout: float = 60.0,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `bulkops ARGS` to its end and capture its output as text.

    On timeout the process is killed and `subprocess.TimeoutExpired` propagates, so a hung
    command fails the test instead of hanging the suite.
    """
    return subprocess.run(
        [*bulkops_command(), *args], env=dict(env), cwd=cwd, capture_output=True, text=True,
        timeout=timeout, check=False, stdin=subprocess.DEVNULL,
    )


@dataclass
class BackgroundCli:
    """A `bulkops` command running in the background, its output spooled to temporary files
    (never pipes: a chatty process must not block on a full pipe before it is killed)."""

    process: subprocess.Popen[bytes]
    args: tuple[str, ...]
    _stdout: IO[bytes] = field(repr=False)
    _stderr: IO[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def send(self, signum: int) -> None:
        """Send a signal unless the process has already exited."""
        if self.running():
            self.process.send_signal(signum)

    def wait(self, timeout: float) -> subprocess.CompletedProcess[str]:
        """Wait for the exit (killing it after `timeout` seconds, then raising
        `subprocess.TimeoutExpired`) and return its exit code and output."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)
            self._close()
            raise
        return subprocess.CompletedProcess(
            list(self.args), self.process.returncode, self._read(self._stdout),
            self._read(self._stderr),
        )

    def kill(self) -> subprocess.CompletedProcess[str]:
        """SIGKILL now (a crash at an arbitrary instruction) and collect what it printed."""
        self.send(signal.SIGKILL)
        return self.wait(STOP_TIMEOUT)

    def ensure_stopped(self) -> None:
        """For `finally:` blocks: kill the process if it still runs, release its files."""
        if self.running():
            self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_TIMEOUT)
        self._close()

    def _read(self, spool: IO[bytes]) -> str:
        text = _spooled_text(spool)
        spool.close()
        return text

    def _close(self) -> None:
        self._stdout.close()
        self._stderr.close()


def _spool() -> IO[bytes]:
    """An anonymous file for a child's output. It outlives this call on purpose (the child
    writes to it until it exits), and its owner object closes it: no `with` block fits."""
    return tempfile.TemporaryFile()


def _spooled_text(spool: IO[bytes]) -> str:
    """What a child process wrote to `spool` so far. pread leaves the file offset alone: the
    child shares it, and moving it would make the child overwrite its own earlier output."""
    if spool.closed:
        return ""
    fd = spool.fileno()
    return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")


def start_cli(
    args: Sequence[str], env: Mapping[str, str], cwd: str | Path | None = None,
) -> BackgroundCli:
    """Start `bulkops ARGS` in the background; stop it with `.kill()`, `.send(SIGTERM)` +
    `.wait(t)`, and always `.ensure_stopped()` in a `finally:`."""
    stdout, stderr = _spool(), _spool()
    command = [*bulkops_command(), *args]
    process = subprocess.Popen(
        command, env=dict(env), cwd=cwd, stdout=stdout, stderr=stderr,
        stdin=subprocess.DEVNULL,
    )
    return BackgroundCli(process, tuple(command), stdout, stderr)


# -- the sandbox ------------------------------------------------------------------------------


@dataclass
class SandboxProcess:
    """A `bulkops sandbox` subprocess listening on 127.0.0.1 at `base_url`."""

    process: subprocess.Popen[bytes]
    base_url: str
    _output: IO[bytes] = field(repr=False)

    def state(self) -> Json:
        """GET /_sandbox/state: sites, transfers, invites, emails_sent, requests, config."""
        return sandbox_state(self.base_url)

    def set_faults(self, **fields: Any) -> Json:
        """POST /_sandbox/config with `fields` (e.g. error_rate=0); returns the new config."""
        return set_faults(self.base_url, **fields)

    def output(self) -> str:
        """Everything the sandbox printed so far (its banner, and any error it logged)."""
        return _spooled_text(self._output)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still there after a bounded wait."""
        _terminate(self.process)
        self._output.close()


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


SandboxFactory = Callable[..., SandboxProcess]
"""The `sandbox_factory` fixture: `factory(**options)` starts a sandbox stopped after the test."""

_FLAG_OF = {
    "error_rate": "--error-rate", "throttle_rate": "--throttle-rate",
    "drop_before": "--drop-before", "drop_after": "--drop-after", "slow_rate": "--slow-rate",
    "slow_delay": "--slow-delay", "listing_lag": "--listing-lag", "rate_limit": "--rate-limit",
    "seed": "--seed", "latency": "--latency", "api_key": "--api-key",
    "account_id": "--account-id", "state_file": "--state-file",
}


def sandbox_flags(**options: Any) -> list[str]:
    """`bulkops sandbox` flags from keyword options named like the flags (`drop_after=0.1`,
    `retry_after=True`, `rate_limit="200/min"`); None values are left out."""
    flags: list[str] = []
    for name, value in options.items():
        if value is None or value is False:
            continue
        if name == "retry_after":
            flags.append("--retry-after")
            continue
        if name not in _FLAG_OF:
            raise ValueError(f"unknown sandbox option {name!r}; known: {sorted(_FLAG_OF)}")
        flags += [_FLAG_OF[name], str(value)]
    return flags


_LISTENING = "sandbox listening on "


def free_port() -> int:
    """A loopback port nothing listens on now: for a sandbox that must come back on the same
    address after being stopped (an outage), or for a Wix that is not there at all."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def start_sandbox(port: int = 0, **options: Any) -> SandboxProcess:
    """Start `bulkops sandbox --port PORT` (0: any free port) with `options` (see
    `sandbox_flags`) and wait for its "sandbox listening on URL" line. The caller must `.stop()`
    it (or use `running_sandbox`).

    Its output goes to a temporary file, not a pipe: nobody reads it while tests run, and a
    sandbox blocked on a full pipe would look like a hung Wix.
    """
    command = [*bulkops_command(), "sandbox", "--port", str(port), *sandbox_flags(**options)]
    output = _spool()
    process = subprocess.Popen(
        command, env=cli_env(api_key=None, account_id=None, PYTHONUNBUFFERED="1"),
        stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    sandbox = SandboxProcess(process, "", output)
    try:
        sandbox.base_url = _wait_for_base_url(sandbox)
    except BaseException:
        sandbox.stop()
        raise
    return sandbox


def _wait_for_base_url(sandbox: SandboxProcess) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        for line in sandbox.output().splitlines():
            if line.startswith(_LISTENING):
                return line[len(_LISTENING):].strip()
        if sandbox.process.poll() is not None:
            raise RuntimeError(f"sandbox exited before listening: {sandbox.output()!r}")
        time.sleep(0.05)
    raise RuntimeError(f"sandbox did not start within {STARTUP_TIMEOUT}s: {sandbox.output()!r}")


@contextlib.contextmanager
def running_sandbox(**options: Any) -> Iterator[SandboxProcess]:
    """A sandbox subprocess for the block's duration (always stopped afterwards)."""
    sandbox = start_sandbox(**options)
    try:
        yield sandbox
    finally:
        sandbox.stop()


def _http_json(url: str, body: Json | None = None) -> Json:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
        result: Json = json.loads(response.read())
    return result


def sandbox_state(base_url: str) -> Json:
    """The sandbox's own record of the world (GET /_sandbox/state)."""
    return _http_json(f"{base_url}/_sandbox/state")


def set_faults(base_url: str, **fields: Any) -> Json:
    """Change the sandbox's faults while it runs (POST /_sandbox/config), e.g.
    `set_faults(url, error_rate=0, drop_after=0)`. Field names are SandboxConfig's."""
    return _http_json(f"{base_url}/_sandbox/config", fields)


def seed_sites(base_url: str, sites: Sequence[Json]) -> list[Json]:
    """Add sites to the sandbox's world as if made outside bulkops (POST /_sandbox/sites):
    each a dict with `displayName` and optionally `ownerAccountId` (default: the key's
    account), `createdDate` (ISO-8601), `templateId`... Returns them as the sandbox holds them
    (`id` is the site id)."""
    seeded: list[Json] = _http_json(f"{base_url}/_sandbox/sites", {"sites": list(sites)})["sites"]
    return seeded


def request_count(base_url: str) -> int:
    """How many Wix API requests the sandbox has received (admin calls not counted)."""
    return int(sandbox_state(base_url)["requests"]["total"])


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# -- job files --------------------------------------------------------------------------------

_BUSINESSES = (
    "Bakery", "Dental", "Yoga Studio", "Law Partners", "Florist", "Fitness", "Realty",
    "Cafe", "Veterinary Clinic", "Photography", "Architects", "Tutoring", "Travel Co.",
    "Winery", "Books", "Spa",
)
_TEMPLATES = (
    "3b1f6c2e-8a4d-4e7b-9c1a-5d2e7f8a9b01", "7c2a9e4f-1b3d-4a6c-8e5f-0a1b2c3d4e02", "",
)


def realistic_rows(total: int, *, tag: str = "t") -> list[dict[str, str]]:
    """`total` job rows, client by client, each row after the rows it refers to:

    - `create_site` with a unique display name (`tag` makes names unique across files),
    - every second client's site: `transfer_site` of `@key` to a sub-account,
    - every client's site: `site_invite` to `@key` (Website Manager),
    - clients whose site stays in the account: `account_invite` limited to `@key` (a site
      that moved away could not be named by an account invite).

    Any prefix of the list is a valid job, so `total` cuts it anywhere.
    """
    rows: list[dict[str, str]] = []
    for client in range(1, total + 1):
        rows += _client_rows(client, tag)
        if len(rows) >= total:
            break
    return rows[:total]


def _client_rows(client: int, tag: str) -> list[dict[str, str]]:
    key = f"{tag}-c{client:03d}"
    name = f"{tag.upper()} {_BUSINESSES[client % len(_BUSINESSES)]} {client:03d}"
    rows = [{"action": "create_site", "key": key, "site_name": name,
             "template_id": _TEMPLATES[client % len(_TEMPLATES)]}]
    transferred = client % 2 == 0
    if transferred:
        rows.append({"action": "transfer_site", "key": f"{key}-move", "site": f"@{key}",
                     "to_account": SUB_ACCOUNTS[client % len(SUB_ACCOUNTS)]})
    rows.append({"action": "site_invite", "key": f"{key}-owner", "site": f"@{key}",
                 "email": f"owner{client}@client{client}.example.com",
                 "role": "Website Manager"})
    if not transferred:
        rows.append({"action": "account_invite", "key": f"{key}-team", "sites": f"@{key}",
                     "email": f"team{client}@agency.example.com", "role": "Website Manager"})
    return rows


def write_job_csv(
    path: str | Path, rows: Sequence[Mapping[str, str]],
    columns: Sequence[str] = JOB_COLUMNS,
) -> Path:
    """Write `rows` as a UTF-8 CSV job file with a header of `columns` (missing cells empty)."""
    target = Path(path)
    with target.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    return target


def read_report_csv(path: str | Path) -> list[dict[str, str]]:
    """A CSV report (or any CSV) as a list of dicts, cells exactly as written."""
    with Path(path).open(encoding="utf-8", newline="") as source:
        return list(csv.DictReader(source))


def report_json(db: str | Path, env: Mapping[str, str], *extra: str) -> list[Json]:
    """`bulkops report --format json` of the latest job in `db`, parsed (asserts exit 0)."""
    result = run_cli(["report", "--format", "json", "--db", str(db), *extra], env, timeout=30)
    assert result.returncode == 0, result.stderr
    records: list[Json] = json.loads(result.stdout)
    return records


def status_json(db: str | Path, env: Mapping[str, str], *extra: str) -> Json:
    """`bulkops status --json` of the latest job in `db`, parsed (asserts exit 0)."""
    result = run_cli(["status", "--json", "--db", str(db), *extra], env, timeout=30)
    assert result.returncode == 0, result.stderr
    status: Json = json.loads(result.stdout)
    return status


def kill_after_requests(cli: BackgroundCli, sandbox: SandboxProcess, more: int, *,
                        timeout: float) -> int:
    """SIGKILL the run once the sandbox has seen `more` further requests; returns how many
    requests it had seen at the kill (the run must still be going at that point)."""
    start = request_count(sandbox.base_url)
    wait_until(lambda: not cli.running() or request_count(sandbox.base_url) >= start + more,
               timeout=timeout)
    assert cli.running(), f"the run ended before {more} requests: {cli.wait(1)}"
    cli.kill()
    return request_count(sandbox.base_url)


# The Wix calls that change something (the sandbox names endpoints by these).
MUTATING = ("create_site", "transfer_site", "account_invite", "site_invite_bulk")


def mutating_calls(sandbox: SandboxProcess) -> Counter[str]:
    """Calls that change something, per endpoint, that the sandbox has received so far."""
    by_endpoint = sandbox.state()["requests"]["by_endpoint"]
    return Counter({name: int(by_endpoint.get(name, 0)) for name in MUTATING})


def calls_since(before: Counter[str], sandbox: SandboxProcess) -> Counter[str]:
    """Mutating calls the sandbox received since `before` (only non-zero endpoints)."""
    after = mutating_calls(sandbox)
    after.subtract(before)
    return +after


def requests_by_endpoint(sandbox: SandboxProcess) -> Counter[str]:
    """Every Wix call the sandbox has received so far, per endpoint (reads included)."""
    by_endpoint = sandbox.state()["requests"]["by_endpoint"]
    return Counter({name: int(count) for name, count in by_endpoint.items()})


# -- domain rows ------------------------------------------------------------------------------

# The columns of connect_domain and set_dns_record rows; a job with domain rows is written
# with DOMAIN_JOB_COLUMNS.
DOMAIN_COLUMNS = ("domain", "connection", "assignment", "notify", "record_type", "host",
                  "values", "ttl")
DOMAIN_JOB_COLUMNS = (*JOB_COLUMNS, *DOMAIN_COLUMNS)
# The domain calls that change something: a connection, a zone.
DOMAIN_MUTATING = ("create_connected_domain", "update_dns_zone")
# Every domain endpoint the sandbox serves (the names its fault_methods take).
DOMAIN_ENDPOINTS = (
    "create_connected_domain", "get_connected_domain", "list_connected_domains",
    "connected_domain_setup_info", "get_dns_zone", "update_dns_zone", "preview_dns_zone",
    "check_domain_availability",
)
# A domain nobody owns yet in the sandbox (its default `domains_for_sale`): connect answers 400.
FOR_SALE_DOMAIN = "for-sale.com"
# What the sandbox's zone of a freshly nameservers-connected domain holds besides NS and SOA,
# (type, host) -> (values, ttl), with `{d}` for the domain: a row on one of these changes it.
DEFAULT_ZONE = {
    ("A", "{d}"): (("185.230.63.107", "185.230.63.171", "185.230.63.186"), 3600),
    ("CNAME", "www.{d}"): (("pointing.wixdns.net",), 3600),
}
DEFAULT_TTL = 3600  # of a record written without a ttl (the sandbox's default)

# The records a nameservers domain gets, in this order (`domain_rows` takes the first n):
# (type, host, values, ttl or None); `{d}` is the domain. Changes of the default A and www
# CNAME, an MX of two values, TXT values holding ';' (DMARC, DKIM, two quoted values), SRV.
_RECORDS: tuple[tuple[str, str, tuple[str, ...], int | None], ...] = (
    ("A", "{d}", ("203.0.113.10", "203.0.113.11"), 300),
    ("MX", "{d}", ("10 mx1.mail.example.net", "20 mx2.mail.example.net"), 600),
    ("TXT", "_dmarc.{d}", ("v=DMARC1; p=quarantine; rua=mailto:dmarc@{d}",), None),
    ("CNAME", "www.{d}", ("shops.example-cdn.net",), None),
    ("TXT", "{d}", ("v=spf1 include:_spf.example.net ~all", "verify=a1b2; c3"), 900),
    ("AAAA", "v6.{d}", ("2001:db8::1",), 120),
    ("CNAME", "blog.{d}", ("ghs.example-hosted.net",), None),
    ("A", "api.{d}", ("198.51.100.7",), None),
    ("SRV", "_sip._tcp.{d}", ("10 5 5060 sip.{d}",), 3600),
    ("MX", "mail.{d}", ("5 mx.mail.example.net",), None),
    ("A", "shop.{d}", ("198.51.100.8", "198.51.100.9"), 900),
    ("TXT", "k1._domainkey.{d}", ("v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEB",), None),
)


def seed_premium_sites(base_url: str, count: int, tag: str) -> list[str]:
    """Seed `count` live client sites with Premium (what connecting a domain needs) in the
    key's account; returns their ids."""
    specs = [{"displayName": f"{tag.upper()} Live Client {n}", "premium": True}
             for n in range(1, count + 1)]
    return [site["id"] for site in seed_sites(base_url, specs)]


def values_cell(record_type: str, values: Sequence[str]) -> str:
    """A record's values as a job file's `values` cell: `;`-separated; TXT values (which may
    hold `;`) as they are when there is one, each in double quotes when there are several."""
    if record_type in ("TXT", "SPF") and len(values) > 1:
        return ";".join(f'"{value}"' for value in values)
    return ";".join(values)


def cell_values(row: Mapping[str, str]) -> set[str]:
    """The values a set_dns_record row of `domain_rows` asks for (the inverse of
    `values_cell` for the values it writes: no escaped quotes)."""
    cell = row["values"]
    if row["record_type"] in ("TXT", "SPF"):
        if cell.startswith('"'):
            return {part.strip('"') for part in cell.split('";"')}
        return {cell}
    return {part.strip() for part in cell.split(";")}


def domain_rows(
    tag: str, sites: Sequence[str], *, nameservers: int = 3, records: int = 12,
    for_sale: bool = False,
) -> list[dict[str, str]]:
    """connect_domain rows on the seeded Premium `sites` (at least 2; used round-robin), then
    `records` set_dns_record rows for each of `nameservers` domains connected with nameservers:

    - `{tag}-pointing.com`, pointing, the primary domain of sites[0];
    - `shop.{tag}-pointing.com`, a subdomain (no connection type), on sites[1];
    - `{tag}-zone{n}.com`, nameservers, redirects, each followed by its records (they wait for
      their connect row by themselves: a zone exists once the domain is connected);
    - with `for_sale`: a connect of a domain still for sale (fails FOR_SALE) on sites[0].
    """
    pointing = f"{tag}-pointing.com"
    rows = [
        {"action": "connect_domain", "key": f"{tag}-dom-pointing", "site": sites[0],
         "domain": pointing, "connection": "pointing", "assignment": "primary"},
        {"action": "connect_domain", "key": f"{tag}-dom-sub", "site": sites[1 % len(sites)],
         "domain": f"shop.{pointing}"},
    ]
    for n in range(1, nameservers + 1):
        domain = f"{tag}-zone{n}.com"
        rows.append({"action": "connect_domain", "key": f"{tag}-dom-zone{n}",
                     "site": sites[(n + 1) % len(sites)], "domain": domain,
                     "connection": "nameservers", "notify": "no"})
        for number, (kind, host, values, ttl) in enumerate(_RECORDS[:records], start=1):
            rows.append({
                "action": "set_dns_record", "key": f"{tag}-dns{n}-{number:02d}",
                "domain": domain, "record_type": kind, "host": host.format(d=domain),
                "values": values_cell(kind, [v.format(d=domain) for v in values]),
                "ttl": "" if ttl is None else str(ttl),
            })
    if for_sale:
        rows.append({"action": "connect_domain", "key": f"{tag}-dom-for-sale", "site": sites[0],
                     "domain": FOR_SALE_DOMAIN, "connection": "pointing"})
    return rows


def _setup_kinds(row: Mapping[str, str]) -> list[str]:
    """The record types Setup Info gives for a connect row: what the registrar needs."""
    connection = row.get("connection") or ""
    return {"pointing": ["A", "CNAME"], "nameservers": ["NS"]}.get(connection, ["CNAME"])


def _expected_connection(row: Mapping[str, str]) -> tuple[str, str | None, str]:
    connection = row.get("connection") or ""
    return (row["site"], connection.upper() or None,
            (row.get("assignment") or "redirect").upper())


def domain_problems(rows: Sequence[Mapping[str, str]], report: Sequence[Json], state: Json,
                    *, registrar: bool = True) -> list[str]:
    """What the sandbox's connected domains and zones say against the domain rows of `rows`
    (connect rows name seeded site ids, not `@key`s) and their report records; empty: they
    agree. Held:

    - the connected domains are exactly those of the connect rows that succeeded, each on the
      row's site, with its connection type and assignment (so none on a wrong site, none that
      no row asked for); a connect row that did not succeed connected nothing;
    - a connect row that succeeded reports the row's site and (unless not `registrar`) the
      registrar records Setup Info gives for its kind (pointing: A + CNAME, nameservers: NS,
      subdomain: CNAME);
    - every set_dns_record row that succeeded holds exactly its values (as a set), and its ttl
      when the row gives one (else the record's previous ttl, or the default for a new one);
      one that did not succeed does not hold them;
    - the zones hold nothing else: the default records no row named are as Wix made them, and
      no record is there that no row asked for (NS and SOA are Wix's, never written).
    """
    by_key = {record["key"]: record for record in report}
    zones = {z["domain"]: {(r["type"], r["hostName"]): r for r in z["records"]}
             for z in state["dns_zones"]}
    dns = [row for row in rows if row["action"] == "set_dns_record"]
    return [*_connection_problems(rows, by_key, state, registrar),
            *_record_problems(dns, by_key, zones), *_stray_records(dns, zones)]


def _connection_problems(rows: Sequence[Mapping[str, str]], by_key: Mapping[str, Json],
                         state: Json, registrar: bool) -> list[str]:
    problems: list[str] = []
    there = {d["domain"]: (d["siteId"], d["connectionType"], d["assignmentType"])
             for d in state["connected_domains"]}
    wanted: dict[str, tuple[str, str | None, str]] = {}
    for row in rows:
        if row["action"] != "connect_domain":
            continue
        record = by_key[row["key"]]
        if record["status"] != "succeeded":
            if row["domain"] in there:
                problems.append(f"{row['key']} is {record['status']} but {row['domain']} is "
                                f"connected: {there[row['domain']]}")
            continue
        wanted[row["domain"]] = _expected_connection(row)
        result = record.get("result") or {}
        if result.get("site_id") != row["site"]:
            problems.append(f"{row['key']}: report site {result.get('site_id')}, row site "
                            f"{row['site']}")
        kinds = [r.get("type") for r in result.get("registrar_records") or ()]
        if registrar and kinds != _setup_kinds(row):
            problems.append(f"{row['key']}: registrar records {kinds}, expected "
                            f"{_setup_kinds(row)}")
    if there != wanted:
        wrong = {d: (there.get(d), wanted.get(d)) for d in set(there) | set(wanted)
                 if there.get(d) != wanted.get(d)}
        problems.append(f"connected domains differ from the rows (there, asked): {wrong}")
    return problems


def default_record(domain: str, key: tuple[str, str]) -> tuple[tuple[str, ...], int] | None:
    """The record (values, ttl) the zone of `domain` starts with at `key`, if any."""
    return DEFAULT_ZONE.get((key[0], key[1].replace(domain, "{d}")))


def _record_problems(dns: Sequence[Mapping[str, str]], by_key: Mapping[str, Json],
                     zones: Mapping[str, Mapping[tuple[str, str], Json]]) -> list[str]:
    problems: list[str] = []
    for row in dns:
        domain, key = row["domain"], (row["record_type"], row["host"])
        record, found = by_key[row["key"]], zones.get(domain, {}).get(key)
        holds = found is not None and set(found["values"]) == cell_values(row)
        if record["status"] != "succeeded":
            if holds:
                problems.append(f"{row['key']} is {record['status']} but {key} holds its values")
            continue
        default = default_record(domain, key)
        ttl = int(row["ttl"]) if row.get("ttl") else default[1] if default else DEFAULT_TTL
        if found is None or not holds or found["ttl"] != ttl:
            problems.append(f"{row['key']}: {key} is {found}, asked {sorted(cell_values(row))} "
                            f"ttl {ttl}")
    return problems


def _stray_records(dns: Sequence[Mapping[str, str]],
                   zones: Mapping[str, Mapping[tuple[str, str], Json]]) -> list[str]:
    asked = {(row["domain"], row["record_type"], row["host"]) for row in dns}
    problems: list[str] = []
    for domain, records in zones.items():
        for key, found in records.items():
            if key[0] in ("NS", "SOA") or (domain, *key) in asked:
                continue
            if (tuple(found["values"]), found["ttl"]) != default_record(domain, key):
                problems.append(f"{domain}: {key} is {found}, which no row asked for")
    return problems

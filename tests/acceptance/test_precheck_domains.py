"""Domain rows are checked before the first write too: the key's Domains permission (one probe),
connect_domain rows' sites (in the account, with Premium) and the connections Wix holds already,
set_dns_record rows' zones. A run refuses a file with a problem (exit 2) having sent nothing
but reads, and records a row whose domain is connected as asked already as done, unsent.

Each test drives the `bulkops` command as a subprocess against a `bulkops sandbox` process; the
sandbox's own state and request counters are the evidence of what was (not) done.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from harness import (
    ACCOUNT_ID,
    JOB_COLUMNS,
    MUTATING,
    SANDBOX_KEY,
    Json,
    SandboxProcess,
    cli_env,
    fast_run_flags,
    report_json,
    requests_by_endpoint,
    run_cli,
    seed_sites,
    set_faults,
    status_json,
    write_job_csv,
)

RUN_TIMEOUT = 30.0
COLUMNS = (*JOB_COLUMNS, "domain", "connection", "assignment", "notify", "record_type", "host",
           "values", "ttl")
# Every Wix call that changes something, the domain writes included.
WRITES = (*MUTATING, "create_connected_domain", "update_dns_zone")
NOWHERE = "99999999-9999-4999-8999-999999999999"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(XDG_DATA_HOME=str(tmp_path / "xdg-data"))


def _output(result: Any) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def _writes(counts: Counter[str]) -> int:
    return sum(counts[name] for name in WRITES)


def _run(job: Path, db: Path, sandbox: SandboxProcess, env: dict[str, str],
         *extra: str) -> Any:
    return run_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url), *extra], env,
                   timeout=RUN_TIMEOUT)


def job_file(path: Path, rows: list[dict[str, str]]) -> Path:
    return write_job_csv(path, rows, COLUMNS)


def _problems(stderr: str, path: Path) -> dict[int, str]:
    """line -> the problem lines printed for it (`path: line N, column C: reason`)."""
    found: dict[int, str] = {}
    for line in stderr.splitlines():
        match = re.match(rf"^{re.escape(str(path))}: line (\d+), (.*)$", line)
        if match:
            found[int(match[1])] = found.get(int(match[1]), "") + match[2]
    return found


def wix(base_url: str, method: str, path: str, body: Json | None = None,
        site_id: str | None = None) -> Json:
    """One Wix API call at the sandbox, as the agency's own tools (not bulkops) would make it:
    the world a file meets."""
    headers = {"Authorization": SANDBOX_KEY, "wix-account-id": ACCOUNT_ID,
               "Content-Type": "application/json"}
    if site_id is not None:
        headers["wix-site-id"] = site_id
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=5.0) as response:
        answer: Json = json.loads(response.read())
    return answer


def connect(base_url: str, site_id: str, domain: str, connection: str | None,
            assignment: str = "REDIRECT") -> Json:
    """Connect `domain` to the site outside bulkops (Create Connected Domain)."""
    connected: Json = {"domain": domain, "siteInfo": {"assignmentType": assignment},
                       "suppressNotifications": True}
    if connection is not None:
        connected["connectionType"] = connection
    return wix(base_url, "POST", "/domains/v1/connected-domains",
               {"connectedDomain": connected}, site_id=site_id)


def premium_sites(sandbox: SandboxProcess, *names: str, premium: bool = True) -> list[Json]:
    return seed_sites(sandbox.base_url, [{"displayName": n, "premium": premium} for n in names])


# -- the Domains permission ---------------------------------------------------------------------


def test_a_key_without_the_domains_permission_is_one_line_exit_2_and_nothing_sent(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    [shop] = premium_sites(sandbox, "Permission Shop")
    set_faults(sandbox.base_url, domains_permission=False)
    job = job_file(tmp_path / "domains.csv", [
        {"action": "create_site", "key": "new", "site_name": "Permission New Site"},
        {"action": "connect_domain", "key": "shop-domain", "site": shop["id"],
         "domain": "permission-shop.com", "connection": "pointing"},
        {"action": "set_dns_record", "key": "mx", "domain": "hosted-elsewhere.com",
         "record_type": "MX", "host": "hosted-elsewhere.com", "values": "10 mail.example.com"},
    ])
    db = tmp_path / "jobs.db"

    result = _run(job, db, sandbox, env)

    assert result.returncode == 2, _output(result)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: Wix refused to read the account's connected domains (HTTP "
                           "403 DOMAINS_PERMISSION_DENIED): "), line
    assert '"Manage Domains" permission' in line and "API Keys Manager" in line, line
    assert line.endswith("nothing was sent"), line
    counts = requests_by_endpoint(sandbox)
    assert _writes(counts) == 0, counts
    # One probe, asked once: no other domain read, no site listing after the refusal.
    assert counts["list_connected_domains"] == 1, counts
    assert counts["get_dns_zone"] == 0 and counts["query_sites"] == 0, counts
    report = report_json(db, env)
    assert {(r["status"], r["attempts"]) for r in report} == {("pending", 0)}, report

    # The same account without domain rows: not a single domain call, the file runs.
    plain = job_file(tmp_path / "plain.csv", [
        {"action": "create_site", "key": "plain", "site_name": "Permission Plain Site"}])
    done = _run(plain, tmp_path / "plain.db", sandbox, env)
    assert done.returncode == 0, _output(done)
    assert requests_by_endpoint(sandbox)["list_connected_domains"] == 1


# -- connect_domain ---------------------------------------------------------------------------


def test_connect_rows_need_a_premium_site_of_the_account_and_never_change_a_connection(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    """Every connect row that would fail is refused at once: a free site, a site the file
    creates (no plan yet), a site not in the account, a domain connected otherwise. A domain
    connected as the row asks is done before the row starts: recorded, never sent."""
    shop, other = premium_sites(sandbox, "Connect Shop", "Connect Other")
    [free] = premium_sites(sandbox, "Connect Free", premium=False)
    connect(sandbox.base_url, shop["id"], "already-done.com", "POINTING")
    connect(sandbox.base_url, other["id"], "elsewhere.com", "POINTING")
    connect(sandbox.base_url, shop["id"], "other-kind.com", "POINTING")
    connect(sandbox.base_url, shop["id"], "shop.sub-done.com", None)
    setup = requests_by_endpoint(sandbox)
    good = [
        {"action": "connect_domain", "key": "done", "site": shop["id"],
         "domain": "already-done.com", "connection": "pointing"},
        {"action": "connect_domain", "key": "sub-done", "site": shop["id"],
         "domain": "shop.sub-done.com"},
        {"action": "connect_domain", "key": "fresh", "site": shop["id"],
         "domain": "fresh-client.com", "connection": "nameservers"},
    ]
    bad = [
        {"action": "create_site", "key": "made", "site_name": "Connect Made Here"},
        {"action": "connect_domain", "key": "made-domain", "site": "@made",
         "domain": "made-here.com", "connection": "pointing"},
        {"action": "connect_domain", "key": "free-domain", "site": free["id"],
         "domain": "free-client.com", "connection": "pointing"},
        {"action": "connect_domain", "key": "nowhere", "site": NOWHERE,
         "domain": "nowhere-client.com", "connection": "pointing"},
        {"action": "connect_domain", "key": "moved", "site": shop["id"],
         "domain": "elsewhere.com", "connection": "pointing"},
        {"action": "connect_domain", "key": "kind", "site": shop["id"],
         "domain": "other-kind.com", "connection": "nameservers"},
    ]
    job = job_file(tmp_path / "connect.csv", [*good, *bad])
    db = tmp_path / "jobs.db"

    refused = _run(job, db, sandbox, env)

    assert refused.returncode == 2, _output(refused)
    assert "Traceback" not in refused.stderr
    problems = _problems(refused.stderr, job)
    assert sorted(problems) == [6, 7, 8, 9, 10], _output(refused)
    assert "column site: site '@made' is created by line 5 of this file, so it has no " \
           "Premium plan yet" in problems[6]
    assert "connect the domain in a later run, once the site has a plan" in problems[6]
    assert f"column site: site '{free['id']}' ('Connect Free') has no Premium plan" \
           in problems[7]
    assert "add a Premium plan to the site first" in problems[7]
    assert f"site '{NOWHERE}' is not in your account" in problems[8]
    assert f"elsewhere.com is connected already to site {other['id']}" in problems[9]
    assert "bulkops never changes an existing connection" in problems[9]
    assert "other-kind.com is connected already to site" in problems[10]
    assert "(pointing, redirect)" in problems[10] and "nameservers" in problems[10]
    after = requests_by_endpoint(sandbox)
    after.subtract(setup)
    assert _writes(after) == 0, after
    assert after["list_connected_domains"] == 2, after  # the probe, then one page of 100
    assert after["get_connected_domain"] == 0, after

    job_file(job, good)
    ran = _run(job, db, sandbox, env)

    assert ran.returncode == 0, _output(ran)
    report = {r["key"]: r for r in report_json(db, env)}
    for key in ("done", "sub-done"):
        assert report[key]["status"] == "succeeded" and report[key]["attempts"] == 0, report
        assert report[key]["note"] == "already connected as asked: nothing sent", report[key]
        assert report[key]["result"]["site_id"] == shop["id"]
        # Connected before the run, yet the report still says what the client must set.
        assert report[key]["result"]["registrar_records"], report[key]
    assert report["fresh"]["status"] == "succeeded" and report["fresh"]["attempts"] == 1
    sent = requests_by_endpoint(sandbox)
    sent.subtract(setup)
    assert sent["create_connected_domain"] == 1, sent  # fresh-client.com only
    connected = {d["domain"]: d for d in sandbox.state()["connected_domains"]}
    assert connected["elsewhere.com"]["siteId"] == other["id"]  # never moved
    assert status_json(db, env)["counts"]["succeeded"] == 3


def test_an_adopted_site_is_checked_for_premium_as_the_site_it_is(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    """A connect row naming a create that `--if-exists adopt` settles judges the existing
    site: its Premium plan lets the domain be connected in the same run."""
    [existing] = premium_sites(sandbox, "Adopted Bakery")
    job = job_file(tmp_path / "adopt.csv", [
        {"action": "create_site", "key": "bakery", "site_name": "Adopted Bakery"},
        {"action": "connect_domain", "key": "bakery-domain", "site": "@bakery",
         "domain": "adopted-bakery.com", "connection": "pointing"},
    ])
    db = tmp_path / "jobs.db"
    ran = _run(job, db, sandbox, env, "--if-exists", "adopt")
    assert ran.returncode == 0, _output(ran)
    [domain] = sandbox.state()["connected_domains"]
    assert (domain["domain"], domain["siteId"]) == ("adopted-bakery.com", existing["id"])


# -- set_dns_record ---------------------------------------------------------------------------


def test_dns_rows_need_a_zone_wix_hosts_read_once_per_domain(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    """A domain connected with pointing (or not at all) has no zone at Wix: each of its rows is
    refused. A domain the file connects with nameservers is not read (its zone comes with the
    connection); a hosted zone is read once however many rows set records in it."""
    [shop] = premium_sites(sandbox, "Dns Shop")
    connect(sandbox.base_url, shop["id"], "dns-pointing.com", "POINTING")
    connect(sandbox.base_url, shop["id"], "dns-hosted.com", "NAMESERVERS")
    setup = requests_by_endpoint(sandbox)
    good = [
        {"action": "set_dns_record", "key": "hosted-mx", "domain": "dns-hosted.com",
         "record_type": "MX", "host": "dns-hosted.com", "values": "10 mail.dns-hosted.com"},
        {"action": "set_dns_record", "key": "hosted-txt", "domain": "dns-hosted.com",
         "record_type": "TXT", "host": "dns-hosted.com", "values": "v=spf1 -all"},
        {"action": "connect_domain", "key": "new-ns", "site": shop["id"],
         "domain": "dns-new.com", "connection": "nameservers"},
        {"action": "set_dns_record", "key": "new-a", "domain": "dns-new.com",
         "record_type": "TXT", "host": "dns-new.com", "values": "hello"},
    ]
    bad = [
        {"action": "set_dns_record", "key": "pointing-mx", "domain": "dns-pointing.com",
         "record_type": "MX", "host": "dns-pointing.com", "values": "10 mail.example.com"},
        {"action": "set_dns_record", "key": "pointing-txt", "domain": "dns-pointing.com",
         "record_type": "TXT", "host": "dns-pointing.com", "values": "v=spf1 -all"},
        {"action": "set_dns_record", "key": "unknown-txt", "domain": "dns-unknown.com",
         "record_type": "TXT", "host": "dns-unknown.com", "values": "v=spf1 -all"},
    ]
    job = job_file(tmp_path / "dns.csv", [*good, *bad])
    db = tmp_path / "jobs.db"

    refused = _run(job, db, sandbox, env)

    assert refused.returncode == 2, _output(refused)
    problems = _problems(refused.stderr, job)
    assert sorted(problems) == [6, 7, 8], _output(refused)
    for line, domain in ((6, "dns-pointing.com"), (7, "dns-pointing.com"),
                         (8, "dns-unknown.com")):
        assert (f"column domain: Wix hosts no DNS zone for {domain}: it is connected with "
                "pointing, or not connected; connect it with connection=nameservers"
                ) in problems[line], problems[line]
    after = requests_by_endpoint(sandbox)
    after.subtract(setup)
    assert _writes(after) == 0, after
    # dns-hosted.com, dns-pointing.com, dns-unknown.com: once each; dns-new.com not at all.
    assert after["get_dns_zone"] == 3, after

    job_file(job, good)
    ran = _run(job, db, sandbox, env)
    assert ran.returncode == 0, _output(ran)
    zones = {zone["domain"]: zone for zone in sandbox.state()["dns_zones"]}
    assert set(zones) == {"dns-hosted.com", "dns-new.com"}


def test_the_domain_checks_wait_out_wix_errors_and_stop_the_run_when_they_last(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    """A domain read Wix answers 5xx is tried again as every check's read is (--max-attempts
    times); when it never answers, the run stops (exit 3) with nothing sent, and runs once Wix
    is back."""
    [shop] = premium_sites(sandbox, "Outage Shop")
    set_faults(sandbox.base_url, error_rate=1.0, fault_methods=["list_connected_domains"])
    job = job_file(tmp_path / "outage.csv", [
        {"action": "connect_domain", "key": "outage", "site": shop["id"],
         "domain": "outage-client.com", "connection": "pointing"},
    ])
    db = tmp_path / "jobs.db"

    stopped = _run(job, db, sandbox, env, "--max-attempts", "7")

    assert stopped.returncode == 3, _output(stopped)
    assert "Traceback" not in stopped.stderr
    counts = requests_by_endpoint(sandbox)
    assert _writes(counts) == 0, counts
    assert counts["list_connected_domains"] == 7, counts  # --max-attempts tries of the probe

    set_faults(sandbox.base_url, error_rate=0.0)
    ran = _run(job, db, sandbox, env)
    assert ran.returncode == 0, _output(ran)
    assert [d["domain"] for d in sandbox.state()["connected_domains"]] == ["outage-client.com"]

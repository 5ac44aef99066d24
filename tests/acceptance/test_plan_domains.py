"""`bulkops plan FILE` with domain rows: the run's own checks (the Domains permission, Premium
sites, connections and zones Wix holds), and the plan's own reads: whether each domain is still
for sale, the records its client will have to set, which DNS rows hold their values already.

The command runs as a subprocess against a `bulkops sandbox` process: the sandbox's request
counters prove that only reads reached it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from harness import (
    SandboxProcess,
    cli_env,
    fast_run_flags,
    report_json,
    requests_by_endpoint,
    run_cli,
    set_faults,
)
from test_plan import _output, _plan, _plan_json
from test_precheck_domains import WRITES, connect, job_file, premium_sites

RUN_TIMEOUT = 30.0
# The records of a zone the sandbox calculates (`bulkops.sandbox.domains_api.default_zone`).
WIX_A = ("185.230.63.107", "185.230.63.171", "185.230.63.186")
WIX_NS = ["ns0.wixdns.net", "ns1.wixdns.net"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(XDG_DATA_HOME=str(tmp_path / "xdg-data"))


def _writes(sandbox: SandboxProcess) -> int:
    counts = requests_by_endpoint(sandbox)
    return sum(counts[name] for name in WRITES)


def test_a_key_without_the_domains_permission_is_a_problem_of_the_plan(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    [shop] = premium_sites(sandbox, "Plan Permission Shop")
    set_faults(sandbox.base_url, domains_permission=False)
    job = job_file(tmp_path / "domains.csv", [
        {"action": "site_invite", "key": "boss", "site": shop["id"], "email": "a@example.com",
         "role": "Website Boss"},
        {"action": "connect_domain", "key": "shop-domain", "site": shop["id"],
         "domain": "plan-permission.com", "connection": "nameservers"},
        {"action": "set_dns_record", "key": "mx", "domain": "plan-permission.com",
         "record_type": "MX", "host": "plan-permission.com", "values": "10 mail.example.com"},
    ])
    db = tmp_path / "jobs.db"

    code, plan = _plan_json(job, db, sandbox, env)

    assert code == 2 and plan["clean"] is False, plan
    # The other rows are still checked; the refusal is one problem, at the first domain row.
    assert [(p["line"], p["column"]) for p in plan["problems"]] == [(2, "role"), (3, None)]
    refusal = plan["problems"][1]["reason"]
    assert refusal.startswith("Wix refused to read the account's connected domains (HTTP 403 "
                              "DOMAINS_PERMISSION_DENIED): "), refusal
    assert '"Manage Domains" permission' in refusal and "API Keys Manager" in refusal
    assert "the domain rows cannot be checked or run (2 row(s))" in refusal
    counts = requests_by_endpoint(sandbox)
    assert counts["list_connected_domains"] == 1, counts
    assert counts["check_domain_availability"] == counts["preview_dns_zone"] == 0, counts

    text = _plan(job, db, sandbox, env)
    assert text.returncode == 2, _output(text)
    assert f"{job}: line 3: Wix refused to read the account's connected domains" in text.stdout
    assert _writes(sandbox) == 0
    assert not db.exists()


def test_a_plan_says_what_is_for_sale_what_the_clients_will_set_and_what_is_done(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    [shop] = premium_sites(sandbox, "Plan Domains Shop")
    connect(sandbox.base_url, shop["id"], "plan-hosted.com", "NAMESERVERS")
    connect(sandbox.base_url, shop["id"], "plan-done.com", "POINTING")
    setup = requests_by_endpoint(sandbox)
    rows = [
        {"action": "connect_domain", "key": "pointing", "site": shop["id"],
         "domain": "plan-pointing.com", "connection": "pointing"},
        {"action": "connect_domain", "key": "ns", "site": shop["id"],
         "domain": "plan-ns.com", "connection": "nameservers"},
        {"action": "connect_domain", "key": "sub", "site": shop["id"],
         "domain": "blog.plan-sub.com"},
        {"action": "connect_domain", "key": "sale", "site": shop["id"],
         "domain": "for-sale.com", "connection": "pointing"},
        {"action": "connect_domain", "key": "gov", "site": shop["id"],
         "domain": "plan-client.gov", "connection": "pointing"},
        {"action": "connect_domain", "key": "done", "site": shop["id"],
         "domain": "plan-done.com", "connection": "pointing"},
        {"action": "set_dns_record", "key": "apex", "domain": "plan-hosted.com",
         "record_type": "A", "host": "@", "values": ";".join(reversed(WIX_A)), "ttl": "3600"},
        {"action": "set_dns_record", "key": "apex-ttl", "domain": "plan-hosted.com",
         "record_type": "CNAME", "host": "www.plan-hosted.com", "values": "pointing.wixdns.net.",
         "ttl": "600"},
        {"action": "set_dns_record", "key": "spf", "domain": "plan-hosted.com",
         "record_type": "TXT", "host": "plan-hosted.com", "values": "v=spf1 -all"},
    ]
    job = job_file(tmp_path / "plan.csv", rows)
    db = tmp_path / "jobs.db"

    code, plan = _plan_json(job, db, sandbox, env)

    assert code == 2, plan
    problems = {p["line"]: p for p in plan["problems"]}
    assert sorted(problems) == [5, 6], plan["problems"]
    assert problems[5]["column"] == "domain"
    assert problems[5]["reason"] == ("the domain for-sale.com is still for sale: nobody owns it "
                                     "yet, so it cannot be connected (the client must buy it "
                                     "first)")
    assert "DOMAINS_UNSUPPORTED_TLD" in problems[6]["reason"]
    assert plan["already_connected"] == [{"line": 7, "key": "done", "domain": "plan-done.com",
                                          "site_id": shop["id"]}]
    # The apex A holds the values asked (in another order); the www CNAME has another ttl.
    assert plan["already_as_asked"] == {"rows": 1, "lines": [8]}
    records = {found["domain"]: found for found in plan["client_records"]}
    # Only for the rows that would run, in line order.
    assert list(records) == ["plan-pointing.com", "plan-ns.com", "blog.plan-sub.com"]
    pointing = records["plan-pointing.com"]
    assert (pointing["line"], pointing["connection"]) == (2, "pointing")
    assert [(r["type"], r["host"]) for r in pointing["records"]] == [
        ("A", "plan-pointing.com"), ("CNAME", "www.plan-pointing.com")]
    assert pointing["records"][0]["values"] == list(WIX_A)
    assert [(r["type"], r["values"]) for r in records["plan-ns.com"]["records"]] == [
        ("NS", WIX_NS)]
    [sub] = records["blog.plan-sub.com"]["records"]
    assert (sub["type"], sub["host"], records["blog.plan-sub.com"]["connection"]) == (
        "CNAME", "blog.plan-sub.com", None)
    # The run's reads: the roles, one site listing page, the probe and one page of connected
    # domains, one zone, the Setup Info of the domain connected already. The plan's
    # availability and preview reads are its own.
    calls = plan["calls"]
    assert calls["reads"] == {"roles": 1, "site_listing": 1, "connected_domains": 2,
                              "dns_zones": 1, "setup_info": 1}, calls
    assert calls["total"] == sum(calls["by_action"].values()) + 6
    # The three rows to connect: a connect and its Setup Info each; the two records to set
    # share one zone read and one update.
    assert calls["by_action"]["connect_domain"] == 6
    assert calls["by_action"]["set_dns_record"] == 2
    counts = requests_by_endpoint(sandbox)
    counts.subtract(setup)
    assert counts["check_domain_availability"] == 5, counts  # one per registrable domain
    assert counts["preview_dns_zone"] == 3, counts  # not for the domains that cannot be
    assert counts["get_dns_zone"] == 1, counts
    assert _writes(sandbox) == sum(setup[name] for name in WRITES)

    text = _plan(job, db, sandbox, env)
    assert text.returncode == 2, _output(text)
    out = text.stdout
    assert "1 connect_domain row(s) find their domain connected as asked already: nothing " \
           "to send; lines 7" in out, out
    assert "1 set_dns_record row(s) find their record holding the values asked already: " \
           "nothing to send; lines 8" in out, out
    assert "records the client will have to set at their registrar" in out
    assert "  plan-pointing.com (pointing, line 2):" in out
    assert f"    A plan-pointing.com {', '.join(WIX_A)} (ttl 3600)" in out
    assert "    NS plan-ns.com ns0.wixdns.net, ns1.wixdns.net" in out
    assert "  blog.plan-sub.com (subdomain, line 4):" in out
    assert f"{job}: line 5, column domain: the domain for-sale.com is still for sale" in out


def test_the_run_makes_the_calls_the_plan_of_a_domain_file_counts(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    [shop] = premium_sites(sandbox, "Plan Run Shop")
    connect(sandbox.base_url, shop["id"], "run-hosted.com", "NAMESERVERS")
    connect(sandbox.base_url, shop["id"], "run-done.com", "POINTING")
    job = job_file(tmp_path / "run.csv", [
        {"action": "connect_domain", "key": "new", "site": shop["id"],
         "domain": "run-new.com", "connection": "pointing"},
        {"action": "connect_domain", "key": "done", "site": shop["id"],
         "domain": "run-done.com", "connection": "pointing"},
        {"action": "set_dns_record", "key": "spf", "domain": "run-hosted.com",
         "record_type": "TXT", "host": "run-hosted.com", "values": "v=spf1 -all"},
        {"action": "set_dns_record", "key": "mx", "domain": "run-hosted.com",
         "record_type": "MX", "host": "run-hosted.com", "values": "10 mail.run-hosted.com"},
    ])
    db = tmp_path / "jobs.db"
    code, plan = _plan_json(job, db, sandbox, env)
    assert code == 0 and plan["clean"] is True, plan
    before = requests_by_endpoint(sandbox)

    ran = run_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url)], env,
                  timeout=RUN_TIMEOUT)

    assert ran.returncode == 0, _output(ran)
    sent = requests_by_endpoint(sandbox)
    sent.subtract(before)
    assert +sent == +Counter({
        "roles": 1, "query_sites": 1, "list_connected_domains": 2, "get_dns_zone": 2,
        # Setup Info twice: the new connection's, and the one connected as asked already
        # (its report still lists what the client must set).
        "create_connected_domain": 1, "connected_domain_setup_info": 2,
        "update_dns_zone": 1}), sent
    assert sum(sent.values()) == plan["calls"]["total"], (sent, plan["calls"])
    report = {r["key"]: r for r in report_json(db, env)}
    assert report["done"]["attempts"] == 0 and report["done"]["status"] == "succeeded"


def test_a_plan_stops_with_exit_3_when_wix_never_answers_a_domain_read(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    [shop] = premium_sites(sandbox, "Plan Outage Shop")
    connect(sandbox.base_url, shop["id"], "outage-hosted.com", "NAMESERVERS")
    set_faults(sandbox.base_url, error_rate=1.0, fault_methods=["get_dns_zone"])
    job = job_file(tmp_path / "outage.csv", [
        {"action": "set_dns_record", "key": "spf", "domain": "outage-hosted.com",
         "record_type": "TXT", "host": "outage-hosted.com", "values": "v=spf1 -all"},
    ])
    result = _plan(job, tmp_path / "jobs.db", sandbox, env, "--max-attempts", "6",
                   "--backoff-base", "0.05")
    assert result.returncode == 3, _output(result)
    assert f"Wix at {sandbox.base_url} did not answer a read of the plan" in result.stderr
    assert "Traceback" not in result.stderr
    assert requests_by_endpoint(sandbox)["get_dns_zone"] == 6  # --max-attempts tries


def test_a_plan_whose_only_problem_is_a_domain_for_sale_says_the_run_would_send_it(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    """Availability is the plan's own read: a run sends the row, and Wix refuses it."""
    [shop] = premium_sites(sandbox, "Plan Sale Shop")
    job = job_file(tmp_path / "sale.csv", [
        {"action": "connect_domain", "key": "sale", "site": shop["id"],
         "domain": "for-sale.com", "connection": "pointing"}])
    text = _plan(job, tmp_path / "jobs.db", sandbox, env)
    assert text.returncode == 2, _output(text)
    assert "problems: 1 (a run would send these rows, and Wix would refuse them):" in text.stdout

    ran = run_cli(["run", str(job), *fast_run_flags(tmp_path / "jobs.db", sandbox.base_url)],
                  env, timeout=RUN_TIMEOUT)
    assert ran.returncode == 1, _output(ran)  # sent, and refused: FOR_SALE
    assert report_json(tmp_path / "jobs.db", env)[0]["error"]["code"] == "FOR_SALE"

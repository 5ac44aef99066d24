"""Domain rows through the engine: a real SQLite checkpoint and the sandbox over HTTP.

connect_domain is sent once a row and settled by Get Connected Domain when its answer is lost or
a conflict (409) comes back; set_dns_record rows of one domain share zone updates of up to 10,
each after one zone read, and an unknown write is settled by reading the zone, never resent.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import anyio
from test_engine import ACCOUNT, add, by_key, run_engine, sandbox_state

from bulkops.actions.domains import NOTHING_SENT, RECORD_CHANGED
from bulkops.engine import RunOutcome
from bulkops.model import Action, OpSpec, OpState
from bulkops.sandbox import Endpoint, SandboxConfig, running_sandbox
from bulkops.sandbox.server import RunningSandbox
from bulkops.store.base import Store

CREATE = Endpoint.CREATE_CONNECTED_DOMAIN.value
GET = Endpoint.GET_CONNECTED_DOMAIN.value
SETUP = Endpoint.CONNECTED_DOMAIN_SETUP_INFO.value
ZONE = Endpoint.GET_DNS_ZONE.value
UPDATE = Endpoint.UPDATE_DNS_ZONE.value


def premium_site(fake: RunningSandbox, name: str = "Live Client Site", *,
                 premium: bool = True) -> str:
    return fake.sandbox.add_site(name, ACCOUNT, premium=premium, seeded=True).id


def connect(line: int, key: str, site: str, domain: str, connection: str | None = "pointing",
            assignment: str = "redirect") -> OpSpec:
    return OpSpec(line=line, key=key, action=Action.CONNECT_DOMAIN, site=site, domain=domain,
                  connection=connection, assignment=assignment)


def record(line: int, domain: str, kind: str, host: str, *values: str, ttl: int | None = None,
           after: str | None = None) -> OpSpec:
    return OpSpec(line=line, key=f"dns-{line}", action=Action.SET_DNS_RECORD, domain=domain,
                  record_type=kind, host=host, values=values, ttl=ttl,
                  implied_depends_on=(after,) if after else ())


def calls(state: dict[str, Any]) -> Counter[str]:
    return Counter(state["requests"]["by_endpoint"])


def zone(state: dict[str, Any], domain: str) -> dict[tuple[str, str], dict[str, Any]]:
    (found,) = [z for z in state["dns_zones"] if z["domain"] == domain]
    return {(r["type"], r["hostName"]): r for r in found["records"]}


def connections(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["domain"]: d for d in state["connected_domains"]}


async def test_connects_root_and_subdomains_and_keeps_the_registrar_records(
    sqlite_store: Store,
) -> None:
    """Pointing, nameservers and a subdomain: each one create and one setup-info read, and each
    row keeps what the client must set at their registrar."""
    async with running_sandbox(SandboxConfig(), port=0) as fake:
        site = premium_site(fake)
        job = await add(sqlite_store, [
            connect(2, "a", site, "acme-bakery.com", "pointing", "primary"),
            connect(3, "b", site, "acme-bakery.net", "nameservers"),
            connect(4, "c", site, "shop.acme-bakery.com", None),
        ])
        result = await run_engine(sqlite_store, fake.base_url, job)
        state = await sandbox_state(fake.base_url)
    assert result.outcome is RunOutcome.FINISHED, result
    assert calls(state)[CREATE] == 3 and calls(state)[SETUP] == 3
    there = connections(state)
    assert there["acme-bakery.com"]["assignmentType"] == "PRIMARY"
    assert there["acme-bakery.net"]["connectionType"] == "NAMESERVERS"
    assert there["shop.acme-bakery.com"]["connectionType"] is None
    assert {d["siteId"] for d in there.values()} == {site}
    ops = await by_key(sqlite_store, job)
    kinds = {key: [r["type"] for r in ops[key].details["registrar_records"]] for key in "abc"}
    assert kinds == {"a": ["A", "CNAME"], "b": ["NS"], "c": ["CNAME"]}
    assert all(ops[key].state is OpState.SUCCEEDED and ops[key].attempts == 1 for key in "abc")
    assert ops["a"].site_id == site
    assert "set again there" in (ops["b"].note or "")  # nameservers: recreate MX/TXT in Wix


async def test_refusals_fail_the_row_with_a_hint_and_connect_nothing(sqlite_store: Store) -> None:
    async with running_sandbox(SandboxConfig(), port=0) as fake:
        free = premium_site(fake, "Free Site", premium=False)
        paid = premium_site(fake)
        for_sale = sorted(SandboxConfig().domains_for_sale)[0]
        job = await add(sqlite_store, [
            connect(2, "free", free, "client-one.com"),
            connect(3, "sale", paid, for_sale),
            connect(4, "gov", paid, "client.gov"),
        ])
        result = await run_engine(sqlite_store, fake.base_url, job)
        state = await sandbox_state(fake.base_url)
    assert result.outcome is RunOutcome.FINISHED
    assert state["connected_domains"] == []
    ops = await by_key(sqlite_store, job)
    expected = {"free": ("NON_PREMIUM_SITE", "Premium"), "sale": ("FOR_SALE", "buy it"),
                "gov": ("RESTRICTED_TLD", "top-level domain")}
    for key, (code, words) in expected.items():
        op = ops[key]
        assert op.state is OpState.FAILED and op.error.code == code, op
        assert words in op.error.hint and op.attempts == 1


async def test_a_repeat_is_done_and_another_connection_is_a_conflict_left_alone(
    sqlite_store: Store,
) -> None:
    """Connected as the row asks (an identical repeat, answered 409 here): done. Connected to
    another site: failed as a conflict, and the connection is not touched."""
    config = SandboxConfig(repeat_connect_conflicts=True)
    async with running_sandbox(config, port=0) as fake:
        site, other = premium_site(fake), premium_site(fake, "Other Site")
        first = await add(sqlite_store, [connect(2, "mine", site, "client-two.com"),
                                         connect(3, "theirs", other, "client-three.com")])
        await run_engine(sqlite_store, fake.base_url, first)
        before = connections(await sandbox_state(fake.base_url))
        again = await add(sqlite_store, [connect(2, "mine2", site, "client-two.com"),
                                         connect(3, "clash", site, "client-three.com")],
                          job_id="job2")
        result = await run_engine(sqlite_store, fake.base_url, again)
        state = await sandbox_state(fake.base_url)
    assert result.outcome is RunOutcome.FINISHED
    assert connections(state) == before
    ops = await by_key(sqlite_store, again)
    assert ops["mine2"].state is OpState.SUCCEEDED
    assert ops["mine2"].details["registrar_records"]
    clash = ops["clash"]
    assert clash.state is OpState.FAILED and clash.error.code == "DOMAIN_CONFLICT"
    assert other in clash.error.message and "never moves" in clash.error.hint


async def test_a_lost_answer_is_settled_by_reading_the_connection(sqlite_store: Store) -> None:
    """Every create's answer is lost after its effect: each row is found by Get Connected
    Domain and reconciled, and no domain is connected twice."""
    config = SandboxConfig(drop_after_rate=1.0,
                           fault_methods=frozenset({Endpoint.CREATE_CONNECTED_DOMAIN}))
    async with running_sandbox(config, port=0) as fake:
        site = premium_site(fake)
        job = await add(sqlite_store, [connect(2 + i, f"d{i}", site, f"client-{i}.com")
                                       for i in range(4)])
        result = await run_engine(sqlite_store, fake.base_url, job)
        state = await sandbox_state(fake.base_url)
    assert result.outcome is RunOutcome.FINISHED, result
    assert calls(state)[CREATE] == 4  # never sent twice
    assert len(state["connected_domains"]) == 4
    for op in (await by_key(sqlite_store, job)).values():
        assert op.state is OpState.SUCCEEDED and op.note.startswith("reconciled"), op
        assert op.details["registrar_records"]


async def test_dns_rows_share_zone_updates_of_ten_after_one_read(sqlite_store: Store) -> None:
    """12 records after a nameservers connection: two updates (10 + 2), one zone read before
    each; every record holds exactly its values; a record set already is not sent again."""
    domain = "client-dns.com"
    hosts = [f"h{i}.{domain}" for i in range(12)]
    async with running_sandbox(SandboxConfig(), port=0) as fake:
        site = premium_site(fake)
        rows = [connect(2, "conn", site, domain, "nameservers")]
        rows += [record(3 + i, domain, "A", host, f"10.0.0.{i}", "10.0.1.1", after="conn")
                 for i, host in enumerate(hosts)]
        job = await add(sqlite_store, rows)
        result = await run_engine(sqlite_store, fake.base_url, job)
        state = await sandbox_state(fake.base_url)
        # The same values again (a new file): read once, nothing written.
        again = await add(sqlite_store, [dataclasses.replace(r, key=f"again-{r.key}",
                                                             implied_depends_on=())
                                         for r in rows[1:4]], job_id="job2")
        await run_engine(sqlite_store, fake.base_url, again)
        after = await sandbox_state(fake.base_url)
    assert result.outcome is RunOutcome.FINISHED, result
    assert calls(state)[UPDATE] == 2 and calls(state)[ZONE] == 2
    records = zone(state, domain)
    for i, host in enumerate(hosts):
        assert set(records[("A", host)]["values"]) == {f"10.0.0.{i}", "10.0.1.1"}
    assert calls(after)[UPDATE] == 2 and calls(after)[ZONE] == 3
    for op in (await by_key(sqlite_store, "job2")).values():
        assert op.state is OpState.SUCCEEDED and op.attempts == 0 and op.note == NOTHING_SENT


async def test_a_changed_record_replaces_the_old_values_in_one_update(sqlite_store: Store) -> None:
    domain = "client-mx.com"
    async with running_sandbox(SandboxConfig(), port=0) as fake:
        site = premium_site(fake)
        first = await add(sqlite_store, [
            connect(2, "conn", site, domain, "nameservers"),
            record(3, domain, "MX", domain, "10 old.mail.net", ttl=600, after="conn")])
        await run_engine(sqlite_store, fake.base_url, first)
        second = await add(sqlite_store, [
            record(2, domain, "MX", domain, "10 mx1.mail.net", "20 mx2.mail.net")],
            job_id="job2")
        result = await run_engine(sqlite_store, fake.base_url, second)
        state = await sandbox_state(fake.base_url)
    assert result.outcome is RunOutcome.FINISHED
    mx = zone(state, domain)[("MX", domain)]
    assert set(mx["values"]) == {"10 mx1.mail.net", "20 mx2.mail.net"}
    assert mx["ttl"] == 600  # the row gave no ttl: the record keeps its own
    (op,) = (await by_key(sqlite_store, second)).values()
    assert op.state is OpState.SUCCEEDED and op.attempts == 1


async def test_an_unknown_zone_update_is_read_back_not_resent(sqlite_store: Store) -> None:
    domain = "client-lost.com"
    config = SandboxConfig(drop_after_rate=1.0, fault_methods=frozenset({Endpoint.UPDATE_DNS_ZONE}))
    async with running_sandbox(config, port=0) as fake:
        site = premium_site(fake)
        job = await add(sqlite_store, [
            connect(2, "conn", site, domain, "nameservers"),
            record(3, domain, "TXT", domain, "v=spf1 include:_spf.mail.net ~all", after="conn"),
            record(4, domain, "CNAME", f"www.{domain}", "shop.cdn-example.net", after="conn")])
        result = await run_engine(sqlite_store, fake.base_url, job)
        state = await sandbox_state(fake.base_url)
    assert result.outcome is RunOutcome.FINISHED, result
    assert calls(state)[UPDATE] == 1
    ops = await by_key(sqlite_store, job)
    for key in ("dns-3", "dns-4"):
        assert ops[key].state is OpState.SUCCEEDED and ops[key].note.startswith("reconciled")
    assert zone(state, domain)[("CNAME", f"www.{domain}")]["values"] == ["shop.cdn-example.net"]


async def test_a_record_someone_else_changed_meanwhile_is_a_conflict(sqlite_store: Store) -> None:
    """An unknown write whose record now holds neither the values asked for nor those it held
    before: failed as a conflict, and the record is left as it is."""
    domain = "client-race.com"
    async with running_sandbox(SandboxConfig(), port=0) as fake:
        site = premium_site(fake)
        setup = await add(sqlite_store, [
            connect(2, "conn", site, domain, "nameservers"),
            record(3, domain, "A", f"www.{domain}", "10.0.0.1", after="conn")])
        await run_engine(sqlite_store, fake.base_url, setup)
        job = await add(sqlite_store, [record(2, domain, "A", f"www.{domain}", "10.0.0.2")],
                        job_id="job2")
        (op,) = await sqlite_store.claim_ready(job, now=0.0, limit=1, owner="dead",
                                               lease_seconds=60)
        before = {"type": "A", "host": f"www.{domain}", "values": ["10.0.0.1"], "ttl": 3600}
        # As a process that died with the write in flight left it, the zone meanwhile changed
        # by hand to a third value.
        await sqlite_store.save([dataclasses.replace(
            op, state=OpState.RUNNING, attempts=1, first_sent_at=1.0, last_sent_at=1.0,
            details={"before": before})])
        fake.sandbox.state.zones[domain] = [
            r if r.key != ("A", f"www.{domain}") else dataclasses.replace(r, values=("10.0.0.9",))
            for r in fake.sandbox.state.zones[domain]]
        with anyio.fail_after(20):
            result = await run_engine(sqlite_store, fake.base_url, job)
        state = await sandbox_state(fake.base_url)
    assert result.outcome is RunOutcome.FINISHED
    (failed,) = (await by_key(sqlite_store, job)).values()
    assert failed.state is OpState.FAILED and failed.error.code == RECORD_CHANGED
    assert "10.0.0.9" in failed.error.message and "10.0.0.1" in failed.error.message
    assert zone(state, domain)[("A", f"www.{domain}")]["values"] == ["10.0.0.9"]


async def test_records_of_a_zone_wix_does_not_host_fail_unsent(sqlite_store: Store) -> None:
    domain = "client-pointing.com"
    async with running_sandbox(SandboxConfig(), port=0) as fake:
        site = premium_site(fake)
        first = await add(sqlite_store, [connect(2, "conn", site, domain, "pointing")])
        await run_engine(sqlite_store, fake.base_url, first)
        job = await add(sqlite_store, [record(2, domain, "A", f"www.{domain}", "10.0.0.1"),
                                       record(3, domain, "A", f"api.{domain}", "10.0.0.2")],
                        job_id="job2")
        result = await run_engine(sqlite_store, fake.base_url, job)
        state = await sandbox_state(fake.base_url)
    assert result.outcome is RunOutcome.FINISHED
    assert calls(state)[UPDATE] == 0 and calls(state)[ZONE] == 1
    for op in (await by_key(sqlite_store, job)).values():
        assert op.state is OpState.FAILED and op.error.code == "DNS_ZONE_NOT_FOUND"
        assert op.attempts == 0 and "nameservers" in op.error.hint


async def test_a_key_without_the_domains_permission_stops_the_job_untouched(
    sqlite_store: Store,
) -> None:
    async with running_sandbox(SandboxConfig(domains_permission=False), port=0) as fake:
        site = premium_site(fake)
        job = await add(sqlite_store, [connect(2 + i, f"d{i}", site, f"client-{i}.com")
                                       for i in range(5)])
        result = await run_engine(sqlite_store, fake.base_url, job)
    assert result.outcome is RunOutcome.STOPPED
    assert "Manage Domains" in (result.reason or "")
    ops = await by_key(sqlite_store, job)
    assert {op.state for op in ops.values()} == {OpState.PENDING}


async def test_a_site_id_typed_in_capitals_is_the_same_site(sqlite_store: Store) -> None:
    async with running_sandbox(SandboxConfig(), port=0) as fake:
        site = premium_site(fake)
        job = await add(sqlite_store, [connect(2, "caps", site.upper(), "client-caps.com")])
        result = await run_engine(sqlite_store, fake.base_url, job)
        state = await sandbox_state(fake.base_url)
    assert result.outcome is RunOutcome.FINISHED, result
    assert connections(state)["client-caps.com"]["siteId"] == site
    (op,) = (await by_key(sqlite_store, job)).values()
    assert op.state is OpState.SUCCEEDED and op.site_id == site

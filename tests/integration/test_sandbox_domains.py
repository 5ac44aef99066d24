"""The sandbox's domain endpoints over real HTTP: connect refusals, 409, zones, faults, state."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bulkops.sandbox import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_API_KEY,
    DEFAULT_SUB_ACCOUNTS,
    Endpoint,
    RunningSandbox,
    Sandbox,
    SandboxConfig,
    running_sandbox,
)

ACCOUNT = DEFAULT_ACCOUNT_ID
CONNECTED = "/domains/v1/connected-domains"
ZONES = "/domains/v1/dns-zones"
SETUP = "/domains/v1/connected-domain-setup-info"
AVAILABILITY = "/domain-search/v2/check-domain-availability"


@dataclass
class Wix:
    running: RunningSandbox
    session: aiohttp.ClientSession

    async def call(self, method: str, path: str, body: Any = None, *, site: str | None = None,
                   account: str = ACCOUNT) -> tuple[int, Any]:
        headers = {"Authorization": DEFAULT_API_KEY, "wix-account-id": account}
        if site is not None:
            headers["wix-site-id"] = site
        async with self.session.request(method, path, json=body, headers=headers) as response:
            return response.status, await response.json()

    async def seed_site(self, name: str = "Client", *, premium: bool = True,
                        owner: str = ACCOUNT) -> str:
        async with self.session.post("/_sandbox/sites", json={"sites": [
                {"displayName": name, "premium": premium, "ownerAccountId": owner}]}) as r:
            return str((await r.json())["sites"][0]["id"])

    async def connect(self, site: str | None, domain: str, kind: str | None = "NAMESERVERS",
                      assignment: str | None = "REDIRECT") -> tuple[int, Any]:
        connected: dict[str, Any] = {"domain": domain, "suppressNotifications": True}
        if kind is not None:
            connected["connectionType"] = kind
        if assignment is not None:
            connected["siteInfo"] = {"assignmentType": assignment}
        return await self.call("POST", CONNECTED, {"connectedDomain": connected}, site=site)

    async def patch(self, domain: str, additions: list[Any], deletions: list[Any] | None = None
                    ) -> tuple[int, Any]:
        return await self.call("PATCH", f"{ZONES}/{domain}",
                               {"additions": additions, "deletions": deletions or []})


@asynccontextmanager
async def open_wix(config: SandboxConfig | None = None) -> AsyncIterator[Wix]:
    async with running_sandbox(config) as running, aiohttp.ClientSession(
        running.base_url
    ) as session:
        yield Wix(running, session)


@pytest.fixture
async def wix() -> AsyncIterator[Wix]:
    async with open_wix() as client:
        yield client


def code_of(body: Any) -> str | None:
    app = body.get("details", {}).get("applicationError")
    return None if app is None else str(app["code"])


def txt(host: str, *values: str) -> dict[str, Any]:
    return {"type": "TXT", "hostName": host, "ttl": 300, "values": list(values)}


async def test_connect_returns_the_connected_domain_with_site_and_assignment(wix: Wix) -> None:
    site = await wix.seed_site()
    status, body = await wix.connect(site, "client.com", "POINTING", "PRIMARY")
    assert status == 200, body
    connected = body["connectedDomain"]
    assert connected["id"] == connected["domain"] == "client.com"
    assert connected["connectionType"] == "POINTING"
    assert connected["siteInfo"] == {"id": site, "assignmentType": "PRIMARY"}
    assert connected["suppressNotifications"] is True
    status, got = await wix.call("GET", f"{CONNECTED}/client.com")
    assert (status, got["connectedDomain"]) == (200, connected)


async def test_get_of_an_unconnected_domain_is_404_not_found(wix: Wix) -> None:
    status, body = await wix.call("GET", f"{CONNECTED}/nobody.com")
    assert (status, code_of(body)) == (404, "NOT_FOUND")


async def test_connect_refuses_a_site_without_premium(wix: Wix) -> None:
    site = await wix.seed_site(premium=False)
    status, body = await wix.connect(site, "client.com")
    assert (status, code_of(body)) == (403, "NON_PREMIUM_SITE")
    assert wix.running.sandbox.state.domains == {}


async def test_connect_refuses_a_domain_still_for_sale(wix: Wix) -> None:
    site = await wix.seed_site()
    status, body = await wix.connect(site, "for-sale.com")
    assert status == 400 and "available for purchase" in body["message"]


async def test_for_sale_domains_are_configurable(wix: Wix) -> None:
    async with wix.session.post("/_sandbox/config",
                                json={"domains_for_sale": ["mine-later.com"]}) as response:
        assert response.status == 200
    site = await wix.seed_site()
    status, _ = await wix.connect(site, "mine-later.com")
    assert status == 400
    status, _ = await wix.connect(site, "for-sale.com")  # no longer in the set
    assert status == 200


async def test_connect_refuses_a_restricted_tld(wix: Wix) -> None:
    site = await wix.seed_site()
    status, body = await wix.connect(site, "agency.gov")
    assert status == 400 and "restricted" in body["message"]


@pytest.mark.parametrize(("domain", "kind"), [
    ("shop.client.com", "POINTING"), ("client.com", None), ("client.com", "HIDDEN"),
])
async def test_connect_refuses_a_wrong_connection_type(wix: Wix, domain: str,
                                                       kind: str | None) -> None:
    site = await wix.seed_site()
    status, body = await wix.connect(site, domain, kind)
    assert status == 400 and "connection type" in body["message"].lower()


async def test_a_subdomain_connects_without_type_and_reads_unknown(wix: Wix) -> None:
    site = await wix.seed_site()
    status, body = await wix.connect(site, "shop.client.co.uk", None)
    assert status == 200, body
    assert body["connectedDomain"]["connectionType"] == "UNKNOWN_CONNECTION_TYPE"


async def test_connect_refuses_malformed_site_and_unknown_site(wix: Wix) -> None:
    status, body = await wix.connect("not-a-guid", "client.com")
    assert (status, code_of(body)) == (400, "DOMAINS_GUID_NOT_VALID")
    other = await wix.seed_site(owner=DEFAULT_SUB_ACCOUNTS[0])
    status, body = await wix.connect(other, "client.com")
    assert (status, code_of(body)) == (403, "DOMAINS_GUID_NOT_FOUND")


async def test_an_identical_repeat_returns_the_connection_and_a_different_one_is_409(
        wix: Wix) -> None:
    site, other = await wix.seed_site("A"), await wix.seed_site("B")
    first = await wix.connect(site, "client.com")
    assert await wix.connect(site, "client.com") == first
    for attempt in (wix.connect(other, "client.com"),
                    wix.connect(site, "client.com", "POINTING"),
                    wix.connect(site, "client.com", assignment="PRIMARY")):
        status, body = await attempt
        assert (status, code_of(body)) == (409, "DOMAINS_ALREADY_EXISTS")
    assert len(wix.running.sandbox.state.domains) == 1


async def test_an_identical_repeat_can_be_set_to_answer_409() -> None:
    async with open_wix(SandboxConfig(repeat_connect_conflicts=True)) as wix:
        site = await wix.seed_site()
        assert (await wix.connect(site, "client.com"))[0] == 200
        status, body = await wix.connect(site, "client.com")
        assert (status, code_of(body)) == (409, "DOMAINS_ALREADY_EXISTS")


async def test_primary_unassigns_the_previous_primary(wix: Wix) -> None:
    site = await wix.seed_site()
    await wix.connect(site, "old.com", assignment="PRIMARY")
    await wix.connect(site, "new.com", assignment="PRIMARY")
    _, old = await wix.call("GET", f"{CONNECTED}/old.com")
    assert "id" not in old["connectedDomain"]["siteInfo"]
    _, redirect = await wix.connect(site, "third.com")
    assert redirect["connectedDomain"]["siteInfo"]["redirectInfo"] == {"primaryDomain": "new.com"}


async def test_list_pages_newest_first_with_paging_metadata(wix: Wix) -> None:
    site = await wix.seed_site()
    for n in range(5):
        await wix.connect(site, f"d{n}.com")
    seen: list[str] = []
    path = f"{CONNECTED}?paging.limit=2"
    while True:
        status, body = await wix.call("GET", path)
        assert status == 200, body
        seen += [d["domain"] for d in body["connectedDomains"]]
        meta = body["pagingMetadata"]
        assert meta["count"] == len(body["connectedDomains"])
        if not meta["hasNext"]:
            break
        path = f"{CONNECTED}?paging.limit=2&paging.cursor={meta['cursors']['next']}"
    assert sorted(seen) == [f"d{n}.com" for n in range(5)] and len(seen) == 5
    created = [wix.running.sandbox.state.domains[d].created_date for d in seen]
    assert created == sorted(created, reverse=True)


async def test_list_refuses_a_limit_over_100_and_a_bad_cursor(wix: Wix) -> None:
    assert (await wix.call("GET", f"{CONNECTED}?paging.limit=101"))[0] == 400
    assert (await wix.call("GET", f"{CONNECTED}?paging.cursor=zzz"))[0] == 400


@pytest.mark.parametrize(("kind", "part"), [("NAMESERVERS", "nameserverRecord"),
                                            ("POINTING", "pointingRecords"),
                                            (None, "subdomainRecords")])
async def test_setup_info_gives_exactly_one_kind_of_records(wix: Wix, kind: str | None,
                                                            part: str) -> None:
    site = await wix.seed_site()
    domain = "client.com" if kind else "shop.client.com"
    await wix.connect(site, domain, kind)
    status, body = await wix.call("GET", f"{SETUP}/{domain}")
    assert status == 200
    info = body["connectedDomainSetupInfo"]
    assert info["connectedDomainId"] == domain
    parts = {"nameserverRecord", "pointingRecords", "subdomainRecords"} & set(info)
    assert parts == {part}


async def test_zones_are_hosted_only_for_nameserver_connections(wix: Wix) -> None:
    site = await wix.seed_site()
    await wix.connect(site, "ns.com", "NAMESERVERS")
    await wix.connect(site, "point.com", "POINTING")
    status, body = await wix.call("GET", f"{ZONES}/ns.com")
    assert status == 200
    assert {r["type"] for r in body["dnsZone"]["records"]} >= {"NS", "SOA"}
    for domain in ("point.com", "never.com"):
        status, body = await wix.call("GET", f"{ZONES}/{domain}")
        assert (status, code_of(body)) == (404, "DNS_ZONE_NOT_FOUND")


async def test_zone_update_changes_a_record_by_deleting_the_old_and_adding_the_new(
        wix: Wix) -> None:
    site = await wix.seed_site()
    await wix.connect(site, "client.com")
    _, zone = await wix.call("GET", f"{ZONES}/client.com")
    old_a = next(r for r in zone["dnsZone"]["records"] if r["type"] == "A")
    new_a = {"type": "A", "hostName": "client.com", "ttl": 600, "values": ["1.2.3.4"]}
    status, body = await wix.patch("client.com", [new_a, txt("client.com", "hello")], [old_a])
    assert status == 200, body
    records = {(r["type"], r["hostName"]): r for r in body["dnsZone"]["records"]}
    assert records[("A", "client.com")] == new_a
    assert records[("TXT", "client.com")]["values"] == ["hello"]


async def test_zone_update_allows_ten_and_refuses_eleven_of_each(wix: Wix) -> None:
    site = await wix.seed_site()
    await wix.connect(site, "client.com")
    ten = [txt(f"t{i}.client.com", "x") for i in range(10)]
    assert (await wix.patch("client.com", ten))[0] == 200
    eleven = [txt(f"u{i}.client.com", "x") for i in range(11)]
    assert (await wix.patch("client.com", eleven))[0] == 400
    assert (await wix.patch("client.com", [], [*ten, txt("u0.client.com", "x")]))[0] == 400
    assert (await wix.patch("client.com", [], ten))[0] == 200


@pytest.mark.parametrize(("addition", "status", "code"), [
    ({"type": "NS", "hostName": "client.com", "values": ["ns.x.net"]}, 428, "INVALID_NS_RECORD"),
    ({"type": "SOA", "hostName": "client.com", "values": ["x"]}, 428, "INVALID_NS_RECORD"),
    ({"type": "TXT", "hostName": "client.com", "values": []}, 428,
     "DOMAIN_DNS_EMPTY_RECORD_VALUE"),
    ({"type": "MX", "hostName": "client.com", "values": ["mx.x.net"]}, 428,
     "DOMAIN_MX_RECORD_VALUE_INVALID"),
    ({"type": "CNAME", "hostName": "client.com", "values": ["x.net"]}, 428,
     "DOMAIN_CNAME_RECORD_HOSTNAME_INVALID"),
    ({"type": "CNAME", "hostName": "www.other.com", "values": ["x.net"]}, 428,
     "DOMAIN_CNAME_RECORD_HOSTNAME_INVALID"),
    ({"type": "CNAME", "hostName": "www.client.com", "values": ["x.net"]}, 428,
     "DOMAIN_DUPLICATE_RECORDS"),
    ({"type": "A", "hostName": "@", "values": ["1.2.3.4"]}, 400, None),
    ({"type": "UNKNOWN", "hostName": "client.com", "values": ["x"]}, 400, None),
])
async def test_zone_update_refusals(wix: Wix, addition: dict[str, Any], status: int,
                                    code: str | None) -> None:
    site = await wix.seed_site()
    await wix.connect(site, "client.com")
    before = list(wix.running.sandbox.state.zones["client.com"])
    got_status, body = await wix.patch("client.com", [addition])
    assert (got_status, code_of(body)) == (status, code)
    assert wix.running.sandbox.state.zones["client.com"] == before


async def test_zone_update_refuses_empty_requests_duplicate_pairs_and_stale_deletions(
        wix: Wix) -> None:
    site = await wix.seed_site()
    await wix.connect(site, "client.com")
    status, body = await wix.patch("client.com", [])
    assert (status, code_of(body)) == (428, "DOMAIN_UPDATE_EMPTY_UPDATE_REQUEST")
    twice = [txt("a.client.com", "1"), txt("a.client.com", "2")]
    status, body = await wix.patch("client.com", twice)
    assert (status, code_of(body)) == (428, "DOMAIN_MX_RECORD_VALUE_INVALID")
    stale = {"type": "A", "hostName": "client.com", "values": ["9.9.9.9"]}
    status, body = await wix.patch("client.com", [], [stale])
    assert status == 428
    # All or nothing: a good addition next to a bad deletion is not applied.
    status, _ = await wix.patch("client.com", [txt("ok.client.com", "1")], [stale])
    assert status == 428
    assert ("TXT", "ok.client.com") not in {
        r.key for r in wix.running.sandbox.state.zones["client.com"]}


async def test_preview_works_before_connecting(wix: Wix) -> None:
    status, body = await wix.call("GET", f"{ZONES}/client.com/preview")
    assert status == 200
    assert {r["type"] for r in body["dnsZone"]["records"]} == {"A", "CNAME", "NS", "SOA"}
    assert wix.running.sandbox.state.zones == {}


async def test_availability_says_available_only_for_domains_for_sale(wix: Wix) -> None:
    status, body = await wix.call("GET", f"{AVAILABILITY}?domain=for-sale.com")
    assert (status, body["availability"]["available"]) == (200, True)
    status, body = await wix.call("GET", f"{AVAILABILITY}?domain=client.com")
    assert body["availability"] == {"domain": "client.com", "available": False,
                                    "premium": False, "premiumType": "UNKNOWN_PREMIUM_TYPE"}
    status, body = await wix.call("GET", f"{AVAILABILITY}?domain=nodot")
    assert (status, code_of(body)) == (400, "INVALID_DOMAIN")
    status, body = await wix.call("GET", f"{AVAILABILITY}?domain=agency.gov")
    assert (status, code_of(body)) == (400, "DOMAINS_UNSUPPORTED_TLD")


async def test_domain_calls_check_the_account_and_the_domains_permission() -> None:
    async with open_wix(SandboxConfig(domains_permission=False)) as wix:
        for path in (f"{CONNECTED}/client.com", CONNECTED, f"{ZONES}/client.com"):
            status, body = await wix.call("GET", path)
            assert (status, code_of(body)) == (403, "DOMAINS_PERMISSION_DENIED")
        status, body = await wix.call("GET", CONNECTED,
                                      account="99999999-9999-4999-8999-999999999999")
        assert (status, code_of(body)) == (403, "DOMAINS_PERMISSION_DENIED")
        status, body = await wix.call("GET", CONNECTED, account="nope")
        assert (status, code_of(body)) == (400, "DOMAINS_GUID_NOT_VALID")


async def test_another_accounts_domain_is_not_permitted() -> None:
    async with open_wix() as wix:
        site = await wix.seed_site(owner=DEFAULT_SUB_ACCOUNTS[0])
        # Connect as the sub-account, then read as the main account.
        status, body = await wix.call(
            "POST", CONNECTED, {"connectedDomain": {"domain": "theirs.com",
                                                    "connectionType": "NAMESERVERS"}},
            site=site, account=DEFAULT_SUB_ACCOUNTS[0])
        assert status == 200, body
        status, body = await wix.call("GET", f"{CONNECTED}/theirs.com")
        assert (status, code_of(body)) == (403, "DOMAINS_DOMAIN_NOT_PERMITTED")
        status, body = await wix.patch("theirs.com", [txt("a.theirs.com", "1")])
        assert (status, code_of(body)) == (428, "DOMAIN_NOT_PERMITTED")


@pytest.mark.parametrize("endpoint", [Endpoint.CREATE_CONNECTED_DOMAIN, Endpoint.UPDATE_DNS_ZONE])
async def test_drop_after_effect_applies_the_write_without_answering(endpoint: Endpoint) -> None:
    config = SandboxConfig(drop_after_rate=1.0, fault_methods=frozenset({endpoint}))
    async with open_wix(config) as wix:
        site = await wix.seed_site()
        if endpoint is Endpoint.UPDATE_DNS_ZONE:
            assert (await wix.connect(site, "client.com"))[0] == 200
        with pytest.raises(aiohttp.ClientError):
            if endpoint is Endpoint.CREATE_CONNECTED_DOMAIN:
                await wix.connect(site, "client.com")
            else:
                await wix.patch("client.com", [txt("a.client.com", "1")])
        state = wix.running.sandbox.state
        assert "client.com" in state.domains
        if endpoint is Endpoint.UPDATE_DNS_ZONE:
            assert ("TXT", "a.client.com") in {r.key for r in state.zones["client.com"]}


async def test_drop_before_5xx_and_429_leave_the_world_unchanged() -> None:
    for faults in ({"drop_before_rate": 1.0}, {"error_rate": 1.0}, {"throttle_rate": 1.0}):
        config = SandboxConfig(fault_methods=frozenset({Endpoint.CREATE_CONNECTED_DOMAIN}),
                               **faults)  # type: ignore[arg-type]
        async with open_wix(config) as wix:
            site = await wix.seed_site()
            try:
                status, _ = await wix.connect(site, "client.com")
                assert status in (429, 500, 502, 503, 504)
            except aiohttp.ClientError:
                assert "drop_before_rate" in faults
            assert wix.running.sandbox.state.domains == {}


async def test_rate_limit_applies_to_domain_routes() -> None:
    async with open_wix(SandboxConfig(rate_limit=(2, 60.0))) as wix:
        statuses = [(await wix.call("GET", f"{ZONES}/x.com/preview"))[0] for _ in range(3)]
        assert statuses == [200, 200, 429]


async def test_domains_show_in_state_and_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    async with open_wix(SandboxConfig(state_file=path)) as wix:
        site = await wix.seed_site()
        await wix.connect(site, "client.com")
        await wix.patch("client.com", [txt("a.client.com", "1")])
        async with wix.session.get("/_sandbox/state") as response:
            state = await response.json()
        assert [d["domain"] for d in state["connected_domains"]] == ["client.com"]
        assert state["dns_zones"][0]["domain"] == "client.com"
        assert "sites" in state and "invites" in state  # the old keys stay
    restarted = Sandbox(SandboxConfig(state_file=path)).snapshot()
    assert restarted["connected_domains"] == state["connected_domains"]
    assert restarted["dns_zones"] == state["dns_zones"]


def test_a_state_file_without_domain_keys_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"format": "bulkops-sandbox-state", "version": 1,
                                "savedAt": "2024-05-01T12:00:00.000Z", "sites": [],
                                "transfers": [], "invites": [], "emailsSent": []}))
    snapshot = Sandbox(SandboxConfig(state_file=path)).snapshot()
    assert snapshot["connected_domains"] == [] and snapshot["dns_zones"] == []

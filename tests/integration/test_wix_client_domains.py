"""The client's domain calls against the sandbox over loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from budgets import CountingBudget

from bulkops.errors import WixApiError, WixConnectionError
from bulkops.sandbox import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_API_KEY,
    Endpoint,
    RunningSandbox,
    SandboxConfig,
    running_sandbox,
)
from bulkops.wix import AssignmentType, ConnectionType, DnsRecord, WixClient


class World:
    def __init__(self, sandbox: RunningSandbox, budget: CountingBudget, wix: WixClient) -> None:
        self.sandbox, self.budget, self.wix = sandbox, budget, wix

    async def premium_site(self, premium: bool = True) -> str:
        async with aiohttp.ClientSession() as session, session.post(
            f"{self.sandbox.base_url}/_sandbox/sites",
            json={"sites": [{"displayName": "Client", "premium": premium}]},
        ) as response:
            body: Any = await response.json()
            return str(body["sites"][0]["id"])


async def open_world(config: SandboxConfig) -> AsyncIterator[World]:
    budget = CountingBudget()
    async with running_sandbox(config, port=0) as sandbox, WixClient(
        base_url=sandbox.base_url, api_key=DEFAULT_API_KEY, account_id=DEFAULT_ACCOUNT_ID,
        budget=budget, timeout=5.0,
    ) as wix:
        yield World(sandbox, budget, wix)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async for item in open_world(SandboxConfig()):
        yield item


async def test_connect_then_get_and_setup_info(world: World) -> None:
    site = await world.premium_site()
    connected = await world.wix.create_connected_domain(
        site_id=site, domain="Client.com.", connection_type=ConnectionType.POINTING)
    assert (connected.domain, connected.site_id, connected.connection_type,
            connected.assignment_type, connected.suppress_notifications) == (
        "client.com", site, "POINTING", "REDIRECT", True)
    assert await world.wix.get_connected_domain("client.com") == connected
    info = await world.wix.get_connected_domain_setup_info("client.com")
    assert info.kind == "POINTING"
    assert {r.type for r in info.records} == {"A", "CNAME"}
    assert world.budget.acquired == 3


async def test_get_of_an_unconnected_domain_is_none(world: World) -> None:
    assert await world.wix.get_connected_domain("nobody.com") is None


async def test_a_subdomain_reads_back_with_unknown_type(world: World) -> None:
    site = await world.premium_site()
    connected = await world.wix.create_connected_domain(
        site_id=site, domain="shop.client.com", connection_type=None,
        assignment_type=AssignmentType.PRIMARY, notify=True)
    assert connected.connection_type == ConnectionType.UNKNOWN
    assert connected.suppress_notifications is False


async def test_refusals_arrive_as_typed_errors(world: World) -> None:
    free, site = await world.premium_site(premium=False), await world.premium_site()
    with pytest.raises(WixApiError) as caught:
        await world.wix.create_connected_domain(site_id=free, domain="client.com",
                                                connection_type=ConnectionType.NAMESERVERS)
    assert (caught.value.status, caught.value.code) == (403, "NON_PREMIUM_SITE")
    assert caught.value.request_id
    await world.wix.create_connected_domain(site_id=site, domain="client.com",
                                            connection_type=ConnectionType.NAMESERVERS)
    with pytest.raises(WixApiError) as caught:
        await world.wix.create_connected_domain(site_id=site, domain="client.com",
                                                connection_type=ConnectionType.POINTING)
    assert (caught.value.status, caught.value.code) == (409, "DOMAINS_ALREADY_EXISTS")


async def test_non_ascii_is_refused_before_any_request(world: World) -> None:
    with pytest.raises(ValueError):
        await world.wix.get_connected_domain("bücher.de")
    assert world.budget.acquired == 0


async def test_list_pages_through_every_connected_domain(world: World) -> None:
    site = await world.premium_site()
    for n in range(5):
        await world.wix.create_connected_domain(site_id=site, domain=f"d{n}.com",
                                                connection_type=ConnectionType.POINTING)
    before = world.budget.acquired
    listed = [d.domain async for d in world.wix.iter_connected_domains(page_size=2)]
    assert sorted(listed) == [f"d{n}.com" for n in range(5)]
    assert world.budget.acquired - before == 3  # 2 + 2 + 1


async def test_zone_read_update_and_preview(world: World) -> None:
    site = await world.premium_site()
    await world.wix.create_connected_domain(site_id=site, domain="client.com",
                                            connection_type=ConnectionType.NAMESERVERS)
    zone = await world.wix.get_dns_zone("client.com")
    old = zone.record("A", "client.com")
    assert old is not None
    new = DnsRecord("A", "client.com", ("1.2.3.4",), 600)
    mx = DnsRecord("MX", "client.com", ("5 mx.example.net",), 3600)
    after = await world.wix.update_dns_zone("client.com", additions=[new, mx], deletions=[old])
    assert after.record("A", "client.com") == new
    assert after.record("MX", "client.com") == mx
    preview = await world.wix.preview_dns_zone("other.com")
    assert {r.type for r in preview.records} == {"A", "CNAME", "NS", "SOA"}


async def test_zone_of_a_pointing_domain_is_dns_zone_not_found(world: World) -> None:
    site = await world.premium_site()
    await world.wix.create_connected_domain(site_id=site, domain="client.com",
                                            connection_type=ConnectionType.POINTING)
    with pytest.raises(WixApiError) as caught:
        await world.wix.get_dns_zone("client.com")
    assert (caught.value.status, caught.value.code) == (404, "DNS_ZONE_NOT_FOUND")


async def test_zone_update_limits_are_enforced_before_sending(world: World) -> None:
    eleven = [DnsRecord("TXT", f"t{i}.client.com", ("x",)) for i in range(11)]
    with pytest.raises(ValueError):
        await world.wix.update_dns_zone("client.com", additions=eleven)
    with pytest.raises(ValueError):
        await world.wix.update_dns_zone(
            "client.com", additions=[DnsRecord("NS", "client.com", ("ns.x.net",))])
    assert world.budget.acquired == 0


async def test_availability(world: World) -> None:
    assert (await world.wix.check_domain_availability("for-sale.com")).available is True
    assert (await world.wix.check_domain_availability("client.com")).available is False
    with pytest.raises(WixApiError) as caught:
        await world.wix.check_domain_availability("agency.gov")
    assert caught.value.code == "DOMAINS_UNSUPPORTED_TLD"


async def test_without_the_domains_permission_the_probe_fails_with_403() -> None:
    async for world in open_world(SandboxConfig(domains_permission=False)):
        with pytest.raises(WixApiError) as caught:
            async for _ in world.wix.iter_connected_domains(page_size=1):
                pass
        assert (caught.value.status, caught.value.code) == (403, "DOMAINS_PERMISSION_DENIED")


async def test_a_dropped_connect_is_unknown_and_reconciled_by_get() -> None:
    config = SandboxConfig(drop_after_rate=1.0,
                           fault_methods=frozenset({Endpoint.CREATE_CONNECTED_DOMAIN}))
    async for world in open_world(config):
        site = await world.premium_site()
        with pytest.raises(WixConnectionError) as caught:
            await world.wix.create_connected_domain(site_id=site, domain="client.com",
                                                    connection_type=ConnectionType.POINTING)
        assert caught.value.sent
        found = await world.wix.get_connected_domain("client.com")
        assert found is not None and found.site_id == site


async def test_a_429_on_a_domain_route_reaches_the_budget() -> None:
    config = SandboxConfig(throttle_rate=1.0, fault_methods=frozenset({Endpoint.GET_DNS_ZONE}))
    async for world in open_world(config):
        with pytest.raises(WixApiError) as caught:
            await world.wix.get_dns_zone("client.com")
        assert caught.value.status == 429
        assert world.budget.answers == [(429, None)]

"""The sandbox's site endpoints over real HTTP: create, query (filters, sort, paging), transfer."""

from __future__ import annotations

import asyncio
import base64
import functools
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import pytest

from bulkops.sandbox import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_API_KEY,
    DEFAULT_SUB_ACCOUNTS,
    RunningSandbox,
    SandboxConfig,
    running_sandbox,
)

ACCOUNT = DEFAULT_ACCOUNT_ID
SUB = DEFAULT_SUB_ACCOUNTS[0]
CREATE = "/funnel/projects/v1/create"
QUERY = "/site-list/v2/sites/query"
TRANSFER = "/b2b-site-management/v1/transfer-site"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TEMPLATE = "3bd0b4a0-8f1c-4e0c-9d7a-0a1b2c3d4e5f"


@dataclass
class Wix:
    running: RunningSandbox
    session: aiohttp.ClientSession

    async def post(self, path: str, body: Any, account: str | None = ACCOUNT) -> tuple[int, Any]:
        headers = {"Authorization": DEFAULT_API_KEY}
        if account is not None:
            headers["wix-account-id"] = account
        async with self.session.post(path, json=body, headers=headers) as response:
            return response.status, await response.json()

    async def create(self, name: str, account: str = ACCOUNT, **extra: Any) -> str:
        status, body = await self.post(CREATE, {"type": "WIX", "name": name, **extra}, account)
        assert status == 200, body
        return str(body["project"]["metaSiteId"])

    async def query(self, query: Any, account: str = ACCOUNT) -> tuple[int, Any]:
        return await self.post(QUERY, {"query": query}, account)

    async def transfer(self, site_id: str, source: str, target: str) -> tuple[int, Any]:
        body = {"siteTransfer": {"siteId": site_id, "sourceAccountId": source,
                                 "enableNotifications": False}}
        return await self.post(TRANSFER, body, target)


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


def code_of(body: Any) -> str:
    return str(body["details"]["applicationError"]["code"])


async def test_create_site_returns_distinct_meta_site_id_and_component_id(wix: Wix) -> None:
    status, body = await wix.post(CREATE, {"type": "WIX", "name": "Acme", "templateId": TEMPLATE})
    assert status == 200
    project = body["project"]
    assert uuid.UUID(project["metaSiteId"]).version == 4
    assert project["siteId"] != project["metaSiteId"]
    assert project["templateId"] == TEMPLATE


async def test_created_site_is_listed_with_wix_site_fields(wix: Wix) -> None:
    site_id = await wix.create("Acme Café & Co", folderId="folder-7")
    status, body = await wix.query({"filter": {"id": site_id}})
    assert status == 200
    [site] = body["sites"]
    assert site["displayName"] == "Acme Café & Co"
    assert site["name"] == "acme-cafe-co"
    assert ISO_MS.match(site["createdDate"])
    assert site["ownerAccountId"] == ACCOUNT
    assert (site["premium"], site["published"], site["namespace"]) == (False, False, "WIX")
    assert site["folderId"] == "folder-7"
    assert body["metadata"] == {"count": 1, "cursors": {"next": None}, "hasNext": False}


async def test_same_display_name_gets_a_unique_url_name(wix: Wix) -> None:
    await wix.create("Shop")
    await wix.create("Shop")
    _, body = await wix.query({})
    assert sorted(site["name"] for site in body["sites"]) == ["shop", "shop-1"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "WIX", "name": "A", "templateId": "not-a-guid"}, "templateId"),
        ({"type": "WIX"}, "name"),
        ({"name": "A"}, "type"),
    ],
)
async def test_create_rejects_malformed_body_with_validation_error(
    wix: Wix, body: dict[str, Any], field: str
) -> None:
    status, answer = await wix.post(CREATE, body)
    assert status == 400
    [violation] = answer["details"]["validationError"]["fieldViolations"]
    assert violation["field"] == field
    assert wix.running.sandbox.state.sites == {}


async def test_query_lists_only_the_header_accounts_sites(wix: Wix) -> None:
    mine = await wix.create("Mine")
    theirs = await wix.create("Theirs", account=SUB)
    _, body = await wix.query({})
    assert [s["id"] for s in body["sites"]] == [mine]
    _, body = await wix.query({}, account=SUB)
    assert [s["id"] for s in body["sites"]] == [theirs]


async def test_paging_over_many_sites_is_complete_and_stable_under_concurrent_creates(
    wix: Wix,
) -> None:
    """Keyset cursors: sites created mid-listing neither shift nor repeat later pages."""
    created = {await wix.create(f"Site {n:03d}") for n in range(130)}
    status, first = await wix.query({"sort": [{"fieldName": "createdDate", "order": "DESC"}],
                                     "cursorPaging": {"limit": 100}})
    assert status == 200 and first["metadata"]["count"] == 100 and first["metadata"]["hasNext"]
    for n in range(5):
        await wix.create(f"Late {n}")
    cursor = first["metadata"]["cursors"]["next"]
    _, second = await wix.query({"cursorPaging": {"limit": 100, "cursor": cursor}})
    seen = [s["id"] for s in first["sites"] + second["sites"]]
    assert len(seen) == len(set(seen)) == 130
    assert set(seen) == created
    assert second["metadata"]["hasNext"] is False and second["metadata"]["cursors"]["next"] is None
    dates = [s["createdDate"] for s in first["sites"] + second["sites"]]
    assert dates == sorted(dates, reverse=True)


async def test_paging_keeps_the_first_pages_filter(wix: Wix) -> None:
    folder_sites = {await wix.create(f"F{n}", folderId="f1") for n in range(7)}
    for n in range(3):
        await wix.create(f"Other {n}")
    _, page = await wix.query({"filter": {"folderId": "f1"}, "cursorPaging": {"limit": 3}})
    ids = [s["id"] for s in page["sites"]]
    for _ in range(5):
        cursor = page["metadata"]["cursors"]["next"]
        if cursor is None:
            break
        _, page = await wix.query({"cursorPaging": {"limit": 3, "cursor": cursor}})
        ids += [s["id"] for s in page["sites"]]
    assert sorted(ids) == sorted(folder_sites)


async def test_sort_by_display_name_ascending(wix: Wix) -> None:
    for name in ("b", "c", "a"):
        await wix.create(name)
    _, body = await wix.query({"sort": [{"fieldName": "displayName", "order": "ASC"}]})
    assert [s["displayName"] for s in body["sites"]] == ["a", "b", "c"]


async def test_filter_operators_select_the_expected_sites(wix: Wix) -> None:
    sandbox = wix.running.sandbox
    premium = sandbox.add_site("Premium", ACCOUNT, premium=True, seeded=True).name
    for name in ("alpha", "alpine", "beta"):
        await wix.create(name, folderId="f" if name != "beta" else None)
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"name": {"$startsWith": "alp"}}, {"alpha", "alpine"}),
        ({"name": {"$in": ["beta", premium]}}, {"beta", premium}),
        ({"name": {"$ne": "beta"}, "premium": False}, {"alpha", "alpine"}),
        ({"folderId": {"$exists": False}}, {"beta", premium}),
        ({"name": {"$gt": "alpha", "$lte": "beta"}}, {"alpine", "beta"}),
        ({"name": {"$gte": "beta", "$lt": "c"}}, {"beta"}),
        ({"$or": [{"premium": True}, {"name": "alpha"}]}, {premium, "alpha"}),
        ({"$and": [{"folderId": "f"}, {"$not": {"name": "alpha"}}]}, {"alpine"}),
        ({"published": True}, set()),
    ]
    for spec, expected in cases:
        status, body = await wix.query({"filter": spec})
        assert status == 200, (spec, body)
        assert {s["name"] for s in body["sites"]} == expected, spec


async def test_default_listing_shows_only_the_wix_namespace(wix: Wix) -> None:
    sandbox = wix.running.sandbox
    sandbox.add_site("Studio site", ACCOUNT, namespace="STUDIO", seeded=True)
    wix_site = sandbox.add_site("Plain", ACCOUNT, seeded=True)
    _, body = await wix.query({})
    assert [s["id"] for s in body["sites"]] == [wix_site.id]
    _, body = await wix.query({"filter": {"namespace": {"$in": ["WIX", "STUDIO"]}}})
    assert len(body["sites"]) == 2


@pytest.mark.parametrize(
    "query",
    [
        {"cursorPaging": {"limit": 101}},
        {"cursorPaging": {"limit": 0}},
        {"filter": {"displayName": "x"}},  # sortable but not filterable
        {"filter": {"name": {"$regex": "x"}}},
        {"filter": {"premium": {"$gt": True}}},
        {"filter": {"published": "yes"}},
        {"sort": [{"fieldName": "premium"}]},
        {"cursorPaging": {"limit": 10, "cursor": "garbage"}},
        {"filter": {"id": "x"}, "cursorPaging": {"limit": 10, "cursor": "eyJ9"}},
    ],
)
async def test_query_rejects_invalid_queries_with_400(wix: Wix, query: dict[str, Any]) -> None:
    status, body = await wix.query(query)
    assert status == 400
    assert body["details"]["validationError"]["fieldViolations"]


async def test_new_site_appears_in_listing_only_after_the_lag() -> None:
    async with open_wix(SandboxConfig(listing_lag=0.4)) as wix:
        site_id = await wix.create("Lagging")
        _, body = await wix.query({"filter": {"id": site_id}})
        assert body["sites"] == []
        await asyncio.sleep(0.45)
        _, body = await wix.query({"filter": {"id": site_id}})
        assert [s["id"] for s in body["sites"]] == [site_id]


async def test_transfer_moves_the_site_to_the_target_account(wix: Wix) -> None:
    site_id = await wix.create("Client site")
    status, body = await wix.transfer(site_id, ACCOUNT, SUB)
    assert status == 200
    assert body["siteTransfer"]["siteId"] == site_id
    _, listed = await wix.query({"filter": {"id": site_id}}, account=SUB)
    assert listed["sites"][0]["ownerAccountId"] == SUB
    _, old = await wix.query({"filter": {"id": site_id}})
    assert old["sites"] == []
    [record] = wix.running.sandbox.snapshot()["transfers"]
    assert (record["siteId"], record["from"], record["to"]) == (site_id, ACCOUNT, SUB)


async def test_retried_transfer_that_already_succeeded_answers_site_not_found(wix: Wix) -> None:
    site_id = await wix.create("Moved")
    assert (await wix.transfer(site_id, ACCOUNT, SUB))[0] == 200
    status, body = await wix.transfer(site_id, ACCOUNT, SUB)
    assert (status, code_of(body)) == (400, "SITE_NOT_FOUND")


async def test_transfer_errors_carry_wix_codes() -> None:
    forbidden = DEFAULT_SUB_ACCOUNTS[4]
    async with open_wix(SandboxConfig(forbidden_transfer_targets=frozenset({forbidden}))) as wix:
        site_id = await wix.create("Plain")
        paid = wix.running.sandbox.add_site("Paid", ACCOUNT, premium=True, seeded=True).id
        cases = [
            ((site_id, ACCOUNT, str(uuid.uuid4())), 428, "TARGET_ACCOUNT_ID_NOT_FOUND"),
            ((site_id, ACCOUNT, forbidden), 403, "SITE_TRANSFER_NOT_ALLOWED"),
            ((str(uuid.uuid4()), ACCOUNT, SUB), 400, "SITE_NOT_FOUND"),
            ((site_id, SUB, ACCOUNT), 400, "SITE_NOT_FOUND"),
            ((paid, ACCOUNT, SUB), 428, "SITE_TRANSFER_NOT_SUPPORTED"),
        ]
        for args, status, code in cases:
            answer_status, body = await wix.transfer(*args)
            assert (answer_status, code_of(body)) == (status, code), args
        assert wix.running.sandbox.snapshot()["transfers"] == []


async def test_transfer_to_an_account_the_key_cannot_act_for_is_not_allowed(wix: Wix) -> None:
    stranger = "33333333-3333-4333-8333-333333333333"
    wix.running.sandbox.add_site("Stranger's", stranger, seeded=True)
    site_id = await wix.create("Mine")
    status, body = await wix.transfer(site_id, ACCOUNT, stranger)
    assert (status, code_of(body)) == (403, "SITE_TRANSFER_NOT_ALLOWED")


async def test_transferred_site_shows_under_new_owner_only_after_the_lag() -> None:
    async with open_wix(SandboxConfig(listing_lag=0.2)) as wix:
        site_id = await wix.create("Lag move")
        await asyncio.sleep(0.25)
        wix.running.sandbox.reconfigure(replace(wix.running.sandbox.config, listing_lag=0.4))
        assert (await wix.transfer(site_id, ACCOUNT, SUB))[0] == 200
        _, new_owner = await wix.query({"filter": {"id": site_id}}, account=SUB)
        _, old_owner = await wix.query({"filter": {"id": site_id}})
        assert new_owner["sites"] == []
        assert old_owner["sites"][0]["ownerAccountId"] == ACCOUNT  # stale, as Wix may be
        await asyncio.sleep(0.45)
        _, new_owner = await wix.query({"filter": {"id": site_id}}, account=SUB)
        _, old_owner = await wix.query({"filter": {"id": site_id}})
        assert new_owner["sites"][0]["ownerAccountId"] == SUB
        assert old_owner["sites"] == []


@pytest.mark.parametrize("body", [
    {"query": {"filter": functools.reduce(lambda inner, _: {"$not": inner}, range(900),
                                          {"name": "x"})}},
    {"query": {"cursorPaging": {"limit": 5, "cursor": base64.urlsafe_b64encode(
        b"[" * 100_000).decode()}}},
], ids=["filter-900-deep", "cursor-100000-deep"])
async def test_a_query_nested_too_deeply_is_a_400(wix: Wix, body: Any) -> None:
    status, answer = await wix.post(QUERY, body)
    assert status == 400, answer


@pytest.mark.parametrize("body", [
    b"[" * 100_000,
    b'{"type": "WIX", "name": "A", "folderId": ' + b"9" * 5_000 + b"}",  # int's digit limit
], ids=["nested-too-deeply", "a-5000-digit-number"])
async def test_a_body_python_cannot_parse_is_a_400(wix: Wix, body: bytes) -> None:
    headers = {"Authorization": DEFAULT_API_KEY, "wix-account-id": ACCOUNT,
               "Content-Type": "application/json"}
    async with wix.session.post(CREATE, data=body, headers=headers) as response:
        assert response.status == 400

"""The client against the sandbox over loopback HTTP: every call, every typed failure."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from budgets import CountingBudget

from bulkops.errors import ConfigError, WixApiError, WixConnectionError, WixError, WixTimeout
from bulkops.roles import RoleBook
from bulkops.sandbox import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_API_KEY,
    DEFAULT_SUB_ACCOUNTS,
    Endpoint,
    RunningSandbox,
    SandboxConfig,
    running_sandbox,
)
from bulkops.wix import AccountInvitee, InviteResult, WixClient

TARGET = DEFAULT_SUB_ACCOUNTS[0]
FORBIDDEN_TARGET = "33333333-3333-4333-8333-333333333333"


def assert_key_absent(error: BaseException, key: str = DEFAULT_API_KEY) -> None:
    """Neither the error nor anything in its cause/context chain shows the key."""
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return
        assert key not in str(seen) and key not in repr(seen), repr(seen)
        seen = seen.__cause__ or seen.__context__


@dataclasses.dataclass
class World:
    sandbox: RunningSandbox
    budget: CountingBudget
    wix: WixClient

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        """The sandbox's own /_sandbox/ endpoints (set-up and inspection, not the Wix API)."""
        async with aiohttp.ClientSession() as session, session.request(
            method, f"{self.sandbox.base_url}/_sandbox/{path}", json=body
        ) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def seed(self, *sites: dict[str, Any]) -> list[dict[str, Any]]:
        answer = await self.admin("POST", "sites", {"sites": list(sites)})
        return list(answer["sites"])


def world_fixture(name: str, config: SandboxConfig, timeout: float = 5.0) -> Any:
    """A fixture `name`: a fresh sandbox with `config` and a client talking to it."""

    @pytest.fixture(name=name)
    async def fixture() -> AsyncIterator[World]:
        budget = CountingBudget()
        async with running_sandbox(config, port=0) as sandbox, WixClient(
            base_url=sandbox.base_url, api_key=DEFAULT_API_KEY, account_id=DEFAULT_ACCOUNT_ID,
            budget=budget, timeout=timeout,
        ) as wix:
            yield World(sandbox, budget, wix)

    return fixture


healthy = world_fixture(
    "healthy", SandboxConfig(forbidden_transfer_targets=frozenset({FORBIDDEN_TARGET}))
)


# --- sites --------------------------------------------------------------------------------------


async def test_created_site_is_found_by_display_name_across_pages_one_budget_token_each(
    healthy: World,
) -> None:
    created = await healthy.wix.create_site(name="Acme Bakery", template_id=None, folder_id=None)
    # 150 newer sites push the new one onto the second page of a newest-first listing.
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    await healthy.seed(*({"displayName": f"Filler {i}", "createdDate": later}
                         for i in range(150)))

    found = [s async for s in healthy.wix.iter_sites() if s.display_name == "Acme Bakery"]

    assert [s.id for s in found] == [created.site_id]
    assert found[0].owner_account_id == DEFAULT_ACCOUNT_ID
    assert abs(found[0].created_at - time.time()) < 60
    assert created.component_id and created.component_id != created.site_id
    # create + 2 pages (151 sites at 100 a page): each request took one token and reported.
    assert healthy.budget.acquired == 3
    assert healthy.budget.answers == [(200, None)] * 3


async def test_listing_filter_and_page_size_are_honoured(healthy: World) -> None:
    folder = str(uuid.uuid4())
    await healthy.seed(*({"displayName": f"In {i}", "folderId": folder} for i in range(5)),
                       {"displayName": "Elsewhere"})
    found = [s async for s in healthy.wix.iter_sites(filter={"folderId": folder}, page_size=2)]
    assert sorted(s.display_name for s in found) == [f"In {i}" for i in range(5)]
    assert {s.folder_id for s in found} == {folder}
    assert healthy.budget.acquired == 3  # 5 sites, 2 a page


async def test_create_with_a_malformed_template_id_is_a_typed_400(healthy: World) -> None:
    with pytest.raises(WixApiError) as caught:
        await healthy.wix.create_site(name="X", template_id="not-a-guid", folder_id=None)
    assert caught.value.status == 400
    assert "templateId" in caught.value.message  # the field violation reaches the message
    assert caught.value.request_id
    assert_key_absent(caught.value)


# --- transfers ----------------------------------------------------------------------------------


async def test_transfer_moves_the_site_to_the_target_account(healthy: World) -> None:
    created = await healthy.wix.create_site(name="Moving", template_id=None, folder_id=None)
    await healthy.wix.transfer_site(site_id=created.site_id, source_account_id=DEFAULT_ACCOUNT_ID,
                                    target_account_id=TARGET)
    moved = [s async for s in healthy.wix.iter_sites(account_id=TARGET)]
    assert [(s.id, s.owner_account_id) for s in moved] == [(created.site_id, TARGET)]


async def test_retried_transfer_that_already_succeeded_answers_site_not_found(
    healthy: World,
) -> None:
    created = await healthy.wix.create_site(name="Twice", template_id=None, folder_id=None)
    kwargs = {"site_id": created.site_id, "source_account_id": DEFAULT_ACCOUNT_ID,
              "target_account_id": TARGET}
    await healthy.wix.transfer_site(**kwargs)
    with pytest.raises(WixApiError) as caught:
        await healthy.wix.transfer_site(**kwargs)
    assert (caught.value.status, caught.value.code) == (400, "SITE_NOT_FOUND")


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("unknown target", 428, "TARGET_ACCOUNT_ID_NOT_FOUND"),
        ("forbidden target", 403, "SITE_TRANSFER_NOT_ALLOWED"),
        ("unknown site", 400, "SITE_NOT_FOUND"),
        ("premium site", 428, "SITE_TRANSFER_NOT_SUPPORTED"),
    ],
)
async def test_each_transfer_refusal_is_typed_with_status_code_and_request_id(
    healthy: World, case: str, status: int, code: str
) -> None:
    [site] = await healthy.seed({"displayName": "Paid", "premium": case == "premium site"})
    site_id = str(uuid.uuid4()) if case == "unknown site" else site["id"]
    target = {"unknown target": str(uuid.uuid4()), "forbidden target": FORBIDDEN_TARGET}.get(
        case, TARGET)
    with pytest.raises(WixApiError) as caught:
        await healthy.wix.transfer_site(site_id=site_id, source_account_id=DEFAULT_ACCOUNT_ID,
                                        target_account_id=target)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert caught.value.request_id
    assert_key_absent(caught.value)


# --- roles and invites --------------------------------------------------------------------------


async def test_roles_list_resolves_titles_to_policy_ids(healthy: World) -> None:
    roles = await healthy.wix.list_roles()
    book = RoleBook(roles)
    manager = next(r for r in roles if r.title == "Website Manager")
    assert book.resolve(" website MANAGER ", "site") == manager.id
    assert all(r.id.isdigit() for r in roles)
    assert {r.restrict_from_level for r in roles} >= {"Site", "Account"}


async def test_account_invites_report_partial_success_per_email(healthy: World) -> None:
    book = RoleBook(await healthy.wix.list_roles())
    [site] = await healthy.seed({"displayName": "Shop"})
    everywhere = (book.resolve("Website Manager", "account"),)
    on_site = (book.resolve("Website Manager", "site"),)
    results = await healthy.wix.create_account_invites([
        AccountInvitee("Ann@Example.com", everywhere),
        AccountInvitee("bob@bounce.invalid", everywhere),
        AccountInvitee("cy@example.com", on_site, (site["id"],)),
    ])
    assert [r.email for r in results] == ["Ann@Example.com", "bob@bounce.invalid",
                                          "cy@example.com"]
    assert results[0].invite_id and results[0].error is None
    assert results[1].invite_id is None and results[1].error
    assert results[2].invite_id and results[2].error is None
    state = await healthy.admin("GET", "state")
    invited = {i["id"]: i for i in state["invites"]}
    assert invited[results[2].invite_id]["siteIds"] == [site["id"]]


async def test_site_invites_report_partial_success_per_email(healthy: World) -> None:
    book = RoleBook(await healthy.wix.list_roles())
    [site] = await healthy.seed({"displayName": "Blog"})
    results = await healthy.wix.create_site_invites(
        site_id=site["id"], policy_ids=[book.resolve("Blog Writer", "site")],
        emails=["a@example.com", "b@bounce.invalid"],
    )
    assert results[0].email == "a@example.com" and results[0].invite_id
    assert results[1] == InviteResult("b@bounce.invalid", None, results[1].error,
                                      results[0].request_id)
    assert results[1].error
    assert results[0].request_id  # every result carries the id of the answer it came in


async def test_site_invite_to_an_unknown_site_is_a_typed_error(healthy: World) -> None:
    book = RoleBook(await healthy.wix.list_roles())
    with pytest.raises(WixApiError) as caught:
        await healthy.wix.create_site_invites(
            site_id=str(uuid.uuid4()), policy_ids=[book.resolve("Website Manager", "site")],
            emails=["a@example.com"])
    assert caught.value.status == 404


# --- authentication and base URL ----------------------------------------------------------------


async def test_bad_key_is_a_typed_401_that_never_shows_either_key(healthy: World) -> None:
    wrong = "wrong-key-abcdef"
    async with WixClient(base_url=healthy.sandbox.base_url, api_key=wrong,
                         account_id=DEFAULT_ACCOUNT_ID, budget=CountingBudget(),
                         timeout=5) as wix:
        with pytest.raises(WixApiError) as caught:
            await wix.list_roles()
    assert caught.value.status == 401
    assert_key_absent(caught.value, wrong)
    assert_key_absent(caught.value)


def test_plain_http_to_a_non_loopback_host_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        WixClient(base_url="http://sandbox.example.com:8080", api_key=DEFAULT_API_KEY,
                  account_id=DEFAULT_ACCOUNT_ID, budget=CountingBudget(), timeout=5)
    assert_key_absent(caught.value)


# --- faults -------------------------------------------------------------------------------------

only_creates = frozenset({Endpoint.CREATE_SITE})
dropping_before = world_fixture(
    "dropping_before", SandboxConfig(drop_before_rate=1.0, fault_methods=only_creates)
)
dropping_after = world_fixture(
    "dropping_after", SandboxConfig(drop_after_rate=1.0, fault_methods=only_creates)
)
slow = world_fixture(
    "slow", SandboxConfig(slow_rate=1.0, slow_delay=0.5, fault_methods=only_creates), timeout=0.2
)
rate_limited = world_fixture(
    "rate_limited", SandboxConfig(rate_limit=(2, 60.0), retry_after=True)
)
throttled_silently = world_fixture(
    "throttled_silently", SandboxConfig(throttle_rate=1.0, retry_after=False)
)


async def _create(world: World) -> WixError:
    with pytest.raises(WixError) as caught:
        await world.wix.create_site(name="Faulty", template_id=None, folder_id=None)
    assert_key_absent(caught.value)
    return caught.value


async def _site_count(world: World) -> int:
    return len((await world.admin("GET", "state"))["sites"])


async def test_connection_dropped_before_the_effect_is_a_connection_error(
    dropping_before: World,
) -> None:
    error = await _create(dropping_before)
    assert isinstance(error, WixConnectionError) and not isinstance(error, WixTimeout)
    assert await _site_count(dropping_before) == 0
    assert dropping_before.budget.answers == [(None, None)]


async def test_connection_dropped_after_the_effect_says_it_may_have_been_sent(
    dropping_after: World,
) -> None:
    error = await _create(dropping_after)
    assert isinstance(error, WixConnectionError) and error.sent is True
    assert await _site_count(dropping_after) == 1  # the effect happened: reconcile, not resend


async def test_answer_slower_than_the_timeout_is_a_wix_timeout(slow: World) -> None:
    error = await _create(slow)
    assert isinstance(error, WixTimeout) and error.sent is True
    assert slow.budget.answers == [(None, None)]


async def test_429_carries_its_retry_after_to_the_error_and_the_budget(
    rate_limited: World,
) -> None:
    await rate_limited.wix.list_roles()
    await rate_limited.wix.list_roles()
    with pytest.raises(WixApiError) as caught:
        await rate_limited.wix.list_roles()
    error = caught.value
    assert (error.status, error.code) == (429, "RESOURCE_EXHAUSTED")
    assert error.retry_after is not None and 1 <= error.retry_after <= 60
    assert rate_limited.budget.answers[-1] == (429, error.retry_after)


async def test_429_without_retry_after_leaves_it_unset(throttled_silently: World) -> None:
    with pytest.raises(WixApiError) as caught:
        await throttled_silently.wix.list_roles()
    assert (caught.value.status, caught.value.retry_after) == (429, None)
    assert throttled_silently.budget.answers == [(429, None)]


async def test_connection_refused_is_known_not_sent() -> None:
    async with running_sandbox(SandboxConfig(), port=0) as gone:
        url = gone.base_url
    async with WixClient(base_url=url, api_key=DEFAULT_API_KEY, account_id=DEFAULT_ACCOUNT_ID,
                         budget=CountingBudget(), timeout=5) as wix:
        with pytest.raises(WixConnectionError) as caught:
            await wix.list_roles()
    assert caught.value.sent is False
    assert_key_absent(caught.value)

"""What the client puts on the wire, byte for byte, and how it reads odd answers.

A small recording HTTP server on 127.0.0.1 stands in for Wix: it keeps every request it gets
and answers what each test tells it to, so the tests see exactly what the client sends.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from budgets import CountingBudget

from bulkops import __version__
from bulkops.errors import ConfigError, WixApiError, WixConnectionError, WixTimeout
from bulkops.wix import AccountInvitee, WixClient

KEY = "wire-test-key-0123456789"
ACCOUNT = "11111111-1111-4111-8111-111111111111"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


# A reply may be async, to answer late.
Reply = Callable[[web.Request], web.StreamResponse | Awaitable[web.StreamResponse]]


@dataclass
class Recorder:
    base_url: str
    seen: list[Seen] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)  # one per request, in order


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return lambda _request: web.json_response(body, status=status, headers=headers)


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    holder: list[Recorder] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        rec = holder[0]
        text = await request.text()
        rec.seen.append(Seen(
            request.method, request.path, dict(request.query), dict(request.headers),
            json.loads(text) if text else None,
        ))
        reply = rec.replies.pop(0) if rec.replies else _json({})
        result = reply(request)
        return result if isinstance(result, web.StreamResponse) else await result

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    holder.append(Recorder(f"http://127.0.0.1:{port}"))
    yield holder[0]
    await runner.cleanup()


@pytest.fixture
async def client(recorder: Recorder) -> AsyncIterator[WixClient]:
    async with WixClient(base_url=recorder.base_url, api_key=KEY, account_id=ACCOUNT,
                         budget=CountingBudget(), timeout=2.0) as wix:
        yield wix


async def test_account_calls_send_the_raw_key_account_header_json_and_user_agent(
    recorder: Recorder, client: WixClient
) -> None:
    recorder.replies.append(_json({"project": {"metaSiteId": "m-1", "siteId": "c-1"}}))
    await client.create_site(name="Acme", template_id="t-1", folder_id=None)
    [req] = recorder.seen
    assert (req.method, req.path) == ("POST", "/funnel/projects/v1/create")
    assert req.headers["Authorization"] == KEY  # raw, no "Bearer"
    assert req.headers["wix-account-id"] == ACCOUNT
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["User-Agent"] == f"bulkops/{__version__}"
    assert "wix-site-id" not in req.headers
    assert req.body == {"type": "WIX", "name": "Acme", "templateId": "t-1"}


async def test_transfer_is_sent_as_the_target_account_with_the_source_in_the_body(
    recorder: Recorder, client: WixClient
) -> None:
    await client.transfer_site(site_id="s-1", source_account_id="src", target_account_id="dst")
    [req] = recorder.seen
    assert req.path == "/b2b-site-management/v1/transfer-site"
    assert req.headers["wix-account-id"] == "dst"
    assert req.body == {"siteTransfer": {"siteId": "s-1", "sourceAccountId": "src",
                                         "enableNotifications": False}}


@pytest.mark.parametrize("answer", ["", "{}", '{"siteTransfer": {"siteId": "s-1"}}',
                                    '{"unexpected": [1, 2]}'])
async def test_transfer_depends_on_no_field_of_its_answer(
    recorder: Recorder, client: WixClient, answer: str
) -> None:
    recorder.replies.append(lambda _r: web.Response(text=answer))
    await client.transfer_site(site_id="s-1", source_account_id="src", target_account_id="dst")


async def test_site_invites_name_the_site_in_wix_site_id_and_send_no_account_header(
    recorder: Recorder, client: WixClient
) -> None:
    recorder.replies.append(_json({"invites": [{"id": "i-1", "email": "a@x.com"}],
                                   "failedEmails": []}))
    results = await client.create_site_invites(site_id="site-9", policy_ids=["7"],
                                               emails=["a@x.com"])
    [req] = recorder.seen
    assert req.path == "/invites/site-invite/bulk"
    assert req.headers["wix-site-id"] == "site-9"
    assert "wix-account-id" not in req.headers
    assert req.body == {"policyIds": ["7"], "emails": ["a@x.com"], "defaultEmailLanguage": "en"}
    assert [r.invite_id for r in results] == ["i-1"]


async def test_account_invites_go_to_the_account_with_site_scopes(
    recorder: Recorder, client: WixClient
) -> None:
    await client.create_account_invites([AccountInvitee("a@x.com", ("7",), ("s-1",))],
                                        language="fr")
    [req] = recorder.seen
    assert req.path == "/invites/account-invite/create"
    assert req.headers["wix-account-id"] == ACCOUNT
    assert req.body["defaultEmailLanguage"] == "fr"
    scope = req.body["subjectsAssignments"][0]["assignments"][0]["assignments"][0]
    assert scope == {"fullNameResource": {"siteContext": {"metasiteId": "s-1"}}}


async def test_more_than_50_account_invitees_are_refused_before_anything_is_sent(
    recorder: Recorder, client: WixClient
) -> None:
    with pytest.raises(ValueError):
        await client.create_account_invites([AccountInvitee(f"{i}@x.com", ("7",))
                                             for i in range(51)])
    assert recorder.seen == []


async def test_roles_are_read_with_a_get_in_english(
    recorder: Recorder, client: WixClient
) -> None:
    recorder.replies.append(_json({"predefinedRoles": [{"id": "1", "title": "Admin"}],
                                   "customRoles": []}))
    roles = await client.list_roles()
    [req] = recorder.seen
    assert (req.method, req.path, req.query) == ("GET", "/roles-management/roles", {"locale": "en"})
    assert req.headers["wix-account-id"] == ACCOUNT
    assert [r.title for r in roles] == ["Admin"]


async def test_listing_sends_filter_and_sort_first_then_only_the_cursor(
    recorder: Recorder, client: WixClient
) -> None:
    site = {"id": "s", "createdDate": "2024-05-01T10:00:00Z"}
    recorder.replies += [
        _json({"sites": [site], "metadata": {"cursors": {"next": "c2"}, "hasNext": True}}),
        _json({"sites": [site], "metadata": {"cursors": {"next": None}, "hasNext": False}}),
    ]
    found = [s async for s in client.iter_sites(account_id="other", filter={"premium": True},
                                                page_size=1)]
    assert len(found) == 2
    first, second = recorder.seen
    assert first.body == {"query": {"filter": {"premium": True},
                                    "sort": [{"fieldName": "createdDate", "order": "DESC"}],
                                    "cursorPaging": {"limit": 1}}}
    assert second.body == {"query": {"cursorPaging": {"limit": 1, "cursor": "c2"}}}
    assert {r.headers["wix-account-id"] for r in recorder.seen} == {"other"}


async def test_listing_that_repeats_a_cursor_stops_with_invalid_response(
    recorder: Recorder, client: WixClient
) -> None:
    page = {"sites": [], "metadata": {"cursors": {"next": "same"}, "hasNext": True}}
    recorder.replies += [_json(page), _json(page), _json(page)]
    with pytest.raises(WixApiError, match="repeated a cursor"):
        _ = [s async for s in client.iter_sites()]
    assert len(recorder.seen) == 2


async def test_a_200_that_is_not_json_is_invalid_response(
    recorder: Recorder, client: WixClient
) -> None:
    recorder.replies.append(lambda _r: web.Response(text="<html>maintenance</html>"))
    with pytest.raises(WixApiError) as caught:
        await client.create_site(name="A", template_id=None, folder_id=None)
    assert (caught.value.status, caught.value.code) == (200, "INVALID_RESPONSE")


async def test_error_bodies_are_typed_with_code_request_id_and_retry_after(
    recorder: Recorder, client: WixClient
) -> None:
    body = {"message": "slow down", "details": {"applicationError": {"code": "TOO_MANY"}}}
    recorder.replies.append(_json(body, 429, {"Retry-After": "3", "X-Wix-Request-Id": "r-9"}))
    with pytest.raises(WixApiError) as caught:
        await client.list_roles()
    error = caught.value
    assert (error.status, error.code, error.message, error.request_id, error.retry_after) == (
        429, "TOO_MANY", "slow down", "r-9", 3.0,
    )


async def test_a_server_echoing_the_key_never_gets_it_into_the_exception(
    recorder: Recorder, client: WixClient
) -> None:
    recorder.replies.append(
        lambda r: web.Response(status=401, text=f"bad key {r.headers['Authorization']}")
    )
    with pytest.raises(WixApiError) as caught:
        await client.list_roles()
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)
    assert KEY not in caught.value.message


async def test_redirects_are_not_followed_so_the_key_goes_nowhere_else(
    recorder: Recorder, client: WixClient
) -> None:
    recorder.replies.append(
        lambda _r: web.Response(status=307, headers={"Location": "/elsewhere"})
    )
    with pytest.raises(WixApiError) as caught:
        await client.list_roles()
    assert caught.value.status == 307
    assert len(recorder.seen) == 1


async def test_budget_is_told_each_answer_with_its_retry_after(recorder: Recorder) -> None:
    budget = CountingBudget()
    recorder.replies += [_json({}, 503, {"Retry-After": "2"}), _json({"customRoles": []})]
    async with WixClient(base_url=recorder.base_url, api_key=KEY, account_id=ACCOUNT,
                         budget=budget, timeout=2.0) as wix:
        with pytest.raises(WixApiError):
            await wix.list_roles()
        await wix.list_roles()
    assert budget.acquired == 2
    assert budget.answers == [(503, 2.0), (200, None)]


async def test_an_answer_slower_than_the_timeout_is_a_wix_timeout(recorder: Recorder) -> None:
    async def slow(_request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.5)
        return web.json_response({})

    recorder.replies.append(slow)
    budget = CountingBudget()
    async with WixClient(base_url=recorder.base_url, api_key=KEY, account_id=ACCOUNT,
                         budget=budget, timeout=0.2) as wix:
        with pytest.raises(WixTimeout) as caught:
            await wix.list_roles()
    assert caught.value.sent is True
    assert budget.answers == [(None, None)]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_connection_refused_is_known_not_sent() -> None:
    budget = CountingBudget()
    async with WixClient(base_url=f"http://127.0.0.1:{_closed_port()}", api_key=KEY,
                         account_id=ACCOUNT, budget=budget, timeout=2.0) as wix:
        with pytest.raises(WixConnectionError) as caught:
            await wix.create_site(name="A", template_id=None, folder_id=None)
    assert caught.value.sent is False
    assert not isinstance(caught.value, WixTimeout)
    assert KEY not in str(caught.value)
    assert budget.answers == [(None, None)]


async def test_a_session_passed_in_is_used_and_left_open(recorder: Recorder) -> None:
    async with aiohttp.ClientSession() as session:
        async with WixClient(base_url=recorder.base_url, api_key=KEY, account_id=ACCOUNT,
                             budget=CountingBudget(), timeout=2.0, session=session) as wix:
            await wix.list_roles()
        assert not session.closed
    assert len(recorder.seen) == 1


def test_plain_http_to_a_remote_host_is_refused_before_any_request() -> None:
    with pytest.raises(ConfigError, match="http"):
        WixClient(base_url="http://www.wixapis.com", api_key=KEY, account_id=ACCOUNT,
                  budget=CountingBudget(), timeout=2.0)

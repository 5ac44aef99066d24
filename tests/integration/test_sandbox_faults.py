"""The sandbox's fault injection, rate limit and /_sandbox/ inspection over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bulkops.errors import ConfigError
from bulkops.sandbox import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_API_KEY,
    Endpoint,
    RunningSandbox,
    SandboxConfig,
    running_sandbox,
    serve_forever,
)

ACCOUNT = DEFAULT_ACCOUNT_ID
HEADERS = {"Authorization": DEFAULT_API_KEY, "wix-account-id": ACCOUNT}
CREATE = "/funnel/projects/v1/create"
QUERY = "/site-list/v2/sites/query"


@dataclass
class Wix:
    running: RunningSandbox
    session: aiohttp.ClientSession

    async def create(self, name: str = "Site", *, headers: dict[str, str] = HEADERS,
                     client_timeout: float | None = None) -> tuple[int, Any, dict[str, str]]:
        kwargs: dict[str, Any] = {}
        if client_timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=client_timeout)
        async with self.session.post(CREATE, json={"type": "WIX", "name": name},
                                     headers=headers, **kwargs) as response:
            return response.status, await response.json(), dict(response.headers)

    async def query(self) -> int:
        async with self.session.post(QUERY, json={}, headers=HEADERS) as response:
            return response.status

    async def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, "/_sandbox/" + path, json=body) as response:
            return response.status, await response.json()

    def sites(self) -> int:
        return len(self.running.sandbox.state.sites)

    def by_status(self) -> dict[str, int]:
        return dict(self.running.sandbox.stats.by_status)


@asynccontextmanager
async def open_wix(config: SandboxConfig | None = None) -> AsyncIterator[Wix]:
    async with running_sandbox(config) as running, aiohttp.ClientSession(
        running.base_url
    ) as session:
        yield Wix(running, session)


def code_of(body: Any) -> str:
    return str(body["details"]["applicationError"]["code"])


# -- faults ---------------------------------------------------------------------------------


async def test_drop_before_closes_the_connection_without_applying_the_effect(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with open_wix(SandboxConfig(drop_before_rate=1.0)) as wix:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await wix.create()
        assert wix.sites() == 0
        assert wix.by_status() == {"dropped": 1}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_drop_after_applies_the_effect_then_closes_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with open_wix(SandboxConfig(drop_after_rate=1.0)) as wix:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await wix.create("Dropped after")
        assert [s.display_name for s in wix.running.sandbox.state.sites.values()] == [
            "Dropped after"]
        assert wix.by_status() == {"dropped": 1}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_slow_answer_applies_the_effect_before_the_client_times_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with open_wix(SandboxConfig(slow_rate=1.0, slow_delay=0.4)) as wix:
        with pytest.raises(TimeoutError):
            await wix.create("Slow", client_timeout=0.1)
        assert wix.sites() == 1  # applied although the client never got the answer
        started = time.monotonic()
        status, _, _ = await wix.create("Patient", client_timeout=2.0)
        assert status == 200 and time.monotonic() - started >= 0.4
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_server_error_fault_answers_5xx_without_the_effect() -> None:
    async with open_wix(SandboxConfig(error_rate=1.0)) as wix:
        for _ in range(4):
            status, body, headers = await wix.create()
            assert status in {500, 502, 503, 504}
            assert body["details"]["applicationError"]["code"]
            assert headers["X-Wix-Request-Id"]
        assert wix.sites() == 0


async def test_throttle_fault_answers_429_with_retry_after_only_when_enabled() -> None:
    async with open_wix(SandboxConfig(throttle_rate=1.0)) as wix:
        status, body, headers = await wix.create()
        assert (status, code_of(body)) == (429, "RESOURCE_EXHAUSTED")
        assert "Retry-After" not in headers
        wix.running.sandbox.reconfigure(SandboxConfig(throttle_rate=1.0, retry_after=True))
        status, _, headers = await wix.create()
        assert status == 429 and headers["Retry-After"] == "1"
        assert wix.sites() == 0


async def test_faults_spare_unauthenticated_and_malformed_requests() -> None:
    async with open_wix(SandboxConfig(error_rate=1.0)) as wix:
        status, _, _ = await wix.create(headers={"wix-account-id": ACCOUNT})
        assert status == 401
        async with wix.session.post(CREATE, json={"type": "WIX"}, headers=HEADERS) as response:
            assert response.status == 400


async def test_faults_apply_only_to_the_chosen_endpoints() -> None:
    config = SandboxConfig(error_rate=1.0, fault_methods=frozenset({Endpoint.QUERY_SITES}))
    async with open_wix(config) as wix:
        assert (await wix.create())[0] == 200
        assert await wix.query() >= 500


async def test_same_seed_draws_the_same_faults() -> None:
    config = SandboxConfig(error_rate=0.5, seed=7)
    runs = []
    for _ in range(2):
        async with open_wix(config) as wix:
            runs.append([(await wix.create(f"s{n}"))[0] for n in range(12)])
    assert runs[0] == runs[1]
    assert 200 in runs[0] and any(status >= 500 for status in runs[0])


async def test_latency_delays_every_answer() -> None:
    async with open_wix(SandboxConfig(latency=0.15)) as wix:
        started = time.monotonic()
        await wix.query()
        assert time.monotonic() - started >= 0.15


async def test_latency_delays_errors_and_dropped_connections_too() -> None:
    async with open_wix(SandboxConfig(latency=0.15, drop_before_rate=1.0)) as wix:
        started = time.monotonic()
        status, body, _ = await wix.create(headers={"Authorization": "wrong key"})
        assert (status, time.monotonic() - started >= 0.15) == (401, True), body
        started = time.monotonic()
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await wix.create()
        assert time.monotonic() - started >= 0.15
        assert wix.by_status() == {"401": 1, "dropped": 1}


async def test_latency_includes_the_handling_of_the_request() -> None:
    """An answer leaves `latency` after its request came, its handling included: a handling
    that takes longer (here a slow answer of 0.4 s) is not delayed by the latency on top."""
    async with open_wix(SandboxConfig(latency=0.3, slow_rate=1.0, slow_delay=0.4)) as wix:
        started = time.monotonic()
        status, _, _ = await wix.create("Slow")
        elapsed = time.monotonic() - started
        assert status == 200
        assert 0.4 <= elapsed < 0.65, elapsed  # the old wait-then-handle took 0.7



# -- rate limit -----------------------------------------------------------------------------


async def test_rate_limit_answers_429_without_retry_after_by_default() -> None:
    async with open_wix(SandboxConfig(rate_limit=(3, 5.0))) as wix:
        statuses = [(await wix.create(f"s{n}"))[0] for n in range(3)]
        status, body, headers = await wix.create("over")
        assert statuses == [200, 200, 200]
        assert (status, code_of(body)) == (429, "RESOURCE_EXHAUSTED")
        assert "Retry-After" not in headers
        assert wix.sites() == 3


async def test_rate_limit_sends_retry_after_when_enabled_and_frees_up_after_the_window() -> None:
    async with open_wix(SandboxConfig(rate_limit=(2, 0.5), retry_after=True)) as wix:
        await wix.create("a")
        await wix.create("b")
        status, _, headers = await wix.create("c")
        assert status == 429 and int(headers["Retry-After"]) >= 1
        await asyncio.sleep(0.55)
        assert (await wix.create("d"))[0] == 200


async def test_rate_limit_counts_failed_requests_too() -> None:
    async with open_wix(SandboxConfig(rate_limit=(2, 5.0))) as wix:
        async with wix.session.post(CREATE, json={}, headers=HEADERS) as response:
            assert response.status == 400
        assert (await wix.create())[0] == 200
        assert (await wix.create())[0] == 429


# -- /_sandbox/ -----------------------------------------------------------------------------


async def test_state_reports_sites_duplicates_and_request_stats() -> None:
    async with open_wix() as wix:
        wix.running.sandbox.add_site("Twin", ACCOUNT, seeded=True)
        started = time.monotonic()
        await wix.create("Twin")
        await wix.create("Twin")
        await wix.create("Single")
        await wix.create(headers={})
        status, state = await wix.admin("GET", "state")
        assert status == 200
        assert len(state["sites"]) == 4
        assert state["duplicate_sites"] == 1  # the seeded twin existed before: not a duplicate
        requests = state["requests"]
        assert requests["total"] == 4
        assert requests["by_status"] == {"200": 3, "401": 1}
        assert requests["by_endpoint"] == {"create_site": 4}
        assert len(requests["request_times"]) == 4
        assert requests["first_request_at"] >= started
        assert requests["requests_per_second"] > 0


async def test_config_endpoint_changes_faults_at_run_time_and_hides_the_key() -> None:
    async with open_wix(SandboxConfig(api_key="k-very-secret")) as wix:
        status, effective = await wix.admin("POST", "config", {"error_rate": 1.0,
                                                               "rate_limit": [100, 60]})
        assert status == 200
        assert effective["error_rate"] == 1.0 and effective["rate_limit"] == [100, 60]
        assert "api_key" not in effective
        headers = {"Authorization": "k-very-secret", "wix-account-id": ACCOUNT}
        assert (await wix.create(headers=headers))[0] >= 500
        for bad in ({"api_key": "other"}, {"error_rate": 2.0}, {"slow_delay": "long"}):
            status, _ = await wix.admin("POST", "config", bad)
            assert status == 400, bad
        _, state = await wix.admin("GET", "state")
        assert "k-very-secret" not in str(state)
        assert "k-very-secret" not in repr(wix.running.sandbox.config)


async def test_reset_clears_the_world_and_the_stats() -> None:
    async with open_wix() as wix:
        await wix.create()
        assert (await wix.admin("POST", "reset"))[0] == 200
        _, state = await wix.admin("GET", "state")
        assert state["sites"] == [] and state["requests"]["total"] == 0


async def test_seeded_sites_are_listed_at_once_with_their_given_fields() -> None:
    async with open_wix(SandboxConfig(listing_lag=5.0)) as wix:
        status, seeded = await wix.admin("POST", "sites", {"sites": [
            {"displayName": "Old", "createdDate": "2020-01-02T03:04:05.678Z", "premium": True},
        ]})
        assert status == 200
        async with wix.session.post(QUERY, json={}, headers=HEADERS) as response:
            [site] = (await response.json())["sites"]
        assert site["id"] == seeded["sites"][0]["id"]
        assert (site["createdDate"], site["premium"], site["ownerAccountId"]) == (
            "2020-01-02T03:04:05.678Z", True, ACCOUNT)


async def test_seeding_with_a_bad_entry_seeds_nothing() -> None:
    async with open_wix() as wix:
        status, _ = await wix.admin("POST", "sites", {"sites": [
            {"displayName": "Fine"}, {"displayName": "Bad", "createdDate": "yesterday"}]})
        assert status == 400
        assert wix.sites() == 0


# -- serving --------------------------------------------------------------------------------


async def test_serve_forever_announces_its_url_and_serves_until_cancelled() -> None:
    ready: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(serve_forever(SandboxConfig(), "127.0.0.1", 0, ready.put_nowait))
    try:
        base_url = await asyncio.wait_for(ready.get(), 5)
        async with aiohttp.ClientSession(base_url) as session, session.get(
            "/roles-management/roles?locale=en", headers=HEADERS
        ) as response:
            assert response.status == 200
    finally:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_sandbox_refuses_to_listen_beyond_loopback() -> None:
    with pytest.raises(ConfigError):
        async with running_sandbox(host="0.0.0.0"):
            pass

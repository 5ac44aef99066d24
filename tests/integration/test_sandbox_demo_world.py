"""The demo world (`SandboxConfig.demo_sites`): live client sites with Premium, over real HTTP.

A fresh world starts with `DEMO_SITES` in the configured account; a world read from a state
file is taken as it is (never seeded twice); `/_sandbox/reset` makes it fresh again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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
    RunningSandbox,
    Sandbox,
    SandboxConfig,
    running_sandbox,
)
from bulkops.sandbox.config import DEMO_SITES

ACCOUNT = DEFAULT_ACCOUNT_ID
DEMO_IDS = {site.id for site in DEMO_SITES}
JOBS = Path(__file__).resolve().parents[2] / "jobs"
DEMO = SandboxConfig(demo_sites=True)


@dataclass
class Wix:
    running: RunningSandbox
    session: aiohttp.ClientSession

    async def call(self, method: str, path: str, body: Any = None, *, account: str = ACCOUNT,
                   site: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": DEFAULT_API_KEY, "wix-account-id": account}
        if site is not None:
            headers["wix-site-id"] = site
        async with self.session.request(method, path, json=body, headers=headers) as response:
            return response.status, await response.json()

    async def listed(self, account: str = ACCOUNT) -> list[dict[str, Any]]:
        status, body = await self.call("POST", "/site-list/v2/sites/query", {"query": {}},
                                       account=account)
        assert status == 200, body
        return list(body["sites"])

    async def create(self, name: str) -> str:
        status, body = await self.call("POST", "/funnel/projects/v1/create",
                                       {"type": "WIX", "name": name})
        assert status == 200, body
        return str(body["project"]["metaSiteId"])

    async def admin(self, method: str, path: str) -> Any:
        async with self.session.request(method, f"/_sandbox/{path}") as response:
            assert response.status == 200
            return await response.json()


@asynccontextmanager
async def open_wix(config: SandboxConfig) -> AsyncIterator[Wix]:
    async with running_sandbox(config) as running, aiohttp.ClientSession(
        running.base_url
    ) as session:
        yield Wix(running, session)


def demo_view(sites: list[dict[str, Any]]) -> dict[str, tuple[str, bool, bool]]:
    return {s["id"]: (s["displayName"], s["premium"], s["published"]) for s in sites
            if s["id"] in DEMO_IDS}


EXPECTED = {site.id: (site.display_name, True, True) for site in DEMO_SITES}


async def test_query_sites_lists_the_demo_sites_with_premium() -> None:
    async with open_wix(DEMO) as wix:
        sites = await wix.listed()
        assert demo_view(sites) == EXPECTED and len(sites) == len(DEMO_SITES)
        by_id = {s["id"]: s for s in sites}
        for demo in DEMO_SITES:
            assert by_id[demo.id]["ownerAccountId"] == ACCOUNT
            assert by_id[demo.id]["createdDate"] == demo.created_date
        # Stand-ins for sites made before any run: never counted as duplicates.
        snapshot = wix.running.sandbox.snapshot()
        assert all(s["seeded"] for s in snapshot["sites"])
        assert snapshot["duplicate_sites"] == 0
        assert await wix.listed(DEFAULT_SUB_ACCOUNTS[0]) == []


async def test_demo_sites_belong_to_the_configured_account() -> None:
    other = "33333333-3333-4333-8333-333333333333"
    async with open_wix(SandboxConfig(account_id=other, demo_sites=True)) as wix:
        assert demo_view(await wix.listed(other)) == EXPECTED


async def test_without_the_option_the_world_starts_empty() -> None:
    async with open_wix(SandboxConfig()) as wix:
        assert await wix.listed() == []
        await wix.admin("POST", "reset")
        assert await wix.listed() == []


async def test_reset_seeds_the_demo_sites_again_and_forgets_the_rest() -> None:
    async with open_wix(DEMO) as wix:
        made = await wix.create("Zephyr Kites")
        status, _ = await wix.call("POST", "/domains/v1/connected-domains",
                                   {"connectedDomain": {"domain": "acmebakery.com",
                                                        "connectionType": "POINTING"}},
                                   site=DEMO_SITES[0].id)
        assert status == 200
        await wix.admin("POST", "reset")
        sites = await wix.listed()
        assert demo_view(sites) == EXPECTED and made not in {s["id"] for s in sites}
        assert len(sites) == len(DEMO_SITES)
        assert wix.running.sandbox.state.domains == {}


async def test_a_world_read_from_its_state_file_is_not_seeded_twice(tmp_path: Path) -> None:
    config = SandboxConfig(state_file=tmp_path / "world.json", demo_sites=True)
    async with open_wix(config) as wix:
        made = await wix.create("Zephyr Kites")
        before = wix.running.sandbox.snapshot()["sites"]
    saved = json.loads((tmp_path / "world.json").read_text(encoding="utf-8"))
    assert {site["id"] for site in saved["sites"]} == {*DEMO_IDS, made}

    async with open_wix(config) as wix:
        assert wix.running.sandbox.snapshot()["sites"] == before
        listed = await wix.listed()
        assert demo_view(listed) == EXPECTED
        assert sorted(s["id"] for s in listed) == sorted([*DEMO_IDS, made])
        await wix.admin("POST", "reset")  # fresh again: the demo sites only, saved
    assert set(Sandbox(config).state.sites) == DEMO_IDS


async def test_a_saved_world_keeps_its_sites_and_gains_the_demo_sites_it_lacks(
    tmp_path: Path,
) -> None:
    """A state file written with the demo sites keeps them with the option off; one written
    without them (an earlier version's demo) keeps its own sites and gains the demo sites with
    the option on, once, and writes them back."""
    seeded = SandboxConfig(state_file=tmp_path / "seeded.json", demo_sites=True)
    plain = SandboxConfig(state_file=tmp_path / "plain.json")
    async with open_wix(seeded):
        pass
    async with open_wix(plain) as wix:
        made = await wix.create("Zephyr Kites")
    assert set(Sandbox(SandboxConfig(state_file=seeded.state_file)).state.sites) == DEMO_IDS
    grown = SandboxConfig(state_file=plain.state_file, demo_sites=True)
    async with open_wix(grown) as wix:
        assert sorted(s["id"] for s in await wix.listed()) == sorted([*DEMO_IDS, made])
    assert set(Sandbox(SandboxConfig(state_file=plain.state_file)).state.sites) == {
        *DEMO_IDS, made}


async def test_a_seeded_world_is_written_at_the_first_request(tmp_path: Path) -> None:
    """As after a SIGKILL: the demo sites are on disk once the sandbox has answered anything,
    so a restart finds the same world (and does not seed it again)."""
    config = SandboxConfig(state_file=tmp_path / "world.json", demo_sites=True)
    async with open_wix(config) as wix:
        await wix.listed()
        on_disk = Sandbox(SandboxConfig(state_file=config.state_file))  # read, not seeded
        assert set(on_disk.state.sites) == DEMO_IDS


@pytest.mark.parametrize(("connection", "domain"), [
    ("POINTING", "acmebakery.com"), ("NAMESERVERS", "bluefingrill.com"), (None, "shop.acme.com"),
])
async def test_a_domain_connects_to_a_demo_site(connection: str | None, domain: str) -> None:
    site = DEMO_SITES[1].id
    connected: dict[str, Any] = {"domain": domain, "siteInfo": {"assignmentType": "PRIMARY"}}
    if connection is not None:
        connected["connectionType"] = connection
    async with open_wix(DEMO) as wix:
        status, body = await wix.call("POST", "/domains/v1/connected-domains",
                                      {"connectedDomain": connected}, site=site)
        assert status == 200, body
        assert body["connectedDomain"]["siteInfo"] == {"id": site, "assignmentType": "PRIMARY"}
        status, info = await wix.call(
            "GET", f"/domains/v1/connected-domain-setup-info/{domain}")
        assert status == 200, info
        zone_status, _ = await wix.call("GET", f"/domains/v1/dns-zones/{domain}")
        assert zone_status == (200 if connection == "NAMESERVERS" else 404)


async def test_a_site_made_through_the_api_still_has_no_premium() -> None:
    async with open_wix(DEMO) as wix:
        made = await wix.create("Zephyr Kites")
        status, body = await wix.call("POST", "/domains/v1/connected-domains",
                                      {"connectedDomain": {"domain": "zephyrkites.com",
                                                           "connectionType": "POINTING"}},
                                      site=made)
        assert status == 403
        assert body["details"]["applicationError"]["code"] == "NON_PREMIUM_SITE"


def test_demo_site_names_differ_from_the_example_files_site_names() -> None:
    """Else `run jobs/onboarding.csv` against the demo world would meet its own names taken."""
    names = {site.display_name.casefold() for site in DEMO_SITES}
    written = (JOBS / "onboarding.csv").read_text(encoding="utf-8")
    written += (JOBS / "onboarding.json").read_text(encoding="utf-8")
    assert not any(name in written.casefold() for name in names)
    assert len({site.id for site in DEMO_SITES}) == len(DEMO_SITES) >= 3


# -- `bulkops sandbox` -------------------------------------------------------------------------

STARTUP_TIMEOUT = 20.0


def _banner(*flags: str) -> str:
    """What `bulkops sandbox --port 0 FLAGS` prints up to its `try:` line; then it is stopped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WIX_", "BULKOPS_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "bulkops", "sandbox", "--port", "0", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**env, "PYTHONUNBUFFERED": "1"}, text=True, encoding="utf-8",
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.strip().startswith("try:"):
                break
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return "".join(lines)


def test_bulkops_sandbox_demo_sites_lists_its_premium_sites_at_start() -> None:
    banner = _banner("--demo-sites")
    assert banner.startswith("sandbox listening on http://127.0.0.1:"), banner
    for site in DEMO_SITES:
        assert f"{site.id}  {site.display_name}" in banner


@pytest.mark.parametrize("flags", [(), ("--no-demo-sites",)])
def test_bulkops_sandbox_starts_empty_by_default(flags: tuple[str, ...]) -> None:
    """The acceptance tests' sandboxes (`bulkops sandbox` subprocesses) count on it."""
    banner = _banner(*flags)
    assert "sites with Premium: none" in banner, banner
    assert not any(site.id in banner for site in DEMO_SITES)

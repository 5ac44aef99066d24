"""The sandbox's state file: a sandbox restarted on the same file carries on with the same world."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bulkops.errors import ConfigError, JobBusy
from bulkops.sandbox import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_API_KEY,
    DEFAULT_SUB_ACCOUNTS,
    RunningSandbox,
    Sandbox,
    SandboxConfig,
    running_sandbox,
    statefile,
)
from bulkops.sandbox.state import Transfer
from bulkops.sandbox.statefile import copy_saved_world, held, journal_of

ACCOUNT = DEFAULT_ACCOUNT_ID
SUB = DEFAULT_SUB_ACCOUNTS[0]
KEY = {"Authorization": DEFAULT_API_KEY}
AT_ACCOUNT = {**KEY, "wix-account-id": ACCOUNT}
WEBSITE_MANAGER = "7084512206941830272"  # a role that may be given on a site or account-wide
WORLD_KEYS = ("sites", "transfers", "invites", "emails_sent", "duplicate_invite_emails",
              "duplicate_sites")


@dataclass
class Wix:
    running: RunningSandbox
    session: aiohttp.ClientSession

    async def call(self, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        async with self.session.post(path, json=body, headers=headers) as response:
            return response.status, await response.json()

    async def create(self, name: str) -> dict[str, Any]:
        status, body = await self.call("/funnel/projects/v1/create", AT_ACCOUNT,
                                       {"type": "WIX", "name": name})
        assert status == 200, body
        return dict(body["project"])

    async def transfer(self, site_id: str, target: str) -> None:
        body = {"siteTransfer": {"siteId": site_id, "sourceAccountId": ACCOUNT}}
        status, answer = await self.call("/b2b-site-management/v1/transfer-site",
                                         {**KEY, "wix-account-id": target}, body)
        assert status == 200, answer

    async def invite_to_site(self, site_id: str, *emails: str) -> list[str]:
        status, body = await self.call("/invites/site-invite/bulk", self.at_site(site_id),
                                       {"policyIds": [WEBSITE_MANAGER], "emails": list(emails)})
        assert status == 200 and not body["failedEmails"], body
        return [invite["id"] for invite in body["invites"]]

    async def invite_to_account(self, email: str) -> None:
        subject = {"subjectEmail": email, "assignments": [{"policyId": WEBSITE_MANAGER}]}
        status, body = await self.call("/invites/account-invite/create", AT_ACCOUNT,
                                       {"subjectsAssignments": [subject]})
        assert status == 200 and not body["failedInvites"], body

    async def invite_action(self, site_id: str, invite_id: str, action: str) -> int:
        status, _ = await self.call(f"/invites/site-invite/{invite_id}/{action}",
                                    self.at_site(site_id), {})
        return status

    async def listed(self, account: str) -> set[str]:
        status, body = await self.call("/site-list/v2/sites/query",
                                       {**KEY, "wix-account-id": account}, {"query": {}})
        assert status == 200, body
        return {site["id"] for site in body["sites"]}

    @staticmethod
    def at_site(site_id: str) -> dict[str, str]:
        return {**KEY, "wix-site-id": site_id}

    def world(self) -> dict[str, Any]:
        snapshot = self.running.sandbox.snapshot()
        return {key: snapshot[key] for key in WORLD_KEYS}


@asynccontextmanager
async def open_wix(config: SandboxConfig) -> AsyncIterator[Wix]:
    async with running_sandbox(config) as running, aiohttp.ClientSession(
        running.base_url
    ) as session:
        yield Wix(running, session)


@pytest.fixture
def config(tmp_path: Path) -> SandboxConfig:
    return SandboxConfig(state_file=tmp_path / "sandbox-state.json")


async def make_world(wix: Wix) -> dict[str, str]:
    """Two sites (one moved to a sub-account), site invites (one resent, one revoked) and an
    account invite. Returns the ids the checks need."""
    kept = (await wix.create("Acme Bakery"))["metaSiteId"]
    moved = (await wix.create("Globex"))["metaSiteId"]
    await wix.transfer(moved, SUB)
    resent, revoked = await wix.invite_to_site(kept, "ann@example.com", "bob@example.com")
    assert await wix.invite_action(kept, resent, "resend") == 200
    assert await wix.invite_action(kept, revoked, "revoke") == 200
    await wix.invite_to_account("cy@example.com")
    return {"kept": kept, "moved": moved, "resent": resent, "revoked": revoked}


async def test_world_survives_a_restart_on_the_same_file(config: SandboxConfig) -> None:
    async with open_wix(config) as first:
        ids = await make_world(first)
        before = first.world()
        old_ids = {s["id"] for s in before["sites"]} | {s["siteId"] for s in before["sites"]}

    async with open_wix(config) as second:
        assert second.world() == before
        assert await second.listed(ACCOUNT) == {ids["kept"]}
        assert await second.listed(SUB) == {ids["moved"]}
        # The invites are live again: a pending one can be resent, a revoked one cannot.
        assert await second.invite_action(ids["kept"], ids["resent"], "resend") == 200
        assert await second.invite_action(ids["kept"], ids["revoked"], "resend") == 404
        emails = {(e["scope"], e["email"]): e["count"] for e in second.world()["emails_sent"]}
        assert emails[(ids["kept"], "ann@example.com")] == 3
        assert emails[(f"account:{ACCOUNT}", "cy@example.com")] == 1
        # A new site never takes an old id, nor an old slug.
        created = await second.create("Acme Bakery")
        assert not {created["metaSiteId"], created["siteId"]} & old_ids
        names = {s["name"] for s in second.world()["sites"]}
        assert names == {"acme-bakery", "globex", "acme-bakery-1"}

    async with open_wix(config) as third:
        assert len(third.world()["sites"]) == 3


async def test_every_change_is_on_disk_before_its_answer(config: SandboxConfig) -> None:
    """As after a SIGKILL: read the file while the first sandbox still runs, never stopped."""
    async with open_wix(config) as wix:
        ids = await make_world(wix)
        restarted = Sandbox(config)
        assert restarted.snapshot()["sites"] == wix.running.sandbox.snapshot()["sites"]
        assert {t["siteId"] for t in restarted.snapshot()["transfers"]} == {ids["moved"]}
        assert restarted.state.invites[ids["revoked"]].status.value == "Deleted"


async def test_a_change_appends_one_journal_line_and_a_read_saves_nothing(
    config: SandboxConfig,
) -> None:
    assert config.state_file is not None
    journal = journal_of(config.state_file)
    async with open_wix(config) as wix:
        await wix.create("Acme")  # no file yet: the first save writes the whole world
        file = config.state_file.read_bytes()
        assert not journal.exists()
        await wix.listed(ACCOUNT)
        assert not journal.exists()
        await wix.create("Globex")
        lines = journal.read_bytes().splitlines()
        assert [site["displayName"] for site in json.loads(lines[0])["sites"]] == ["Globex"]
        assert len(lines) == 1 and config.state_file.read_bytes() == file
        await wix.listed(ACCOUNT)
        assert journal.read_bytes().splitlines() == lines
    # A stopping sandbox writes the whole world, and the journal goes.
    assert not journal.exists()
    assert len(json.loads(config.state_file.read_text())["sites"]) == 2


async def test_the_journal_is_folded_into_the_file_once_it_outgrows_it(
    config: SandboxConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert config.state_file is not None
    journal = journal_of(config.state_file)
    monkeypatch.setattr(statefile, "JOURNAL_MIN_BYTES", 0)
    sandbox = Sandbox(config)
    folds = 0
    for n in range(60):
        sandbox.add_site(f"Site {n}", ACCOUNT)
        sandbox.persist()
        if not journal.exists():
            folds += 1
        else:  # never more than the file's size, and the one line that passed it
            assert journal.stat().st_size < config.state_file.stat().st_size + 2_000
    assert 3 <= folds <= 12  # the file doubles between folds, the first save aside
    assert Sandbox(config).state.sites == sandbox.state.sites


def test_journal_lines_already_in_the_file_are_not_read_again(config: SandboxConfig) -> None:
    """As after a kill between writing the whole world and removing the journal."""
    assert config.state_file is not None
    journal = journal_of(config.state_file)
    sandbox = Sandbox(config)
    site = sandbox.add_site("Globex", ACCOUNT, seeded=True)
    sandbox.persist()  # the whole world (no file yet)
    sandbox.add_site("Acme", ACCOUNT)
    sandbox.persist()  # a journal line: Globex is not in it, Acme is
    sandbox.state.move_site(Transfer(site.id, ACCOUNT, SUB, sandbox.now_iso()),
                            sandbox.clock(), 0.0)
    sandbox.persist()  # a line: Globex moved
    left_over = journal.read_bytes()
    sandbox.add_site("Initech", ACCOUNT)
    sandbox.persist(force=True)  # the whole world: the journal goes ...
    journal.write_bytes(left_over)  # ... or would have, but for a kill
    restarted = Sandbox(config)
    assert restarted.state.sites == sandbox.state.sites
    assert len(restarted.state.transfers) == 1
    assert restarted.state.sites[site.id].owner_account_id == SUB


def journalled(config: SandboxConfig) -> tuple[Sandbox, Path]:
    """A sandbox saved twice: Acme in the state file, Globex in a journal line; the journal."""
    assert config.state_file is not None
    sandbox = Sandbox(config)
    sandbox.add_site("Acme", ACCOUNT)
    sandbox.persist()  # no file yet: the whole world
    sandbox.add_site("Globex", ACCOUNT)
    sandbox.persist()
    return sandbox, journal_of(config.state_file)


def test_a_save_cut_short_is_dropped_and_the_next_one_starts_a_line(
    config: SandboxConfig,
) -> None:
    first, journal = journalled(config)
    whole = journal.read_bytes()
    with journal.open("ab") as out:  # half a line, as a SIGKILL mid-write leaves it
        out.write(whole[: len(whole) // 2])
    second = Sandbox(config)
    assert second.state.sites == first.state.sites
    assert journal.read_bytes() == whole
    second.add_site("Initech", ACCOUNT)
    second.persist()
    names = {site.display_name for site in Sandbox(config).state.sites.values()}
    assert names == {"Acme", "Globex", "Initech"}


def test_a_journal_line_that_is_not_sandbox_state_is_a_config_error(
    config: SandboxConfig,
) -> None:
    _, journal = journalled(config)
    lines = journal.read_bytes()
    for bad in (b'{"serial": 9, "sites": [{"id": "x"}]}', b"[" * 100_000, b'{"\xff": 1}'):
        journal.write_bytes(lines + bad + b"\n" + lines)
        with pytest.raises(ConfigError) as caught:
            Sandbox(config)
        message = str(caught.value)
        assert message.startswith(f"{journal} is not a valid sandbox state journal: line 2:")
        assert "\n" not in message and "utf-16" not in message


def test_a_failed_append_leaves_the_journal_whole_and_the_next_save_catches_up(
    config: SandboxConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox, journal = journalled(config)
    before = journal.read_bytes()
    sandbox.add_site("Initech", ACCOUNT)

    def fail(_: int) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fdatasync", fail)
        with pytest.raises(OSError, match="disk full"):
            sandbox.persist()
    assert journal.read_bytes() == before
    sandbox.add_site("Hooli", ACCOUNT)
    sandbox.persist()
    names = {site.display_name for site in Sandbox(config).state.sites.values()}
    assert names == {"Acme", "Globex", "Initech", "Hooli"}


def test_a_copy_of_the_saved_world_takes_its_journal(config: SandboxConfig,
                                                     tmp_path: Path) -> None:
    assert config.state_file is not None
    sandbox, _ = journalled(config)
    copy = tmp_path / "copy" / "world.json"
    copy.parent.mkdir()
    assert copy_saved_world(config.state_file, copy)
    assert journal_of(copy).exists()
    assert Sandbox(replace(config, state_file=copy)).state.sites == sandbox.state.sites
    assert not copy_saved_world(tmp_path / "none.json", tmp_path / "copy" / "none.json")


async def test_seed_and_reset_through_the_admin_paths_are_saved(config: SandboxConfig) -> None:
    async with open_wix(config) as wix:
        async with wix.session.post("/_sandbox/sites",
                                    json={"sites": [{"displayName": "Old Shop"}]}) as response:
            assert response.status == 200
        assert [s["displayName"] for s in Sandbox(config).snapshot()["sites"]] == ["Old Shop"]
        async with wix.session.post("/_sandbox/reset") as response:
            assert response.status == 200
        assert Sandbox(config).snapshot()["sites"] == []


async def test_untouched_sandbox_writes_its_empty_world_on_shutdown(
    config: SandboxConfig,
) -> None:
    assert config.state_file is not None
    async with open_wix(config):
        assert not config.state_file.exists()
    assert Sandbox(config).snapshot()["sites"] == []


class Clocks:
    """A hand-driven monotonic clock and wall clock."""

    def __init__(self, now: float, wall: datetime) -> None:
        self.now = now
        self.wall = wall

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += timedelta(seconds=seconds)

    def sandbox(self, config: SandboxConfig) -> Sandbox:
        return Sandbox(config, clock=lambda: self.now, wall_clock=lambda: self.wall)


def test_listing_lag_runs_on_across_a_restart_on_another_clock(config: SandboxConfig) -> None:
    """The listing's times move to the new process's clock; the downtime counts as lag spent."""
    lagging = replace(config, listing_lag=10.0)
    old = Clocks(now=100.0, wall=datetime(2024, 5, 1, tzinfo=UTC))
    first = old.sandbox(lagging)
    new_site = first.add_site("Acme", ACCOUNT)  # lists for ACCOUNT from 110
    moved = first.add_site("Globex", ACCOUNT, seeded=True)  # lists at once
    first.state.move_site(Transfer(moved.id, ACCOUNT, SUB, first.now_iso()), old.now, 10.0)
    old.advance(2.0)
    first.persist()  # 8 s of lag left, then the sandbox is down for 4 s
    new = Clocks(now=9_000.0, wall=old.wall + timedelta(seconds=4))
    restarted = new.sandbox(lagging)
    assert restarted.state.sites == first.state.sites

    def listed(account: str) -> set[str]:
        return {site["id"] for site in restarted.state.listed_sites(account, new.now)}

    assert (listed(ACCOUNT), listed(SUB)) == ({moved.id}, set())
    new.advance(3.9)
    assert (listed(ACCOUNT), listed(SUB)) == ({moved.id}, set())
    new.advance(0.2)
    assert (listed(ACCOUNT), listed(SUB)) == ({new_site.id}, {moved.id})


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"\xff\xfe garbage",
        b"[]",
        b'{"format": "bulkops-sandbox-state", "version": 99}',
        b'{"format": "bulkops-sandbox-state", "version": 1, "savedAt": "yesterday",'
        b' "sites": [], "transfers": [], "invites": [], "emailsSent": []}',
        b'{"format": "bulkops-sandbox-state", "version": 1, "savedAt": "2024-05-01T00:00:00Z",'
        b' "sites": [{"id": "x"}], "transfers": [], "invites": [], "emailsSent": []}',
        b"[" * 100_000,  # RecursionError in the parser: was an unexpected failure, exit 3
    ],
    ids=["empty", "not-json", "not-utf8", "not-an-object", "other-version", "bad-instant",
         "site-missing-fields", "nested-too-deeply"],
)
async def test_file_that_is_not_sandbox_state_is_a_config_error(
    config: SandboxConfig, content: bytes
) -> None:
    assert config.state_file is not None
    config.state_file.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        Sandbox(config)
    message = str(caught.value)
    assert str(config.state_file) in message and "\n" not in message
    with pytest.raises(ConfigError):
        async with running_sandbox(config):
            pass
    assert config.state_file.read_bytes() == content  # a bad file is never overwritten


def test_failed_write_leaves_the_old_file_whole(
    config: SandboxConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert config.state_file is not None
    sandbox = Sandbox(config)
    sandbox.add_site("Acme", ACCOUNT)
    sandbox.persist()
    old = config.state_file.read_bytes()
    sandbox.add_site("Globex", ACCOUNT)

    def fail(*_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        sandbox.persist(force=True)  # the whole world, as a stopping sandbox writes it
    assert config.state_file.read_bytes() == old
    assert os.listdir(config.state_file.parent) == [config.state_file.name]  # no temp file left
    assert len(json.loads(old)["sites"]) == 1


def test_a_state_file_behind_a_symbolic_link_is_saved_through_the_link(
    config: SandboxConfig, tmp_path: Path
) -> None:
    # A state file kept elsewhere (a CI cache) and linked into place keeps being that file.
    kept = tmp_path / "cache" / "world.json"
    kept.parent.mkdir()
    link = tmp_path / "linked.json"
    link.symlink_to(kept)
    sandbox = Sandbox(replace(config, state_file=link))
    sandbox.add_site("Acme", ACCOUNT)
    sandbox.persist()
    assert link.is_symlink() and link.resolve() == kept
    assert len(json.loads(kept.read_text())["sites"]) == 1


def test_no_state_file_means_memory_only() -> None:
    sandbox = Sandbox(SandboxConfig())
    sandbox.add_site("Acme", ACCOUNT)
    sandbox.persist(force=True)  # nothing to write to: a no-op
    assert sandbox.snapshot()["config"]["state_file"] is None


def test_state_file_cannot_change_while_running(config: SandboxConfig, tmp_path: Path) -> None:
    sandbox = Sandbox(config)
    with pytest.raises(ConfigError):
        sandbox.reconfigure(SandboxConfig(state_file=tmp_path / "other.json"))


def test_a_state_file_whose_journal_could_not_be_named_is_a_config_error(
    tmp_path: Path,
) -> None:
    """Its name fits, but not the journal's or the new copy's beside it: every save would
    fail, each a request answered 500."""
    name = "w" * 240 + ".json"  # 245 bytes: the copy made while it is written needs 259
    with pytest.raises(ConfigError) as caught:
        Sandbox(SandboxConfig(state_file=tmp_path / name))
    message = str(caught.value)
    assert "its journal" in message and "\n" not in message
    assert os.listdir(tmp_path) == []
    Sandbox(SandboxConfig(state_file=tmp_path / name[-230:]))  # 230 bytes: room for both


def test_a_saved_world_is_held_by_one_sandbox_at_a_time(tmp_path: Path) -> None:
    world = tmp_path / "new" / "world.json"  # its folder is made, as the first save would
    with held(world, "--db"), pytest.raises(JobBusy, match="use another --db"), \
            held(world, "--db"):
        pass
    with held(world, "--db"):  # let go at the end of the block
        pass

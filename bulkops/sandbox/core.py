"""The Sandbox object: one fake Wix (config, world state, fault injector, request stats)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING

from bulkops.errors import ConfigError
from bulkops.sandbox.config import DEMO_SITES, SandboxConfig, public_view
from bulkops.sandbox.faults import FaultInjector
from bulkops.sandbox.listings import Listings
from bulkops.sandbox.state import SandboxState, Site
from bulkops.sandbox.statefile import StateFile
from bulkops.sandbox.stats import RequestStats
from bulkops.sandbox.wire import JsonObject, format_instant, new_guid, parse_instant

if TYPE_CHECKING:
    from aiohttp import web

# The template id Wix reports for a site created without one.
BLANK_TEMPLATE_ID = "00000000-0000-4000-8000-000000000000"

# Fixed for the sandbox's life: changing them would orphan its world (or its saved copy).
_IDENTITY_FIELDS = ("api_key", "account_id", "sub_accounts", "state_file")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Sandbox:
    """A fake Wix: holds the world and the options; serve it with `app` or `running_sandbox`.

    `clock` (seconds, monotonic) drives the rate limit, the listing lag and the request
    times; `wall_clock` stamps createdDate and invite dates; `sleep` makes latency and slow
    answers. All three are injectable so that a test can control time.

    With `config.state_file` set, the world starts as saved in that file (ConfigError if it
    is not sandbox state) and `persist` keeps the file up to date.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._config = config or SandboxConfig()
        self.clock = clock
        self.wall_clock = wall_clock
        self.sleep = sleep
        path = self._config.state_file
        self._file = None if path is None else StateFile(path)
        loaded = None if self._file is None else self._file.load(self.clock(), self.wall_clock())
        self.state = loaded if loaded is not None else self._fresh_state()
        # The revision last written to the state file; None: the file is behind (or absent).
        # A fresh world counts as written while it is empty, so that an untouched sandbox
        # writes nothing before it stops; a seeded one is written at the first chance.
        self._saved_revision: int | None = self.state.revision if loaded is not None else 0
        if loaded is not None and self._add_demo_sites():
            # A world saved before it had the demo sites (an earlier version's demo) gets the
            # ones it lacks, by their fixed ids: the example file's domain rows name them.
            self._saved_revision = None
        self.stats = RequestStats()
        self.faults = FaultInjector(self._config)
        self.listings = Listings()

    def _fresh_state(self) -> SandboxState:
        """A new world (also made current): empty, or with the demo's live Premium sites in
        the configured account (`config.demo_sites`)."""
        self.state = SandboxState()
        self._add_demo_sites()
        return self.state

    def _add_demo_sites(self) -> int:
        """With `config.demo_sites`, add the demo sites the world lacks (by id): how many."""
        if not self._config.demo_sites:
            return 0
        missing = [demo for demo in DEMO_SITES if demo.id not in self.state.sites]
        for demo in missing:
            self.add_site(
                demo.display_name, self._config.account_id, premium=True,
                published=True, seeded=True, site_id=demo.id,
                component_id=demo.component_id,
                created_date=parse_instant(demo.created_date),
            )
        return len(missing)

    def __repr__(self) -> str:
        return f"Sandbox(account_id={self._config.account_id!r}, sites={len(self.state.sites)})"

    @property
    def config(self) -> SandboxConfig:
        return self._config

    @cached_property
    def app(self) -> web.Application:
        """The aiohttp application serving this sandbox (built once)."""
        # Imported here: app.py builds on this module, so a top-level import would be circular.
        from bulkops.sandbox.app import build_app

        return build_app(self)

    def reconfigure(self, config: SandboxConfig) -> None:
        """Switch to new options at run time; the identity (key, accounts) and the state file
        must not change (ConfigError)."""
        if any(getattr(config, f) != getattr(self._config, f) for f in _IDENTITY_FIELDS):
            raise ConfigError(
                "the sandbox's key, accounts and state file cannot change while it runs")
        self._config = config
        self.faults.reconfigure(config)

    def reset(self) -> None:
        """Forget every site, invite, transfer, domain and statistic; restart the fault draws.
        The world is fresh again: with `config.demo_sites`, it has the demo sites again."""
        self.state = self._fresh_state()
        self._saved_revision = None
        self.stats = RequestStats()
        self.faults = FaultInjector(self._config)
        self.listings = Listings()

    def persist(self, *, force: bool = False) -> None:
        """Write the world to `config.state_file` if it changed since the last write, or if
        `force`. Does nothing without a state file. Raises OSError if the write fails.

        Called after every request that may change the world and when the server stops.
        """
        if self._file is None or (not force and self.state.revision == self._saved_revision):
            return
        # A world replaced (a reset) or changed outside the journal's view (demo sites added
        # on load) is written whole, and so is the world a stopping sandbox leaves.
        self._file.save(self.state, self.clock(), self.wall_clock(),
                        whole=force or self._saved_revision is None)
        self._saved_revision = self.state.revision

    def now_iso(self) -> str:
        return format_instant(self.wall_clock())

    def known_accounts(self) -> frozenset[str]:
        """Accounts that exist: the key's, its sub-accounts, forbidden targets, site owners."""
        return (
            self._config.actable_accounts()
            | self._config.forbidden_transfer_targets
            | frozenset(self.state.owners())
        )

    def add_site(
        self,
        display_name: str,
        owner_account_id: str,
        *,
        template_id: str | None = None,
        folder_id: str | None = None,
        premium: bool = False,
        created_date: datetime | None = None,
        namespace: str = "WIX",
        published: bool = False,
        seeded: bool = False,
        site_id: str | None = None,
        component_id: str | None = None,
    ) -> Site:
        """Create a site. API-created sites list after the listing lag; seeded ones at once.
        The ids are new random GUIDs unless given (the demo sites' fixed ids)."""
        site = Site(
            id=site_id or new_guid(),
            component_id=component_id or new_guid(),
            name=self.state.unique_name(display_name),
            display_name=display_name,
            created_date=format_instant(created_date or self.wall_clock()),
            owner_account_id=owner_account_id,
            template_id=template_id or BLANK_TEMPLATE_ID,
            premium=premium,
            folder_id=folder_id,
            namespace=namespace,
            published=published,
            seeded=seeded,
        )
        lag = 0.0 if seeded else self._config.listing_lag
        return self.state.add_site(site, visible_from=self.clock() + lag)

    def snapshot(self) -> JsonObject:
        """Everything /_sandbox/state shows: the world, the request stats and the options."""
        return {
            **self.state.snapshot(),
            "requests": self.stats.snapshot(),
            "config": public_view(self._config),
        }

"""The sandbox's options: who it is (key, accounts) and which faults it injects.

Every default means "no fault": a sandbox built with `SandboxConfig()` answers like a healthy
Wix. Faults are chosen per request by one random draw (see `faults.py`), so their rates are
shares of the same unit interval and may not add up to more than 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from bulkops.errors import ConfigError

DEFAULT_API_KEY = "sandbox-key"
DEFAULT_ACCOUNT_ID = "11111111-1111-4111-8111-111111111111"
DEFAULT_SUB_ACCOUNTS = tuple(f"22222222-2222-4222-8222-22222222222{n}" for n in range(1, 6))
DEFAULT_REJECT_DOMAINS = ("bounce.invalid",)
# Domains nobody owns yet: connecting one is refused, availability says available.
DEFAULT_DOMAINS_FOR_SALE = ("for-sale.com", "unclaimed-bakery.com", "still-free.net")
# TLDs Wix will not put on a site: connect answers 400 "Invalid domain", availability 400.
DEFAULT_RESTRICTED_TLDS = ("gov", "mil", "int")


@dataclass(frozen=True)
class DemoSite:
    """A live client site with a Premium plan that a demo world starts with (`demo_sites`):
    a site the agency built before, ready for its client's own domain. Fixed ids, so that
    example job files and docs can name it."""

    id: str  # the site id (metaSiteId) that job files write in `site`
    display_name: str
    component_id: str  # the create response's `siteId`, as for every sandbox site
    created_date: str  # ISO-8601 UTC, as Query Sites shows it


# The demo world's sites, in the configured account (`SandboxConfig.demo_sites`). Their names
# differ from every site name in jobs/onboarding.*, so the example files never collide with them.
DEMO_ACME_SITE_ID = "de305173-0001-4000-8000-00000000ac3e"
DEMO_BLUEFIN_SITE_ID = "de305173-0002-4000-8000-0000000b1fe7"
DEMO_CEDAR_SITE_ID = "de305173-0003-4000-8000-0000000ced42"
DEMO_SITES = (
    DemoSite(DEMO_ACME_SITE_ID, "Acme Bakery — Live Site",
             "de305173-0001-4000-8000-0000000c0001", "2023-03-14T09:00:00.000Z"),
    DemoSite(DEMO_BLUEFIN_SITE_ID, "Bluefin Grill — Live Site",
             "de305173-0002-4000-8000-0000000c0002", "2023-06-01T12:30:00.000Z"),
    DemoSite(DEMO_CEDAR_SITE_ID, "Cedar Dental — Live Site",
             "de305173-0003-4000-8000-0000000c0003", "2024-01-22T15:45:00.000Z"),
)


class Endpoint(StrEnum):
    """The Wix API calls the sandbox serves; `fault_methods` names them."""

    CREATE_SITE = "create_site"
    QUERY_SITES = "query_sites"
    TRANSFER_SITE = "transfer_site"
    ACCOUNT_INVITE = "account_invite"
    SITE_INVITE_BULK = "site_invite_bulk"
    SITE_INVITE_RESEND = "site_invite_resend"
    SITE_INVITE_REVOKE = "site_invite_revoke"
    ROLES = "roles"
    CREATE_CONNECTED_DOMAIN = "create_connected_domain"
    GET_CONNECTED_DOMAIN = "get_connected_domain"
    LIST_CONNECTED_DOMAINS = "list_connected_domains"
    CONNECTED_DOMAIN_SETUP_INFO = "connected_domain_setup_info"
    GET_DNS_ZONE = "get_dns_zone"
    UPDATE_DNS_ZONE = "update_dns_zone"
    PREVIEW_DNS_ZONE = "preview_dns_zone"
    CHECK_DOMAIN_AVAILABILITY = "check_domain_availability"


@dataclass(frozen=True)
class SandboxConfig:
    """Identity of the fake Wix and the faults it injects. Change with `dataclasses.replace`.

    Identity:
      api_key: the only accepted `Authorization` value (raw, no `Bearer`). Never shown anywhere.
      account_id: the key's own account; sub_accounts: accounts the key may also act for.
      forbidden_transfer_targets: targets that answer 403 SITE_TRANSFER_NOT_ALLOWED.
      reject_domains: invitee e-mail domains that fail inside a 200 (partial success).
      domains_for_sale: domain names nobody owns yet (connect: 400, availability: available).
      restricted_tlds: TLDs refused for Wix sites (connect: 400, availability: 400).
      domains_permission: False: the key has no Domains scope; every connected-domain and
          DNS-zone call answers 403 DOMAINS_PERMISSION_DENIED.
      repeat_connect_conflicts: an identical repeated connect answers 409 instead of
          returning the existing connection (the contract allows both).
      demo_sites: a fresh world (not one loaded from the state file; again after
          /_sandbox/reset) starts with the live Premium sites of `DEMO_SITES` in `account_id`,
          so that the demo has sites to connect domains to. False: it starts empty.

    Faults (apply to authenticated, well-formed requests of the endpoints in `fault_methods`):
      rate_limit: (N, seconds): at most N requests per sliding window per key; every request
          with the valid key counts, including those answered 4xx, 5xx or 429. Past it: 429.
      retry_after: whether a 429 carries `Retry-After` (whole seconds until a slot frees).
      latency, latency_jitter: every API request is answered latency + uniform(0, jitter)
          seconds after it came (its handling included).
      error_rate: share answered 500/502/503/504 without the effect.
      throttle_rate: share answered 429 whatever the rate limit says, without the effect.
      drop_before_rate: share whose connection is closed without an answer, before the effect.
      drop_after_rate: share whose effect is applied, then the connection closed unanswered.
      slow_rate, slow_delay: share whose effect is applied and whose answer waits slow_delay.
      listing_lag: seconds before a new or transferred site shows in its owner's Query Sites.
      fault_methods: endpoints the random faults apply to (the rate limit applies to all).
      seed: seed of the fault draws, for repeatable runs.

    Persistence (of the world only: sites, listing, transfers, invites, e-mails sent, connected
    domains and DNS zones; request statistics and these options are not kept):
      state_file: None keeps the world in memory only. A path: the sandbox starts from the
          world saved there if the file exists (ConfigError if it is not sandbox state),
          rewrites it atomically after every request that changes the world, and on shutdown.
    """

    api_key: str = field(default=DEFAULT_API_KEY, repr=False)
    account_id: str = DEFAULT_ACCOUNT_ID
    sub_accounts: tuple[str, ...] = DEFAULT_SUB_ACCOUNTS
    forbidden_transfer_targets: frozenset[str] = frozenset()
    reject_domains: tuple[str, ...] = DEFAULT_REJECT_DOMAINS
    domains_for_sale: frozenset[str] = frozenset(DEFAULT_DOMAINS_FOR_SALE)
    restricted_tlds: frozenset[str] = frozenset(DEFAULT_RESTRICTED_TLDS)
    domains_permission: bool = True
    repeat_connect_conflicts: bool = False
    demo_sites: bool = False
    rate_limit: tuple[int, float] | None = None
    retry_after: bool = False
    latency: float = 0.0
    latency_jitter: float = 0.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    drop_before_rate: float = 0.0
    drop_after_rate: float = 0.0
    slow_rate: float = 0.0
    slow_delay: float = 0.0
    listing_lag: float = 0.0
    fault_methods: frozenset[Endpoint] = frozenset(Endpoint)
    seed: int | None = None
    state_file: Path | None = None

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ConfigError("sandbox api_key must not be empty")
        rates = [getattr(self, name) for name in _RATE_FIELDS]
        if any(not 0.0 <= rate <= 1.0 for rate in rates) or sum(rates) > 1.0 + 1e-9:
            raise ConfigError("fault rates must each be in [0, 1] and add up to at most 1")
        delays = [getattr(self, name) for name in _DELAY_FIELDS]
        if any(delay < 0 for delay in delays):
            raise ConfigError("sandbox delays must not be negative")
        if self.rate_limit is not None and (self.rate_limit[0] < 1 or self.rate_limit[1] <= 0):
            raise ConfigError("sandbox rate_limit must be (requests >= 1, window seconds > 0)")

    def actable_accounts(self) -> frozenset[str]:
        """Accounts the key may act for: its own and its sub-accounts."""
        return frozenset((self.account_id, *self.sub_accounts))


_RATE_FIELDS = ("error_rate", "throttle_rate", "drop_before_rate", "drop_after_rate", "slow_rate")
_DELAY_FIELDS = ("latency", "latency_jitter", "slow_delay", "listing_lag")


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("expected a number")
    return float(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected true or false")
    return value


def _seed(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("expected an integer or null")
    return value


def _rate_limit(value: Any) -> tuple[int, float] | None:
    if value is None:
        return None
    count, window = value
    return (int(count), _number(window))


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError("expected a list of strings")
    return value


# Options that may change while the sandbox runs (POST /_sandbox/config), each with its
# JSON-to-Python conversion. The identity (key, accounts) is fixed for the sandbox's life:
# changing it would orphan its state.
_COERCERS: dict[str, Callable[[Any], Any]] = {
    **dict.fromkeys((*_RATE_FIELDS, *_DELAY_FIELDS), _number),
    "retry_after": _flag,
    "seed": _seed,
    "rate_limit": _rate_limit,
    "fault_methods": lambda value: frozenset(Endpoint(item) for item in _strings(value)),
    "forbidden_transfer_targets": lambda value: frozenset(_strings(value)),
    "reject_domains": lambda value: tuple(_strings(value)),
    "domains_for_sale": lambda value: frozenset(v.lower() for v in _strings(value)),
    "restricted_tlds": lambda value: frozenset(v.lower() for v in _strings(value)),
    "domains_permission": _flag,
    "repeat_connect_conflicts": _flag,
}


def _coerce(name: str, value: Any) -> Any:
    """Turn one JSON value into the field's Python type; ConfigError if it has the wrong shape."""
    try:
        return _COERCERS[name](value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid value for sandbox option {name}: {value!r}") from exc


TUNABLE_FIELDS = frozenset(_COERCERS)


def apply_changes(config: SandboxConfig, changes: Mapping[str, Any]) -> SandboxConfig:
    """A new config with the tunable options in `changes` (JSON values) applied."""
    unknown = sorted(set(changes) - TUNABLE_FIELDS)
    if unknown:
        raise ConfigError(f"not a tunable sandbox option: {', '.join(unknown)}")
    return dataclasses.replace(config, **{k: _coerce(k, v) for k, v in changes.items()})


def public_view(config: SandboxConfig) -> dict[str, Any]:
    """The config as JSON, without the API key."""
    view: dict[str, Any] = {}
    for item in dataclasses.fields(config):
        if item.name == "api_key":
            continue
        value = getattr(config, item.name)
        if isinstance(value, frozenset):
            value = sorted(str(v) for v in value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Path):
            value = str(value)
        view[item.name] = value
    return view

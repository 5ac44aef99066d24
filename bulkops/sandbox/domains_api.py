"""Connected Domains and availability endpoints (wix-domains.md sections (a) and (c)).

Strict like Wix: a connection is refused for a site without Premium (403 NON_PREMIUM_SITE), for
a domain still for sale or on a restricted TLD (400 "Invalid domain"), for a wrong connection
type (400 "Invalid connection type") and for an existing connection with other settings (409
DOMAINS_ALREADY_EXISTS). A NAMESERVERS connection makes the sandbox host the domain's zone.

The sandbox's own choices where the contract is silent (each marked *inferred* there):
- the three label-only 400s carry codes INVALID_DOMAIN / INVALID_CONNECTION_TYPE and the
  label's words in the message ("available for purchase", "restricted", "connection type");
- an identical repeated connect returns the existing connection (409 with
  `repeat_connect_conflicts`);
- with `wix-site-id` and no `siteInfo.assignmentType`, the domain is a REDIRECT; without
  `wix-site-id` it is assigned to no site;
- PRIMARY unassigns the site's previous primary (site and assignment cleared);
- Setup Info for a domain that is not connected answers 404 NOT_FOUND;
- a domain connected by another account answers 403 DOMAINS_DOMAIN_NOT_PERMITTED to reads and
  409 to a connect.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from aiohttp import web

from bulkops.sandbox.config import SandboxConfig
from bulkops.sandbox.core import Sandbox
from bulkops.sandbox.inbound import ACCOUNT_HEADER, SITE_HEADER, read_object
from bulkops.sandbox.pipeline import Effect
from bulkops.sandbox.state import ConnectedDomain, ZoneRecord
from bulkops.sandbox.wire import ApiError, JsonObject, application_error, is_guid, validation_error

POINTING = "POINTING"
NAMESERVERS = "NAMESERVERS"
PRIMARY = "PRIMARY"
REDIRECT = "REDIRECT"
UNKNOWN_CONNECTION_TYPE = "UNKNOWN_CONNECTION_TYPE"
UNKNOWN_ASSIGNMENT_TYPE = "UNKNOWN_ASSIGNMENT_TYPE"
MAX_LIST_LIMIT = 100
DEFAULT_LIST_LIMIT = 50

WIX_NAME_SERVERS = ("ns0.wixdns.net", "ns1.wixdns.net")
POINTING_A_VALUES = ("185.230.63.107", "185.230.63.171", "185.230.63.186")
# The CNAME target of every connection (www of a pointing domain, a subdomain) and of a hosted
# zone's www: one value, so that a plan's zone preview and a run's Setup Info agree.
POINTING_CNAME = "pointing.wixdns.net"
SETUP_TTL = 3600
NS_TTL = 86400  # of Wix's name servers, in a zone and in Setup Info alike
REGISTRAR = {"name": "Sandbox Registrar",
             "nameServers": ["ns1.sandbox-registrar.invalid", "ns2.sandbox-registrar.invalid"]}

# Suffixes under which a name of three labels is still a root domain, not a subdomain.
_TWO_LABEL_SUFFIXES = frozenset({"co.uk", "org.uk", "com.au", "co.il", "com.br", "co.nz",
                                 "co.za", "co.jp"})
_DOMAIN_RE = re.compile(r"^(?=.{3,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


# -- shared checks -----------------------------------------------------------------------------


def domains_account(headers: Mapping[str, str], config: SandboxConfig, *,
                    gated: bool = True) -> str:
    """The `wix-account-id` of a domain call: 400 DOMAINS_GUID_NOT_VALID if absent or not a
    GUID, 403 DOMAINS_PERMISSION_DENIED if the key may not act for it or (when `gated`) the
    key has no Domains scope (`config.domains_permission` False)."""
    account = headers.get(ACCOUNT_HEADER)
    if not is_guid(account):
        raise application_error(400, "DOMAINS_GUID_NOT_VALID",
                                "wix-account-id is missing or not a valid id")
    assert account is not None
    if account not in config.actable_accounts() or (gated and not config.domains_permission):
        raise application_error(
            403, "DOMAINS_PERMISSION_DENIED", "the API key may not manage domains here",
            {"permissions": ["DOMAINS.READ_CONNECTED_DOMAINS", "DOMAINS.READ_DNS_ZONES"]})
    return account


def invalid_domain(reason: str) -> ApiError:
    return application_error(400, "INVALID_DOMAIN", f"Invalid domain: {reason}")


def checked_domain(value: Any) -> str:
    """A domain id as Wix takes it: lowercase ASCII, with its TLD, no trailing dot; else 400."""
    if not isinstance(value, str) or not _DOMAIN_RE.match(value):
        raise invalid_domain(f"{value!r} is not a lowercase domain name with its TLD")
    return value


def root_of(domain: str) -> str:
    labels = domain.split(".")
    keep = 3 if ".".join(labels[-2:]) in _TWO_LABEL_SUFFIXES else 2
    return ".".join(labels[-keep:])


def is_subdomain(domain: str) -> bool:
    return domain != root_of(domain)


def for_sale(sandbox: Sandbox, domain: str) -> bool:
    """Nobody owns the domain's root yet (and nobody connected it here)."""
    return root_of(domain) in sandbox.config.domains_for_sale and (
        domain not in sandbox.state.domains)


def restricted(sandbox: Sandbox, domain: str) -> bool:
    return domain.rsplit(".", 1)[1] in sandbox.config.restricted_tlds


def path_domain(request: web.Request) -> str:
    return checked_domain(request.match_info["domain"])


def owned_domain(sandbox: Sandbox, account: str, domain: str) -> ConnectedDomain:
    """The account's connection of `domain`: 404 NOT_FOUND if none, 403 if another's."""
    connected = sandbox.state.domains.get(domain)
    if connected is None:
        raise application_error(404, "NOT_FOUND", f"domain {domain} is not connected",
                                {"domain": domain})
    if connected.account_id != account:
        raise application_error(403, "DOMAINS_DOMAIN_NOT_PERMITTED",
                                "the domain is not allowed for this account", {"domain": domain})
    return connected


def domain_to_wix(sandbox: Sandbox, connected: ConnectedDomain) -> JsonObject:
    """ConnectedDomain as Wix shows it [types]."""
    site_info: JsonObject = {"assignmentType": connected.assignment_type}
    if connected.site_id is not None:
        site_info["id"] = connected.site_id
        primary = _primary_of(sandbox, connected.site_id)
        if connected.assignment_type == REDIRECT and primary is not None:
            site_info["redirectInfo"] = {"primaryDomain": primary}
    return {
        "id": connected.domain, "domain": connected.domain,
        "connectionType": connected.connection_type or UNKNOWN_CONNECTION_TYPE,
        "siteInfo": site_info, "suppressNotifications": connected.suppress_notifications,
        "dnsPropagationStatus": "IN_PROGRESS",
        "createdDate": connected.created_date, "updatedDate": connected.updated_date,
    }


def _primary_of(sandbox: Sandbox, site_id: str) -> str | None:
    return next((d.domain for d in sandbox.state.site_domains(site_id)
                 if d.assignment_type == PRIMARY), None)


def default_zone(domain: str) -> list[ZoneRecord]:
    """The zone Wix calculates for a domain: NS, SOA, the apex A and www CNAME (the same A and
    CNAME values Setup Info gives for a pointing connection, so that a plan's preview and a
    run's report name the same records)."""
    soa = f"{WIX_NAME_SERVERS[0]}. support.wix.com. 1 10800 3600 604800 3600"
    return [
        ZoneRecord("NS", domain, NS_TTL, WIX_NAME_SERVERS),
        ZoneRecord("SOA", domain, 3600, (soa,)),
        ZoneRecord("A", domain, 3600, POINTING_A_VALUES),
        ZoneRecord("CNAME", f"www.{domain}", 3600, (POINTING_CNAME,)),
    ]


# -- Create Connected Domain ---------------------------------------------------------------------


def _site_header(headers: Mapping[str, str]) -> str | None:
    site_id = headers.get(SITE_HEADER)
    if site_id is None:
        return None
    if not is_guid(site_id):
        raise application_error(400, "DOMAINS_GUID_NOT_VALID", "wix-site-id is not a valid id")
    return site_id


def _connection_type(connected: JsonObject, domain: str) -> str | None:
    """400 "Invalid connection type" unless: none for a subdomain, POINTING or NAMESERVERS for
    a root domain."""
    given = connected.get("connectionType")
    if is_subdomain(domain):
        if given is not None:
            raise application_error(400, "INVALID_CONNECTION_TYPE",
                                    "Invalid connection type: omit it for a subdomain")
        return None
    if given not in (POINTING, NAMESERVERS):
        raise application_error(
            400, "INVALID_CONNECTION_TYPE",
            "Invalid connection type: a root domain takes POINTING or NAMESERVERS")
    return str(given)


def _assignment(connected: JsonObject, site_id: str | None) -> str:
    site_info = connected.get("siteInfo", {})
    if not isinstance(site_info, dict):
        raise validation_error("connectedDomain.siteInfo", "must be an object")
    given = site_info.get("assignmentType")
    if given is not None and given not in (PRIMARY, REDIRECT):
        raise validation_error("connectedDomain.siteInfo.assignmentType",
                               "PRIMARY or REDIRECT")
    if site_id is None:
        return UNKNOWN_ASSIGNMENT_TYPE
    return str(given or REDIRECT)


def _check_connect(sandbox: Sandbox, account: str, site_id: str | None, domain: str) -> None:
    """The state-dependent refusals of a connect, in this order: site, Premium, TLD, sale."""
    if site_id is not None:
        site = sandbox.state.sites.get(site_id)
        if site is None or site.owner_account_id != account:
            raise application_error(403, "DOMAINS_GUID_NOT_FOUND",
                                    "no such site in this account", {"siteId": site_id})
        if not site.premium:
            raise application_error(403, "NON_PREMIUM_SITE",
                                    "the site is free: add a Premium plan first",
                                    {"siteId": site_id})
    if restricted(sandbox, domain):
        raise invalid_domain(f"the TLD of {domain} is restricted for Wix sites")
    if for_sale(sandbox, domain):
        raise invalid_domain(f"{domain} is still available for purchase")


def _connect(sandbox: Sandbox, wanted: ConnectedDomain) -> JsonObject:
    existing = sandbox.state.domains.get(wanted.domain)
    if existing is not None:
        same = (existing.account_id, existing.site_id, existing.connection_type,
                existing.assignment_type) == (wanted.account_id, wanted.site_id,
                                              wanted.connection_type, wanted.assignment_type)
        if same and not sandbox.config.repeat_connect_conflicts:
            return {"connectedDomain": domain_to_wix(sandbox, existing)}
        raise application_error(
            409, "DOMAINS_ALREADY_EXISTS",
            "the domain is already connected with different settings", {"domain": wanted.domain})
    if wanted.assignment_type == PRIMARY and wanted.site_id is not None:
        for old in sandbox.state.site_domains(wanted.site_id):
            if old.assignment_type == PRIMARY:
                sandbox.state.put_domain(replace(old, site_id=None,
                                                 assignment_type=UNKNOWN_ASSIGNMENT_TYPE,
                                                 updated_date=wanted.created_date))
    sandbox.state.put_domain(wanted)
    if wanted.connection_type == NAMESERVERS:
        sandbox.state.put_zone(wanted.domain, default_zone(wanted.domain))
    return {"connectedDomain": domain_to_wix(sandbox, wanted)}


async def prepare_create_connected_domain(request: web.Request, sandbox: Sandbox) -> Effect:
    """POST /domains/v1/connected-domains; `wix-site-id` (optional) chooses the site."""
    account = domains_account(request.headers, sandbox.config)
    site_id = _site_header(request.headers)
    body = await read_object(request)
    connected = body.get("connectedDomain")
    if not isinstance(connected, dict) or "domain" not in connected:
        raise validation_error("connectedDomain.domain", "is required")
    domain = checked_domain(connected["domain"])
    connection_type = _connection_type(connected, domain)
    assignment = _assignment(connected, site_id)
    suppress = connected.get("suppressNotifications", False)
    if not isinstance(suppress, bool):
        raise validation_error("connectedDomain.suppressNotifications", "must be true or false")

    def connect() -> JsonObject:
        _check_connect(sandbox, account, site_id, domain)
        now = sandbox.now_iso()
        return _connect(sandbox, ConnectedDomain(domain, account, site_id, connection_type,
                                                 assignment, suppress, now, now))

    return connect


# -- Get / List / Setup Info ---------------------------------------------------------------------


async def prepare_get_connected_domain(request: web.Request, sandbox: Sandbox) -> Effect:
    """GET /domains/v1/connected-domains/{domain}: 404 NOT_FOUND when not connected."""
    account = domains_account(request.headers, sandbox.config)
    domain = path_domain(request)

    def get() -> JsonObject:
        return {"connectedDomain": domain_to_wix(sandbox, owned_domain(sandbox, account, domain))}

    return get


def _limit(request: web.Request) -> int:
    raw = request.query.get("paging.limit")
    if raw is None:
        return DEFAULT_LIST_LIMIT
    if not raw.isdigit() or int(raw) > MAX_LIST_LIMIT:
        raise validation_error("paging.limit", f"an integer from 0 to {MAX_LIST_LIMIT}")
    return int(raw) or DEFAULT_LIST_LIMIT


def _after(request: web.Request) -> tuple[str, str] | None:
    """The keyset position a cursor carries: (createdDate, domain) of the last one shown."""
    raw = request.query.get("paging.cursor")
    if raw is None:
        return None
    try:
        created, domain = json.loads(base64.urlsafe_b64decode(raw.encode()))
        return str(created), str(domain)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise validation_error("paging.cursor", "not a cursor this listing gave") from exc


def _cursor(connected: ConnectedDomain) -> str:
    raw = json.dumps([connected.created_date, connected.domain]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _first_after(mine: list[ConnectedDomain], after: tuple[str, str]) -> int:
    """Where the page after the keyset position `after` starts in `mine` (newest first, ties
    by domain name): by binary search."""
    created, name = after
    low, high = 0, len(mine)
    while low < high:
        middle = (low + high) // 2
        domain = mine[middle]
        if domain.created_date < created or (domain.created_date == created
                                             and domain.domain > name):
            high = middle
        else:
            low = middle + 1
    return low


async def prepare_list_connected_domains(request: web.Request, sandbox: Sandbox) -> Effect:
    """GET /domains/v1/connected-domains?paging.limit=..&paging.cursor=..: newest first.

    Keyset paging (as Query Sites): a domain connected while a client pages never shifts the
    later pages.
    """
    account = domains_account(request.headers, sandbox.config)
    limit, after = _limit(request), _after(request)

    def listing() -> JsonObject:
        mine = sandbox.listings.connected_domains(sandbox.state, account)
        start = 0 if after is None else _first_after(mine, after)
        page, more = mine[start:start + limit], len(mine) > start + limit
        return {
            "connectedDomains": [domain_to_wix(sandbox, d) for d in page],
            "pagingMetadata": {"count": len(page),
                               "cursors": {"next": _cursor(page[-1]) if more else None,
                                           "prev": None},
                               "hasNext": more},
        }

    return listing


def _setup_info(connected: ConnectedDomain) -> JsonObject:
    domain = connected.domain
    info: JsonObject = {"connectedDomainId": domain, "registrar": REGISTRAR}
    if connected.connection_type == NAMESERVERS:
        info["nameserverRecord"] = {"nsRecord": {"hostName": domain, "ttl": NS_TTL,
                                                 "values": list(WIX_NAME_SERVERS)}}
    elif connected.connection_type is None:
        info["subdomainRecords"] = {"cnameRecords": [
            {"hostName": domain, "ttl": SETUP_TTL, "value": POINTING_CNAME}]}
    else:
        info["pointingRecords"] = {
            "aRecord": {"hostName": domain, "ttl": SETUP_TTL, "values": list(POINTING_A_VALUES)},
            "cnameRecord": {"hostName": f"www.{domain}", "ttl": SETUP_TTL,
                            "value": POINTING_CNAME},
        }
    return {"connectedDomainSetupInfo": info}


async def prepare_setup_info(request: web.Request, sandbox: Sandbox) -> Effect:
    """GET /domains/v1/connected-domain-setup-info/{domain}: the registrar records."""
    account = domains_account(request.headers, sandbox.config)
    domain = path_domain(request)

    def setup_info() -> JsonObject:
        return _setup_info(owned_domain(sandbox, account, domain))

    return setup_info


# -- Check Domain Availability (c) ---------------------------------------------------------------


async def prepare_availability(request: web.Request, sandbox: Sandbox) -> Effect:
    """GET /domain-search/v2/check-domain-availability?domain=..: available = for sale.

    Not gated by `domains_permission`: it needs another scope (DOMAINS.PUBLIC_API_PERMISSION).
    """
    domains_account(request.headers, sandbox.config, gated=False)
    raw = request.query.get("domain")
    if raw is None or not 3 <= len(raw) <= 63 or not _DOMAIN_RE.match(raw):
        raise application_error(400, "INVALID_DOMAIN",
                                "the root domain could not be extracted or the TLD is invalid")
    if restricted(sandbox, raw):
        raise application_error(400, "DOMAINS_UNSUPPORTED_TLD", "this TLD is not supported")

    def availability() -> JsonObject:
        return {"availability": {"domain": raw, "available": for_sale(sandbox, raw),
                                 "premium": False, "premiumType": "UNKNOWN_PREMIUM_TYPE"}}

    return availability

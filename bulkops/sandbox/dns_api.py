"""Domain DNS endpoints: get, update and preview a zone (wix-domains.md section (b)).

Zones exist only for NAMESERVERS-connected domains (404 DNS_ZONE_NOT_FOUND otherwise). An
update holds at most 10 additions and 10 deletions, never touches NS or SOA, names records by
their full hostName under the domain, and is all or nothing.

The sandbox's own choices where the contract is silent:
- the statusless [wix-skill] codes (DOMAIN_DUPLICATE_RECORDS, DOMAIN_UPDATE_EMPTY_UPDATE_REQUEST,
  INVALID_NS_RECORD) answer 428, like the documented DOMAIN_* table;
- a deletion must match an existing record's (type, hostName) and values exactly, else 428
  DOMAIN_DNS_RECORD_NOT_FOUND (undocumented code; [3p] says deletions match on exact values);
- more than 10 additions or deletions, an unknown type, `@` or a host outside the domain: 400
  validationError;
- `dnssecEnabled` is accepted (a boolean) and ignored: DNSSEC is not modelled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bulkops.sandbox.core import Sandbox
from bulkops.sandbox.domains_api import default_zone, domains_account, path_domain
from bulkops.sandbox.inbound import read_object
from bulkops.sandbox.pipeline import Effect
from bulkops.sandbox.state import ZoneRecord
from bulkops.sandbox.wire import ApiError, JsonObject, application_error, validation_error

MAX_ADDITIONS = 10
MAX_DELETIONS = 10
MAX_VALUES = 50
MAX_ZONE_RECORDS = 5000
DEFAULT_TTL = 3600
WRITABLE_TYPES = frozenset({"A", "AAAA", "CNAME", "MX", "TXT", "SPF", "SRV", "PTR", "NAPTR"})
READ_ONLY_TYPES = frozenset({"NS", "SOA"})
_MX_RE = re.compile(r"^\d{1,5} [a-z0-9.-]+\.?$", re.I)
# Record names may hold underscores (`_dmarc`, `_sip._tcp`), unlike domain names.
_HOST_RE = re.compile(r"^([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9-]+\.[a-z]{2,63}$")


def zone_to_wix(domain: str, records: list[ZoneRecord]) -> JsonObject:
    return {"dnsZone": {"id": domain, "domainName": domain,
                        "records": [r.to_wix() for r in records], "dnssecEnabled": False}}


def _hosted_zone(sandbox: Sandbox, account: str, domain: str) -> list[ZoneRecord]:
    """The account's hosted zone of `domain`: 428 DOMAIN_NOT_PERMITTED if another account
    holds the domain, 404 DNS_ZONE_NOT_FOUND if Wix hosts no zone (e.g. POINTING)."""
    connected = sandbox.state.domains.get(domain)
    if connected is not None and connected.account_id != account:
        raise application_error(428, "DOMAIN_NOT_PERMITTED",
                                "the domain is not in this account", {"domain": domain})
    records = sandbox.state.zones.get(domain)
    if connected is None or records is None:
        raise application_error(404, "DNS_ZONE_NOT_FOUND", f"Wix hosts no DNS zone for {domain}",
                                {"domain": domain})
    return records


async def prepare_get_dns_zone(request: web.Request, sandbox: Sandbox) -> Effect:
    """GET /domains/v1/dns-zones/{domain}: the whole zone, no paging."""
    account = domains_account(request.headers, sandbox.config)
    domain = path_domain(request)

    def get() -> JsonObject:
        return zone_to_wix(domain, _hosted_zone(sandbox, account, domain))

    return get


async def prepare_preview_dns_zone(request: web.Request, sandbox: Sandbox) -> Effect:
    """GET /domains/v1/dns-zones/{domain}/preview: the zone Wix would calculate (A, CNAME, NS,
    SOA), for any domain, connected or not."""
    domains_account(request.headers, sandbox.config)
    domain = path_domain(request)

    def preview() -> JsonObject:
        return zone_to_wix(domain, default_zone(domain))

    return preview


# -- Update DNS Zone -------------------------------------------------------------------------


def _dns_error(code: str, message: str, record: JsonObject | None = None) -> ApiError:
    return application_error(428, code, message, {"record": record} if record else None)


def _host(value: Any, domain: str, where: str) -> str:
    """A full, lowercase record name: the domain or a name under it (`@` is refused)."""
    if not isinstance(value, str) or not value:
        raise validation_error(f"{where}.hostName", "is required")
    if not _HOST_RE.match(value) or (value != domain and not value.endswith("." + domain)):
        raise validation_error(f"{where}.hostName",
                               f"must be the full name: {domain} or a name under it")
    return value


def _values(raw: JsonObject, where: str) -> tuple[str, ...]:
    values = raw.get("values")
    if values is None or values == []:
        raise _dns_error("DOMAIN_DNS_EMPTY_RECORD_VALUE", "a record has no values", raw)
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise validation_error(f"{where}.values", "must be a list of non-empty strings")
    if len(values) > MAX_VALUES:
        raise validation_error(f"{where}.values", f"at most {MAX_VALUES} values per record")
    return tuple(values)


def _ttl(raw: JsonObject, where: str) -> int:
    ttl = raw.get("ttl", DEFAULT_TTL)
    if isinstance(ttl, str) and ttl.isdigit():  # int64 may travel as a string
        ttl = int(ttl)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
        raise validation_error(f"{where}.ttl", "a whole number of seconds")
    return ttl


def _record(raw: Any, domain: str, where: str) -> ZoneRecord:
    """One addition or deletion, checked as Wix does."""
    if not isinstance(raw, dict):
        raise validation_error(where, "must be a DNS record object")
    kind = raw.get("type")
    if kind in READ_ONLY_TYPES:
        raise _dns_error("INVALID_NS_RECORD", f"{kind} records cannot be changed", raw)
    if kind not in WRITABLE_TYPES:
        raise validation_error(f"{where}.type", "a DNS record type (A, AAAA, CNAME, MX, ...)")
    host = raw.get("hostName")
    if kind == "CNAME" and isinstance(host, str) and (
            host == domain or not host.endswith("." + domain)):
        raise _dns_error("DOMAIN_CNAME_RECORD_HOSTNAME_INVALID",
                         "a CNAME's hostName must be under the domain, not the domain", raw)
    record = ZoneRecord(str(kind), _host(raw.get("hostName"), domain, where),
                        _ttl(raw, where), _values(raw, where))
    if kind == "MX" and not all(_MX_RE.match(v) for v in record.values):
        raise _dns_error("DOMAIN_MX_RECORD_VALUE_INVALID",
                         'MX values are "<priority> <server>"', raw)
    return record


def _records(body: JsonObject, key: str, limit: int, domain: str) -> list[ZoneRecord]:
    raw = body.get(key, [])
    if not isinstance(raw, list):
        raise validation_error(key, "must be a list of DNS records")
    if len(raw) > limit:
        raise validation_error(key, f"at most {limit} per call")
    records = [_record(item, domain, f"{key}[{i}]") for i, item in enumerate(raw)]
    keys = [r.key for r in records]
    if len(set(keys)) != len(keys):
        # The documented table reuses this code for "the same type and host twice".
        raise _dns_error("DOMAIN_MX_RECORD_VALUE_INVALID",
                         "multiple records with the same type and hostName")
    return records


@dataclass(frozen=True)
class ZoneUpdate:
    additions: list[ZoneRecord]
    deletions: list[ZoneRecord]

    def applied_to(self, zone: list[ZoneRecord]) -> list[ZoneRecord]:
        """The zone after this update; raises (changing nothing) if any part does not fit."""
        by_key = {r.key: r for r in zone}
        for gone in self.deletions:
            present = by_key.get(gone.key)
            if present is None or set(present.values) != set(gone.values):
                raise _dns_error("DOMAIN_DNS_RECORD_NOT_FOUND",
                                 "a deletion matches no record with exactly those values",
                                 gone.to_wix())
            del by_key[gone.key]
        for added in self.additions:
            if added.key in by_key:
                raise _dns_error("DOMAIN_DUPLICATE_RECORDS",
                                 "a record with this type and hostName already exists",
                                 added.to_wix())
            by_key[added.key] = added
        if len(by_key) > MAX_ZONE_RECORDS:
            raise _dns_error("DOMAIN_ZONE_TOO_LARGE", f"a zone holds at most {MAX_ZONE_RECORDS}")
        return list(by_key.values())


async def prepare_update_dns_zone(request: web.Request, sandbox: Sandbox) -> Effect:
    """PATCH /domains/v1/dns-zones/{domain}: `{"additions": [...], "deletions": [...]}`."""
    account = domains_account(request.headers, sandbox.config)
    domain = path_domain(request)
    body = await read_object(request)
    if not isinstance(body.get("dnssecEnabled", False), bool):
        raise validation_error("dnssecEnabled", "must be true or false")
    update = ZoneUpdate(_records(body, "additions", MAX_ADDITIONS, domain),
                        _records(body, "deletions", MAX_DELETIONS, domain))
    if not update.additions and not update.deletions:
        raise _dns_error("DOMAIN_UPDATE_EMPTY_UPDATE_REQUEST", "nothing to change")

    def apply() -> JsonObject:
        zone = update.applied_to(_hosted_zone(sandbox, account, domain))
        return zone_to_wix(domain, sandbox.state.put_zone(domain, zone))

    return apply

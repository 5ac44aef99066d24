"""The Wix Domains wire format without the wire: domain ids, request parts, response parsing.

Pure functions over JSON values (no I/O), so every rule of `wix-domains.md` is unit-tested on
its own; `bulkops.wix` sends what this module builds. Section names in the docstrings are the
contract's: (a) Connected Domains, (b) Domain DNS, (c) Domain Search.

Every point the contract marks *inferred* lives in the one section "Inferred" below, and each
parser there accepts the documented alternative as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any
from urllib.parse import urlencode

from bulkops.jsonvalues import items as _list
from bulkops.jsonvalues import mapping as _mapping
from bulkops.jsonvalues import text as _text
from bulkops.wixwire import invalid_response, next_cursor

# -- Paths (contract sections (a), (b), (c)) ------------------------------------------------

CONNECTED_DOMAINS_PATH = "/domains/v1/connected-domains"
SETUP_INFO_PATH = "/domains/v1/connected-domain-setup-info"
DNS_ZONES_PATH = "/domains/v1/dns-zones"
AVAILABILITY_PATH = "/domain-search/v2/check-domain-availability"

# -- Limits [types] ---------------------------------------------------------------------------

MAX_CONNECTED_DOMAINS_PAGE = 100  # List Connected Domains: paging.limit 0..100
MAX_ZONE_ADDITIONS = 10  # Update DNS Zone: at most 10 additions and 10 deletions per call
MAX_ZONE_DELETIONS = 10
MAX_RECORD_VALUES = 50  # DnsRecord.values
_MAX_DOMAIN_CHARS = 253
_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

# -- Error codes the contract documents (status in the comment) --------------------------------

NOT_FOUND = "NOT_FOUND"  # 404 Get Connected Domain: not connected (an answer, not a failure)
DOMAINS_ALREADY_EXISTS = "DOMAINS_ALREADY_EXISTS"  # 409 create: connected with other settings
NON_PREMIUM_SITE = "NON_PREMIUM_SITE"  # 403 create: the site has no Premium plan
DOMAINS_PERMISSION_DENIED = "DOMAINS_PERMISSION_DENIED"  # 403: the key lacks the scope (job)
DOMAINS_DOMAIN_NOT_PERMITTED = "DOMAINS_DOMAIN_NOT_PERMITTED"  # 403: not this account's
DOMAINS_GUID_NOT_FOUND = "DOMAINS_GUID_NOT_FOUND"  # 403: no such account (job)
DOMAINS_GUID_NOT_VALID = "DOMAINS_GUID_NOT_VALID"  # 400: malformed site/account id
INVALID_DOMAINS_PREVIEW_RECORDS = "INVALID_DOMAINS_PREVIEW_RECORDS"  # 403
DNS_ZONE_NOT_FOUND = "DNS_ZONE_NOT_FOUND"  # 404: Wix hosts no zone for the domain
DOMAIN_NOT_PERMITTED = "DOMAIN_NOT_PERMITTED"  # 428 zone update
DOMAIN_DNS_EMPTY_RECORD_VALUE = "DOMAIN_DNS_EMPTY_RECORD_VALUE"  # 428
DOMAIN_MX_RECORD_VALUE_INVALID = "DOMAIN_MX_RECORD_VALUE_INVALID"  # 428 (also: duplicate pair)
DOMAIN_CNAME_RECORD_HOSTNAME_INVALID = "DOMAIN_CNAME_RECORD_HOSTNAME_INVALID"  # 428
DOMAIN_DUPLICATE_RECORDS = "DOMAIN_DUPLICATE_RECORDS"  # [wix-skill], no status documented
DOMAIN_UPDATE_EMPTY_UPDATE_REQUEST = "DOMAIN_UPDATE_EMPTY_UPDATE_REQUEST"  # [wix-skill]
INVALID_NS_RECORD = "INVALID_NS_RECORD"  # [wix-skill]: NS cannot be changed this way
USER_ID_NOT_FOUND = "USER_ID_NOT_FOUND"  # 404: bad authorization (job)
TARGET_ACCOUNT_NOT_FOUND = "TARGET_ACCOUNT_NOT_FOUND"  # 404: bad wix-account-id (job)
INVALID_DOMAIN = "INVALID_DOMAIN"  # 400 availability: no root domain / bad TLD
DOMAINS_UNSUPPORTED_TLD = "DOMAINS_UNSUPPORTED_TLD"  # 400 availability [wix-skill]


# Refusals that no row can fix: the key or the account, for every domain call (wix-domains.md,
# "Final for the whole job"), with what to do.
JOB_FAULT_CODES: Mapping[str, str] = MappingProxyType({
    DOMAINS_PERMISSION_DENIED: ("the API key lacks the Manage Domains permission: add it in "
                                "the API Keys Manager"),
    DOMAINS_GUID_NOT_FOUND: "Wix knows no such account: check WIX_ACCOUNT_ID",
    USER_ID_NOT_FOUND: "the authorization is bad or missing: check WIX_API_KEY",
    TARGET_ACCOUNT_NOT_FOUND: "the wix-account-id is bad or missing: check WIX_ACCOUNT_ID",
})


class ConnectionType(StrEnum):
    """`connectionType` [types]. A subdomain is created without one and reads back UNKNOWN."""

    UNKNOWN = "UNKNOWN_CONNECTION_TYPE"
    POINTING = "POINTING"
    NAMESERVERS = "NAMESERVERS"
    HIDDEN = "HIDDEN"  # internal invisible subdomains; treat like POINTING


class AssignmentType(StrEnum):
    """`siteInfo.assignmentType` [types]."""

    UNKNOWN = "UNKNOWN_ASSIGNMENT_TYPE"
    PRIMARY = "PRIMARY"
    REDIRECT = "REDIRECT"


# Record types that may be written [types] (`UNKNOWN` may not); NS and SOA are read-only for
# bulkops: the contract's tool rules refuse them, and Wix answers INVALID_NS_RECORD.
RECORD_TYPES = frozenset({"A", "AAAA", "NS", "SOA", "CNAME", "MX", "TXT", "SPF", "SRV", "PTR",
                          "NAPTR"})
READ_ONLY_RECORD_TYPES = frozenset({"NS", "SOA"})


@dataclass(frozen=True)
class ConnectedDomain:
    """A `ConnectedDomain` [types]; enum fields kept as sent (an unknown value is not an error)."""

    id: str  # = domain
    domain: str
    connection_type: str  # ConnectionType value; UNKNOWN_CONNECTION_TYPE when absent
    site_id: str | None  # siteInfo.id; None: assigned to no site
    assignment_type: str  # AssignmentType value; UNKNOWN_ASSIGNMENT_TYPE when absent
    primary_domain: str | None  # siteInfo.redirectInfo.primaryDomain, for redirects
    suppress_notifications: bool
    dns_propagation_status: str | None  # IN_PROGRESS | COMPLETED | FAILED | UNKNOWN_...
    created_date: str | None
    updated_date: str | None


@dataclass(frozen=True)
class ConnectedDomainsPage:
    domains: list[ConnectedDomain]
    next_cursor: str | None  # None: last page


@dataclass(frozen=True)
class DnsRecord:
    """`DnsRecord` [types]: one object per (type, hostName); `host_name` is the full name."""

    type: str
    host_name: str
    values: tuple[str, ...]
    ttl: int | None = None  # None: not sent (Wix's default applies)

    @property
    def key(self) -> tuple[str, str]:
        """The pair that identifies a record in a zone [doc]."""
        return (self.type.upper(), self.host_name)


@dataclass(frozen=True)
class DnsZone:
    """`DnsZone` [types]; the whole zone, no paging."""

    id: str
    domain_name: str
    records: tuple[DnsRecord, ...]
    dnssec_enabled: bool

    def record(self, type: str, host_name: str) -> DnsRecord | None:
        key = (type.upper(), host_name)
        return next((r for r in self.records if r.key == key), None)


@dataclass(frozen=True)
class SetupInfo:
    """`connectedDomainSetupInfo` [types]: what the client must set at their registrar.

    `kind` says which of the three exclusive parts was present: "NAMESERVERS" (records: one
    NS), "POINTING" (an A and a CNAME), "SUBDOMAIN" (CNAMEs). Each record is a DnsRecord with
    `type` filled in, the CNAME's singular `value` as a one-item `values`.
    """

    connected_domain_id: str
    kind: str
    records: tuple[DnsRecord, ...]
    registrar_name: str | None
    registrar_name_servers: tuple[str, ...]


@dataclass(frozen=True)
class Availability:
    """`availability` (section (c)). `premium` is the name's price tier, not a site plan."""

    domain: str
    available: bool
    premium: bool
    premium_type: str | None  # [wix-skill]


# ---------------------------------------------------------------------------------------------
# Domain ids ("Common rules": the id is the domain name)


def domain_id(text: str) -> str:
    """`text` as the contract's domain id: lowercase ASCII, no trailing dot, with a TLD.

    Also drops a leading `www.` (see INFERRED_STRIP_WWW). ValueError, before anything is
    sent, for non-ASCII (IDN handling is unknown: write the name's ASCII `xn--` form) and for
    anything that is not a host name with at least two labels.
    """
    name = text.strip().rstrip(".").lower()
    if not name.isascii():
        raise ValueError(f"{text!r} is not ASCII: write the domain in its ASCII (xn--) form")
    if INFERRED_STRIP_WWW and name.startswith("www.") and name.count(".") >= 2:
        name = name[4:]
    labels = name.split(".")
    if (len(name) > _MAX_DOMAIN_CHARS or len(labels) < 2
            or not all(_LABEL_RE.match(label) for label in labels)
            or labels[-1].isdigit()):
        raise ValueError(f"{text!r} is not a domain name with its TLD (e.g. client.com)")
    return name


def domain_path(base: str, domain: str, suffix: str = "") -> str:
    """`<base>/<domain id><suffix>`; plain ASCII names need no percent-encoding [doc]."""
    return f"{base}/{domain_id(domain)}{suffix}"


def query_string(params: Mapping[str, Any]) -> str:
    """GET options as `?a.b=1&tlds=com&tlds=net` ("Common rules": nested names flattened by
    dots, arrays as repeated keys); None values are left out; '' when nothing is left."""
    pairs: list[tuple[str, str]] = []
    _flatten("", params, pairs)
    return "?" + urlencode(pairs) if pairs else ""


def _flatten(prefix: str, value: Any, pairs: list[tuple[str, str]]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, pairs)
    elif isinstance(value, list | tuple):
        for item in value:
            _flatten(prefix, item, pairs)
    elif isinstance(value, bool):
        pairs.append((prefix, "true" if value else "false"))
    elif value is not None:
        pairs.append((prefix, str(value)))


# ---------------------------------------------------------------------------------------------
# Request bodies and query strings


def create_connected_domain_body(
    domain: str,
    connection_type: ConnectionType | None,
    assignment_type: AssignmentType | None,
    suppress_notifications: bool,
) -> dict[str, Any]:
    """(a) Create Connected Domain: `{"connectedDomain": {...}}`.

    `connection_type` None for a subdomain (any value is a 400 "Invalid connection type");
    for a root domain only POINTING or NAMESERVERS. `connectedByEntri` is never sent.
    """
    if connection_type not in (None, ConnectionType.POINTING, ConnectionType.NAMESERVERS):
        raise ValueError("connection_type must be POINTING, NAMESERVERS or None (subdomain)")
    connected: dict[str, Any] = {"domain": domain_id(domain)}
    if connection_type is not None:
        connected["connectionType"] = connection_type.value
    if assignment_type is not None:
        if assignment_type is AssignmentType.UNKNOWN:
            raise ValueError("assignment_type must be PRIMARY or REDIRECT")
        connected["siteInfo"] = {"assignmentType": assignment_type.value}
    connected["suppressNotifications"] = suppress_notifications
    return {"connectedDomain": connected}


def list_connected_domains_query(limit: int, cursor: str | None) -> str:
    """(a) List Connected Domains: `?paging.limit=<n>[&paging.cursor=<c>]`."""
    if not 1 <= limit <= MAX_CONNECTED_DOMAINS_PAGE:
        raise ValueError(f"limit must be 1..{MAX_CONNECTED_DOMAINS_PAGE}, got {limit}")
    return query_string({"paging": {"limit": limit, "cursor": cursor}})


def availability_query(domain: str) -> str:
    """(c) Check Domain Availability: `?domain=<name with TLD>`."""
    return query_string({"domain": domain_id(domain)})


def record_to_wire(record: DnsRecord) -> dict[str, Any]:
    """A DnsRecord as sent: `{"type", "hostName", "ttl"?, "values"}`."""
    wire: dict[str, Any] = {"type": record.type.upper(), "hostName": record.host_name}
    if record.ttl is not None:
        wire["ttl"] = record.ttl
    wire["values"] = list(record.values)
    return wire


def update_dns_zone_body(
    additions: Sequence[DnsRecord], deletions: Sequence[DnsRecord]
) -> dict[str, Any]:
    """(b) Update DNS Zone: `{"additions": [...], "deletions": [...]}`.

    ValueError before sending: more than 10 of either, nothing at all, an NS/SOA or unknown
    type, an empty host or values, more than 50 values. `dnssecEnabled` is never sent: it
    switches DNSSEC for the whole zone.
    """
    if len(additions) > MAX_ZONE_ADDITIONS or len(deletions) > MAX_ZONE_DELETIONS:
        raise ValueError(f"at most {MAX_ZONE_ADDITIONS} additions and {MAX_ZONE_DELETIONS} "
                         "deletions per zone update")
    if not additions and not deletions:
        raise ValueError("a zone update needs at least one addition or deletion")
    for record in (*additions, *deletions):
        _check_writable(record)
    return {"additions": [record_to_wire(r) for r in additions],
            "deletions": [record_to_wire(r) for r in deletions]}


def _check_writable(record: DnsRecord) -> None:
    kind = record.type.upper()
    if kind not in RECORD_TYPES:
        raise ValueError(f"unknown DNS record type {record.type!r}")
    if kind in READ_ONLY_RECORD_TYPES:
        raise ValueError(f"{kind} records cannot be changed")
    if not record.host_name or not record.values:
        raise ValueError("a DNS record needs a hostName and at least one value")
    if len(record.values) > MAX_RECORD_VALUES:
        raise ValueError(f"at most {MAX_RECORD_VALUES} values per DNS record")


# ---------------------------------------------------------------------------------------------
# Response bodies


def parse_connected_domain(body: Mapping[str, Any]) -> ConnectedDomain:
    """`{"connectedDomain": ConnectedDomain}` (create, get)."""
    return _connected_domain(body.get("connectedDomain"))


def _connected_domain(raw: Any) -> ConnectedDomain:
    data = _mapping(raw)
    domain = _text(data.get("domain")) or _text(data.get("id"))
    if not domain:
        raise invalid_response("a connected domain has neither domain nor id")
    site = _mapping(data.get("siteInfo"))
    return ConnectedDomain(
        id=_text(data.get("id")) or domain,
        domain=domain,
        connection_type=_text(data.get("connectionType")) or ConnectionType.UNKNOWN.value,
        site_id=_site_id(site),
        assignment_type=_text(site.get("assignmentType")) or AssignmentType.UNKNOWN.value,
        primary_domain=_text(_mapping(site.get("redirectInfo")).get("primaryDomain")),
        suppress_notifications=data.get("suppressNotifications") is True,
        dns_propagation_status=_text(data.get("dnsPropagationStatus")),
        created_date=_text(data.get("createdDate")),
        updated_date=_text(data.get("updatedDate")),
    )


def parse_connected_domains_page(body: Mapping[str, Any]) -> ConnectedDomainsPage:
    """`{"connectedDomains": [...], "pagingMetadata": {"cursors": {"next"}, "hasNext"}}`."""
    domains = [_connected_domain(d) for d in _list(body.get("connectedDomains"))]
    return ConnectedDomainsPage(domains, next_cursor(_paging_metadata(body), "connected domains"))


def parse_setup_info(body: Mapping[str, Any]) -> SetupInfo:
    """`{"connectedDomainSetupInfo": {...}}`: exactly one of nameserverRecord, pointingRecords,
    subdomainRecords [types]; none of them is INVALID_RESPONSE (nothing to tell the client)."""
    info = _mapping(body.get("connectedDomainSetupInfo"))
    domain = _text(info.get("connectedDomainId")) or ""
    registrar = _mapping(info.get("registrar"))
    kind, records = _setup_records(info)
    if not records:
        raise invalid_response(f"setup info for {domain or '?'} names no records")
    return SetupInfo(
        connected_domain_id=domain, kind=kind, records=records,
        registrar_name=_text(registrar.get("name")),
        registrar_name_servers=_strings(registrar.get("nameServers")),
    )


def _setup_records(info: Mapping[str, Any]) -> tuple[str, tuple[DnsRecord, ...]]:
    nameservers = _mapping(info.get("nameserverRecord"))
    if nameservers:
        return "NAMESERVERS", _present(_setup_record("NS", nameservers.get("nsRecord")))
    pointing = _mapping(info.get("pointingRecords"))
    if pointing:
        return "POINTING", _present(_setup_record("A", pointing.get("aRecord")),
                                    _setup_record("CNAME", pointing.get("cnameRecord")))
    subdomain = _mapping(info.get("subdomainRecords"))
    cnames = [_setup_record("CNAME", c) for c in _list(subdomain.get("cnameRecords"))]
    return "SUBDOMAIN", _present(*cnames)


def _setup_record(type: str, raw: Any) -> DnsRecord | None:
    data = _mapping(raw)
    host = _text(data.get("hostName"))
    # `values` for A/NS, singular `value` for CNAME [types]; either is read for both.
    values = _strings(data.get("values")) or _strings([data.get("value")])
    if not host or not values:
        return None
    return DnsRecord(type, host, values, _ttl(data.get("ttl")))


def _present(*records: DnsRecord | None) -> tuple[DnsRecord, ...]:
    return tuple(r for r in records if r is not None)


def parse_dns_zone(body: Mapping[str, Any]) -> DnsZone:
    """`{"dnsZone": {"id", "domainName", "records": [...], "dnssecEnabled"}}` (get, update,
    preview). `dnssecInfo` is not kept: bulkops never touches DNSSEC."""
    zone = _mapping(body.get("dnsZone"))
    name = _text(zone.get("domainName")) or _text(zone.get("id"))
    if not name:
        raise invalid_response("DNS zone has neither domainName nor id")
    records = tuple(_zone_record(r, name) for r in _list(zone.get("records")))
    return DnsZone(
        id=_text(zone.get("id")) or name, domain_name=name,
        records=tuple(r for r in records if r is not None),
        dnssec_enabled=zone.get("dnssecEnabled") is True,
    )


def _zone_record(raw: Any, zone_name: str) -> DnsRecord | None:
    data = _mapping(raw)
    kind = _text(data.get("type"))
    host = _text(data.get("hostName"))
    if not kind or not host:
        return None
    return DnsRecord(kind.upper(), full_host_name(host, zone_name), _strings(data.get("values")),
                     _ttl(data.get("ttl")))


def parse_availability(body: Mapping[str, Any]) -> Availability:
    """(c) `{"availability": {"domain", "available", "premium", "premiumType"}}`."""
    data = _mapping(body.get("availability"))
    if not data and INFERRED_AVAILABILITY_UNWRAPPED:
        data = body
    available = data.get("available")
    if not isinstance(available, bool):
        # A guess either way would let the plan connect a domain nobody owns, or refuse one.
        raise invalid_response("availability answer has no available flag")
    return Availability(
        domain=_text(data.get("domain")) or "",
        available=available,
        premium=data.get("premium") is True,
        premium_type=_text(data.get("premiumType")),
    )


# ---------------------------------------------------------------------------------------------
# Inferred, unverified against the live service (wix-domains.md marks each *inferred*), kept in
# this one place. Each parser accepts the documented form and the alternative.
#
# 1. Domain ids are sent lowercased, without a trailing dot and without `www.` (Common rules).
#    A `www.` name with only one more label (`www.com`) is left alone: it is a domain itself.
INFERRED_STRIP_WWW = True
#
# 2. `siteInfo.siteId`: one Wix recipe shows it instead of `siteInfo.id`. Both are read; `id`
#    wins when both are present.
SITE_ID_FIELDS = ("id", "siteId")
#
# 3. List pages: the typings say `pagingMetadata`; `metadata` (Query Sites' spelling) is read
#    when `pagingMetadata` is absent.
PAGING_METADATA_FIELDS = ("pagingMetadata", "metadata")
#
# 4. A zone record's hostName: the full name is documented; one recipe writes `@` for the apex,
#    and a bare relative label (`www`) may come back too. Both are read as full names.
#
# 5. Availability: the `availability` wrapper is [wix-skill]; a flat body is read too.
INFERRED_AVAILABILITY_UNWRAPPED = True
#    Recipes call it without auth, saying auth gave them 403: the client sends the key and, on
#    401/403 from this endpoint only, tries once more without auth (bulkops.wix).
AVAILABILITY_RETRY_WITHOUT_AUTH = True
#
# 6. Create's three 400 "labels" ("Invalid domain": for sale / restricted TLD; "Invalid
#    connection type") have no known `applicationError.code`: they are told apart by status
#    400 and these words in the message (the sandbox's messages contain them).
CREATE_400_MARKERS = (
    ("FOR_SALE", ("available for purchase", "for sale")),
    ("RESTRICTED_TLD", ("restricted",)),
    ("INVALID_CONNECTION_TYPE", ("connection type",)),
)
#
# 7. Get Connected Domain / Setup Info: a 404 means "not connected" unless its code names a
#    bad key or account (those stop the job). Setup Info's 404 itself is inferred.
NOT_CONNECTED_404_EXCEPT = frozenset({USER_ID_NOT_FOUND, TARGET_ACCOUNT_NOT_FOUND})
#
# 8. TXT quoting is unknown (Cloud DNS stores quoted strings): compare values with surrounding
#    double quotes removed (`comparable_values`).
#
# 9. Get DNS Zone on a POINTING domain answers 404 DNS_ZONE_NOT_FOUND (as for any zone Wix does
#    not host); bulkops.wix passes it on as a WixApiError for the caller to classify.


def create_400_reason(status: int, message: str) -> str | None:
    """Which of create's label-only 400s `message` is (item 6), or None."""
    if status != 400:
        return None
    text = message.lower()
    for reason, markers in CREATE_400_MARKERS:
        if any(marker in text for marker in markers):
            return reason
    return None


def means_not_connected(status: int, code: str | None) -> bool:
    """Whether a 404 from Get Connected Domain / Setup Info means "not connected" (item 7)."""
    return status == 404 and code not in NOT_CONNECTED_404_EXCEPT


def comparable_values(record: DnsRecord) -> frozenset[str]:
    """A record's values as a set for desired-state comparison (item 8): TXT/SPF unquoted,
    host-like values without a trailing dot and lowercased."""
    kind = record.type.upper()
    if kind in ("TXT", "SPF"):
        return frozenset(_unquoted(v) for v in record.values)
    if kind in ("CNAME", "MX", "NS", "SRV", "PTR"):
        return frozenset(" ".join(v.split()).rstrip(".").lower() for v in record.values)
    return frozenset(v.strip() for v in record.values)


def _unquoted(value: str) -> str:
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def full_host_name(host: str, zone_name: str) -> str:
    """A record's hostName as a full name (item 4): `@` is the apex, a bare label is under it."""
    name = host.strip().rstrip(".").lower()
    zone = zone_name.rstrip(".").lower()
    if name in ("@", ""):
        return zone
    if name == zone or name.endswith("." + zone):
        return name
    return f"{name}.{zone}"


def _site_id(site: Mapping[str, Any]) -> str | None:
    return next((v for v in (_text(site.get(f)) for f in SITE_ID_FIELDS) if v), None)


def _paging_metadata(body: Mapping[str, Any]) -> Mapping[str, Any]:
    for name in PAGING_METADATA_FIELDS:
        if isinstance(body.get(name), Mapping):
            return _mapping(body.get(name))
    return {}


# ---------------------------------------------------------------------------------------------
# Tolerant accessors (more in bulkops.jsonvalues): a missing or mistyped field is absent.


def _strings(value: Iterable[Any] | Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str) and v)


def _ttl(value: Any) -> int | None:
    # int64 fields may arrive as JSON strings in Wix's REST mapping; both are read.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None

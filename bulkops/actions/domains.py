"""connect_domain and set_dns_record: a client's own domain on the site built for it, and the
records of a zone Wix hosts (wix-domains.md, sections (a) and (b)).

Both are keyed by the domain name, so both are looked up after a lost answer, never resent blind:
- a connection is read back with Get Connected Domain: the row's site, type and assignment mean
  done; anything else is a conflict, reported and never undone;
- a record is read back from Get DNS Zone and compared with the values asked for, and with the
  values it held before the write (kept in the write-ahead record): neither means someone else
  changed it, a conflict.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from bulkops.actions.base import (
    ActionContext,
    Done,
    FamilyDefaults,
    Missing,
    Prepared,
    Reader,
    Rejected,
    RowOutcome,
    hint_in,
    site_of,
)
from bulkops.errors import WixApiError, WixError
from bulkops.model import Action, OpRecord, OpSpec
from bulkops.roles import RoleBook
from bulkops.wix import WixClient
from bulkops.wixdomains import (
    DNS_ZONE_NOT_FOUND,
    DOMAIN_CNAME_RECORD_HOSTNAME_INVALID,
    DOMAIN_DNS_EMPTY_RECORD_VALUE,
    DOMAIN_DUPLICATE_RECORDS,
    DOMAIN_MX_RECORD_VALUE_INVALID,
    DOMAIN_NOT_PERMITTED,
    DOMAIN_UPDATE_EMPTY_UPDATE_REQUEST,
    DOMAINS_ALREADY_EXISTS,
    DOMAINS_DOMAIN_NOT_PERMITTED,
    DOMAINS_GUID_NOT_FOUND,
    DOMAINS_GUID_NOT_VALID,
    INVALID_DOMAINS_PREVIEW_RECORDS,
    INVALID_NS_RECORD,
    MAX_ZONE_ADDITIONS,
    NON_PREMIUM_SITE,
    AssignmentType,
    ConnectedDomain,
    ConnectionType,
    DnsRecord,
    DnsZone,
    SetupInfo,
    comparable_values,
    create_400_reason,
)

CONFLICT = "DOMAIN_CONFLICT"  # connected already, otherwise than the row asks
RECORD_CHANGED = "DNS_RECORD_CHANGED"  # the record holds values nobody here asked for
NOTHING_SENT = "already as asked: nothing sent"

_CONNECT_HINTS = {
    NON_PREMIUM_SITE: "add a Premium plan to the site, then run the file again",
    "FOR_SALE": ("the domain is still for sale, so nobody owns it yet: the client must buy it "
                 "first (or buy it through Wix)"),
    "RESTRICTED_TLD": "Wix does not connect domains on this top-level domain to sites",
    "INVALID_CONNECTION_TYPE": ("a root domain takes connection pointing or nameservers, a "
                                "subdomain none: fix the row's connection"),
    DOMAINS_GUID_NOT_VALID: "check the row's site id",
    DOMAINS_GUID_NOT_FOUND: ("Wix finds no such site (or account): check the row's site id, "
                             "and WIX_ACCOUNT_ID"),
    DOMAINS_DOMAIN_NOT_PERMITTED: ("the domain is not allowed for this account: another Wix "
                                   "account may hold it"),
    INVALID_DOMAINS_PREVIEW_RECORDS: ("Wix lacks the preview records it needs for this domain: "
                                      "try again later; if it persists, ask Wix support"),
    DOMAINS_ALREADY_EXISTS: ("the domain is connected already with other settings: bulkops never "
                             "moves or removes a connection; change it in the dashboard, or "
                             "fix the row to match"),
    CONFLICT: ("bulkops never moves or removes a connection: change it in the dashboard, or "
               "fix the row to match what is there"),
}
_DNS_HINTS = {
    DNS_ZONE_NOT_FOUND: ("Wix hosts no DNS zone for this domain: it is connected with pointing "
                         "(its DNS stays with the client's provider) or not connected; connect "
                         "it with connection=nameservers"),
    DOMAIN_NOT_PERMITTED: ("the domain is not in this account, or the account has no Premium "
                           "plan that allows it"),
    DOMAIN_DNS_EMPTY_RECORD_VALUE: "give the record at least one value",
    DOMAIN_MX_RECORD_VALUE_INVALID: ("MX values are 'priority server' (10 mail.client.com); Wix "
                                     "also says this when one type and host appear twice"),
    DOMAIN_CNAME_RECORD_HOSTNAME_INVALID: ("a CNAME's host must lie under the domain and not be "
                                           "the domain itself"),
    INVALID_NS_RECORD: "NS records are Wix's own and cannot be changed",
    RECORD_CHANGED: ("someone else changed the record while this row was in flight: bulkops does "
                     "not overwrite it; check the zone, then run the row again"),
}
# Refusals of one zone update that may be one record's fault (wix-domains.md, Update DNS Zone).
_RECORD_FAULTS = frozenset({DOMAIN_DNS_EMPTY_RECORD_VALUE, DOMAIN_MX_RECORD_VALUE_INVALID,
                            DOMAIN_CNAME_RECORD_HOSTNAME_INVALID})
# Answers that say the records may be there already (repeats of a write that happened): the
# zone is read to know (wix-domains.md: "ALREADY_EXISTS / DOMAINS_ALREADY_EXISTS (the records
# already match)", DOMAIN_DUPLICATE_RECORDS, DOMAIN_UPDATE_EMPTY_UPDATE_REQUEST).
_MAYBE_THERE = frozenset({DOMAIN_DUPLICATE_RECORDS, DOMAIN_UPDATE_EMPTY_UPDATE_REQUEST,
                          "ALREADY_EXISTS", DOMAINS_ALREADY_EXISTS})


class ConnectDomains(FamilyDefaults):
    """Create Connected Domain, one domain a call, then its Setup Info for the report."""

    actions = frozenset({Action.CONNECT_DOMAIN})
    batch_size = 1
    checkable = True
    gathers = False
    look_up_size = 1  # Get Connected Domain reads one domain
    reads_per_call = 1  # Setup Info, once connected

    def batch_key(self, op: OpRecord, roles: RoleBook) -> Hashable:
        return op.op_id

    async def send(self, ops: Sequence[OpRecord], ctx: ActionContext) -> list[RowOutcome]:
        """Connect the row's domain to its site. A 409 (connected already, wix-domains.md) and
        an answer naming another connection are judged against the row: the same site, type
        and assignment is done; anything else is a conflict."""
        (op,) = ops
        spec = op.spec
        assert spec.domain is not None and spec.site is not None
        # Wix writes GUIDs in lower case; a site id typed in capitals is the same site.
        site = site_of(op, spec.site).lower()
        try:
            connected = await ctx.client.create_connected_domain(
                site_id=site, domain=spec.domain, connection_type=_connection_type(op),
                assignment_type=_assignment(op), notify=spec.notify)
        except WixApiError as error:
            reason = create_400_reason(error.status, error.message)
            if error.code == DOMAINS_GUID_NOT_FOUND:
                # Documented as "no such account", but this call also names a site: the row's
                # own site may be what Wix cannot find, so the row fails, not the job (one
                # such answer on most rows pauses the job, as any storm does).
                reason = DOMAINS_GUID_NOT_FOUND
            if reason is not None:
                return [Rejected(reason, error.message, request_id=error.request_id)]
            if error.status != 409:
                raise
            found = await ctx.read(lambda: ctx.client.get_connected_domain(spec.domain or ""))
            if found is None:
                return [Missing("409 from Create Connected Domain, yet the domain is not there")]
            connected = found
        return [await self._judged(op, connected, ctx)]

    async def look_up(
        self, ops: Sequence[OpRecord], ctx: ActionContext, *, now: float
    ) -> list[Done | Rejected | None]:
        found: list[Done | Rejected | None] = []
        for op in ops:
            assert op.spec.domain is not None
            connected = await ctx.client.get_connected_domain(op.spec.domain)
            found.append(None if connected is None else await self._judged(op, connected, ctx))
        return found

    def hint(self, code: str | None) -> str | None:
        return hint_in(_CONNECT_HINTS, code)

    async def _judged(self, op: OpRecord, connected: ConnectedDomain,
                      ctx: ActionContext) -> Done | Rejected:
        """Done with the registrar records when `connected` is what the row asks for."""
        site = site_of(op, op.spec.site or "").lower()
        conflict = connection_conflict(op, site, connected)
        if conflict is not None:
            return Rejected(CONFLICT, conflict)
        note = None
        if connected.connection_type == ConnectionType.NAMESERVERS:
            note = ("Wix hosts the zone once the client moves the name servers: their "
                    "existing records (MX, TXT, ...) must be set again there (set_dns_record)")
        if _assignment(op) is AssignmentType.REDIRECT and (
                connected.assignment_type == AssignmentType.PRIMARY):
            made = "Wix made it the site's primary domain (the site had none)"
            note = f"{note}; {made}" if note else made
        details, missing = await setup_details(ctx.client, connected.domain, ctx.read)
        if missing is not None:
            # Connected: the row is done. The records are what the report lacks.
            note = f"{note}; {missing}" if note else missing
        return Done(site_id=site, details=details, note=note)


def connection_conflict(op: OpRecord, site: str, connected: ConnectedDomain) -> str | None:
    """Why `connected` is not the connection `op` asks for, or None when it is: the same site,
    connection type (none for a subdomain; HIDDEN reads as POINTING) and assignment (a
    redirect asked for may have become the primary of a site that had none)."""
    spec = op.spec
    wanted_type = _connection_type(op)
    got_type = connected.connection_type
    if got_type == ConnectionType.HIDDEN:
        got_type = ConnectionType.POINTING
    type_ok = (got_type in ("", ConnectionType.UNKNOWN) if wanted_type is None
               else got_type == wanted_type)
    assignment_ok = connected.assignment_type == _assignment(op) or (
        _assignment(op) is AssignmentType.REDIRECT
        and connected.assignment_type == AssignmentType.PRIMARY)
    if (connected.site_id or "").casefold() == site.casefold() and type_ok and assignment_ok:
        return None
    there = (f"site {connected.site_id}" if connected.site_id else "no site")
    asked = f"site {site}, {(spec.connection or 'subdomain')}, {_assignment(op).value.lower()}"
    return (f"{connected.domain} is connected already to {there} "
            f"({_shown(connected.connection_type)}, {_shown(connected.assignment_type)}), not as "
            f"this row asks ({asked})")


async def setup_details(
    client: WixClient, domain: str, read: Reader
) -> tuple[dict[str, Any] | None, str | None]:
    """A connected domain's Setup Info, read with `read`, as the row keeps it: (details, None),
    or (None, why it could not be read). Raises nothing: the connection is made either way."""
    try:
        setup = await read(lambda: client.get_connected_domain_setup_info(domain))
    except WixError as error:
        return None, f"the records for the registrar could not be read ({error})"
    return registrar_details(setup), None


def registrar_details(setup: SetupInfo) -> dict[str, Any]:
    """The report's part of Setup Info: what the client must set at their registrar."""
    return {
        "setup": setup.kind,
        "registrar": setup.registrar_name,
        "registrar_records": [record_json(record) for record in setup.records],
    }


class SetDnsRecords(FamilyDefaults):
    """Update DNS Zone for up to 10 rows of one domain: one zone read, one write."""

    actions = frozenset({Action.SET_DNS_RECORD})
    batch_size = MAX_ZONE_ADDITIONS  # a row adds one record and deletes at most one
    checkable = True
    gathers = False
    look_up_size = 50  # one zone read per domain among them
    reads_per_call = 1  # the zone, read before the write
    prepares = True

    def batch_key(self, op: OpRecord, roles: RoleBook) -> Hashable:
        return op.spec.domain

    async def prepare(self, ops: Sequence[OpRecord], ctx: ActionContext) -> list[Prepared]:
        """Read the zone: a row whose record holds its values already is done; the others go
        with the record as it is now (None: absent), which their write replaces."""
        zone = await ctx.client.get_dns_zone(_domain_of(ops))
        prepared: list[Prepared] = []
        for op in ops:
            current = _current(zone, op)
            if current is not None and holds_values(op.spec, current):
                prepared.append(Done(note=NOTHING_SENT))
            else:
                prepared.append({"before": record_json(current) if current else None})
        return prepared

    async def send(self, ops: Sequence[OpRecord], ctx: ActionContext) -> list[RowOutcome]:
        """One zone update: each row's record as asked added, its record as read deleted
        (a change is both in one request, wix-domains.md)."""
        additions = [_desired(op) for op in ops]
        deletions = [before for op in ops if (before := _before(op)) is not None]
        try:
            zone = await ctx.client.update_dns_zone(
                _domain_of(ops), additions=additions, deletions=deletions)
        except WixApiError as error:
            if error.code in _MAYBE_THERE:
                return [Missing(f"the zone update answered {error.code}") for _ in ops]
            raise
        return [Done() if _holds(zone, op)
                else Missing("the zone after the update does not hold the record as asked")
                for op in ops]

    async def look_up(
        self, ops: Sequence[OpRecord], ctx: ActionContext, *, now: float
    ) -> list[Done | Rejected | None]:
        """Each row's record as the zone holds it now: as asked (done), as before the write
        (it did not happen: None), or anything else (someone else changed it: a conflict)."""
        zones: dict[str, DnsZone] = {}
        found: list[Done | Rejected | None] = []
        for op in ops:
            domain = op.spec.domain or ""
            if domain not in zones:
                zones[domain] = await ctx.client.get_dns_zone(domain)
            current = _current(zones[domain], op)
            if current is not None and holds_values(op.spec, current):
                found.append(Done())
            elif op.details is None or _same_record(current, _before(op)):
                found.append(None)
            else:
                found.append(Rejected(RECORD_CHANGED, _changed(op, current)))
        return found

    def row_fault(self, error: WixApiError) -> bool:
        return error.status == 400 or error.code in _RECORD_FAULTS

    def hint(self, code: str | None) -> str | None:
        return hint_in(_DNS_HINTS, code)


def record_json(record: DnsRecord) -> dict[str, Any]:
    """A record as the report and the write-ahead record keep it."""
    return {"type": record.type, "host": record.host_name, "values": list(record.values),
            "ttl": record.ttl}


def _record(data: Mapping[str, Any]) -> DnsRecord:
    ttl = data.get("ttl")
    return DnsRecord(type=str(data["type"]), host_name=str(data["host"]),
                     values=tuple(str(v) for v in data.get("values") or ()),
                     ttl=ttl if isinstance(ttl, int) else None)


def _domain_of(ops: Sequence[OpRecord]) -> str:
    domain = ops[0].spec.domain
    assert domain is not None
    return domain


def _current(zone: DnsZone, op: OpRecord) -> DnsRecord | None:
    return zone.record(op.spec.record_type or "", op.spec.host or "")


def _holds(zone: DnsZone, op: OpRecord) -> bool:
    current = _current(zone, op)
    return current is not None and holds_values(op.spec, current)


def _before(op: OpRecord) -> DnsRecord | None:
    before = (op.details or {}).get("before")
    return _record(before) if isinstance(before, Mapping) else None


def _desired(op: OpRecord) -> DnsRecord:
    """The record the row asks for; with no ttl in the row, the record keeps the one it has."""
    before = _before(op)
    spec = op.spec
    ttl = spec.ttl if spec.ttl is not None else (before.ttl if before else None)
    return DnsRecord(type=spec.record_type or "", host_name=spec.host or "", values=spec.values,
                     ttl=ttl)


def holds_values(spec: OpSpec, record: DnsRecord) -> bool:
    """Whether `record` holds exactly the row's values (as sets, `comparable_values`) and its
    ttl, when the row gives one."""
    wanted = DnsRecord(record.type, record.host_name, spec.values)
    ttl_ok = spec.ttl is None or record.ttl == spec.ttl
    return comparable_values(record) == comparable_values(wanted) and ttl_ok


def _same_record(now: DnsRecord | None, before: DnsRecord | None) -> bool:
    if now is None or before is None:
        return now is None and before is None
    return comparable_values(now) == comparable_values(before) and now.ttl == before.ttl


def _changed(op: OpRecord, current: DnsRecord | None) -> str:
    before = _before(op)

    def shown(record: DnsRecord | None) -> str:
        return "no record" if record is None else "; ".join(record.values) or "no values"

    return (f"the {op.spec.record_type} record of {op.spec.host} holds {shown(current)}: "
            f"neither the values asked for ({'; '.join(op.spec.values)}) nor those it held "
            f"before the write ({shown(before)})")


def _connection_type(op: OpRecord) -> ConnectionType | None:
    connection = op.spec.connection
    return None if connection is None else ConnectionType(connection.upper())


def _assignment(op: OpRecord) -> AssignmentType:
    return AssignmentType((op.spec.assignment or "redirect").upper())


def _shown(enum_value: str) -> str:
    return enum_value.lower().replace("unknown_connection_type", "subdomain").replace(
        "unknown_assignment_type", "no assignment") or "unknown"

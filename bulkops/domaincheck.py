"""Domain rows checked against what Wix already holds, before the first write and in `plan`
(wix-domains.md, "What a bulk onboarding tool should offer", Plan step). Used by `precheck`,
only when connect_domain or set_dns_record rows are still to do, so that other files make the
same reads as ever:

- the Domains permission, probed once before any other domain read: the first page (one
  domain) of List Connected Domains. A refusal (401/403, or a code of
  `wixdomains.JOB_FAULT_CODES`: "Final for the whole job") is one ConfigError naming the
  "Manage Domains" permission ("Common rules", Permissions), for a plan one problem;
- a connect_domain row's site named by id is in the account (`precheck`) and has Premium
  (Query Sites' `premium`; "Common rules", Premium). A site a create_site row of the job still
  has to make has no plan yet: a problem (taken by `--if-exists adopt`, the site's own flag);
- List Connected Domains (100 a page, only when the probe saw any), once: a domain connected to
  the row's site as it asks (`actions.domains.connection_conflict`, the rule the run's own
  look-up applies) is done before the row starts (`Settled`); connected otherwise, a problem
  saying what is there (bulkops never changes a connection);
- set_dns_record rows: Get DNS Zone once per domain, except a domain a connect_domain row of
  the job still has to connect with nameservers (its zone appears with that row): 404
  DNS_ZONE_NOT_FOUND is a problem on each of the domain's rows ("Domain DNS": only zones Wix
  hosts);
- `plan` only (`planning=True`): Check Domain Availability once per registrable domain
  (`available: true`, 400 INVALID_DOMAIN or DOMAINS_UNSUPPORTED_TLD: a problem), Preview DNS
  Zone per domain to connect (the records the client will set at their registrar), and DNS rows
  whose record holds their values already ("already as asked", not a problem).

Reads Wix answers 429/5xx or not at all are tried again (`ReadRetry`: as often as the run
allows a send, at least five times); one that never answers raises its WixError.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from bulkops.actions.domains import connection_conflict, holds_values
from bulkops.cells import show
from bulkops.domainrows import registrable_domain
from bulkops.errors import ConfigError, RowError, WixApiError
from bulkops.model import DOMAIN_ACTIONS, Action, OpRecord, OpSpec, is_ref
from bulkops.retry import ReadRetry, Verdict, classify
from bulkops.wix import Site, WixClient
from bulkops.wixdomains import (
    DNS_ZONE_NOT_FOUND,
    DOMAINS_DOMAIN_NOT_PERMITTED,
    DOMAINS_PERMISSION_DENIED,
    DOMAINS_UNSUPPORTED_TLD,
    INVALID_DOMAIN,
    JOB_FAULT_CODES,
    MAX_CONNECTED_DOMAINS_PAGE,
    ConnectedDomain,
    ConnectionType,
    DnsRecord,
    DnsZone,
)

if TYPE_CHECKING:
    from bulkops.precheck import Adoption, Candidate

log = logging.getLogger(__name__)
T = TypeVar("T")

CONNECTED_PAGE = MAX_CONNECTED_DOMAINS_PAGE  # connected domains per List page (100)
CONNECTED_NOTE = "already connected as asked: nothing sent"
MANAGE_DOMAINS = ('the API key needs the "Manage Domains" permission (API Keys Manager, under '
                  "All account permissions) for connect_domain and set_dns_record rows")


@dataclass(frozen=True)
class Settled:
    """A connect_domain row whose domain Wix holds connected as the row asks: done before it
    starts, nothing sent. `site_id`: the site it is connected to (the row's result)."""

    row: Candidate
    domain: str
    site_id: str
    note: str = CONNECTED_NOTE


@dataclass(frozen=True)
class ClientRecords:
    """What the client will have to set at their registrar for one connect_domain row, from
    Preview DNS Zone (wix-domains.md (b)): the A and CNAME records for `pointing`, the NS records
    for `nameservers`, its CNAME for a subdomain (`connection` None)."""

    line: int
    key: str
    domain: str
    connection: str | None
    records: tuple[DnsRecord, ...]


class DomainsRefused(ConfigError):
    """Wix refused a domain read for the whole job (the key's Domains permission, the
    account): `what` was refused, `todo` says the fix. As a run's error, one line ending
    "nothing was sent"; `plan` shows `problem` instead."""

    def __init__(self, exc: WixApiError, what: str) -> None:
        status = f"HTTP {exc.status} {exc.code or ''}".strip()
        fault = JOB_FAULT_CODES.get(exc.code or "")
        if exc.code == DOMAINS_PERMISSION_DENIED or (fault is None and exc.status in (401, 403)):
            todo = MANAGE_DOMAINS
        else:
            todo = fault or f"{exc.message}: check WIX_API_KEY and WIX_ACCOUNT_ID"
        self.problem = f"Wix refused to read {what} ({status}): {todo}"
        super().__init__(f"{self.problem}; nothing was sent")


def holds_as_asked(spec: OpSpec, zone: DnsZone) -> bool:
    """Whether `zone`'s record of the row's (type, host) holds exactly the row's values and
    its ttl, when the row gives one: the run would find nothing to change."""
    record = zone.record(spec.record_type or "", spec.host or "")
    return record is not None and holds_values(spec, record)


def client_records(domain: str, connection: str | None,
                   preview: DnsZone) -> tuple[DnsRecord, ...]:
    """The records of Preview DNS Zone the client sets for a connection (wix-domains.md,
    "What a bulk onboarding tool should offer": the preview "shows the records the client will
    need"): A and CNAME for pointing, NS for nameservers. A subdomain's own CNAME; when the
    preview has none at the subdomain itself, its CNAME target at the subdomain (*inferred*:
    a subdomain is connected by a CNAME at its own name, as Setup Info's `subdomainRecords`
    say)."""
    if connection == "nameservers":
        return tuple(r for r in preview.records if r.type == "NS")
    if connection is not None:
        return tuple(r for r in preview.records if r.type in ("A", "CNAME"))
    cnames = [r for r in preview.records if r.type == "CNAME"]
    own = tuple(r for r in cnames if r.host_name == domain)
    return own or tuple(replace(r, host_name=domain) for r in cnames[:1])


def _job_level(exc: WixApiError) -> bool:
    """A domain read refused for every row: the key or the account ("Final for the whole
    job"), or any 401/403 but a domain not allowed for the account (one row's)."""
    return (exc.code in JOB_FAULT_CODES or exc.status == 401
            or (exc.status == 403 and exc.code != DOMAINS_DOMAIN_NOT_PERMITTED))


def _said(exc: WixApiError) -> str:
    return f"HTTP {exc.status} {exc.code or ''}".strip() + f": {exc.message}"


class DomainNeeds:
    """The first pass: the domains the rows still to do connect (with the connection asked)
    and set records in, and the `@key`s connect rows name as their site."""

    def __init__(self) -> None:
        self.first_line: int | None = None
        self.rows = 0
        self.connects: dict[str, str | None] = {}  # domain -> connection asked
        self.dns: set[str] = set()
        # Domains whose DNS rows wait for the file's row connecting them (`domainfile`), even
        # when that row's operation is another job's (a grown file): their zone comes with it.
        self.waiting: set[str] = set()
        self.refs: set[str] = set()
        # One text per domain and per connection, whichever rows name them: each row read
        # back brings its own copy (a job's domain rows may be a hundred thousand or more).
        self._texts: dict[str, str] = {}

    def take(self, spec: OpSpec) -> None:
        if spec.action not in DOMAIN_ACTIONS or not spec.domain:
            return
        self.rows += 1
        self.first_line = min(spec.line, self.first_line or spec.line)
        texts = self._texts
        domain = texts.setdefault(spec.domain, spec.domain)
        if spec.action is Action.CONNECT_DOMAIN:
            connection = spec.connection
            self.connects[domain] = (None if connection is None
                                     else texts.setdefault(connection, connection))
            if spec.site and is_ref(spec.site):
                self.refs.add(spec.site[1:])
        else:
            self.dns.add(domain)
            if spec.implied_depends_on:
                self.waiting.add(domain)


class DomainReads:
    """What Wix holds for the rows' domains, read once each (see the module's docstring)."""

    def __init__(self, client: WixClient, needs: DomainNeeds, *, planning: bool,
                 retry: ReadRetry) -> None:
        self._client = client
        self._needs = needs
        self.planning = planning
        self._retry = retry
        self.connected: dict[str, ConnectedDomain] = {}  # the rows' domains only
        self.zones: dict[str, DnsZone | str] = {}  # a zone, or why its rows cannot run
        self.for_sale: dict[str, str] = {}  # registrable domain -> why it cannot be connected
        self.previews: dict[str, DnsZone] = {}
        self.notes: list[str] = []

    async def read_all(self, requests: Callable[[], int]) -> dict[str, int]:
        """Every domain read, in order: the probe, the connections, the zones; for a plan,
        availability and previews. Returns the run's requests by kind (the plan's own reads
        are not the run's). Raises DomainsRefused, or the WixError no retry fixed."""
        start = requests()
        if await self._probe() and self._needs.connects:
            await self._read_connected()
        reads = {"connected_domains": requests() - start}
        start = requests()
        for domain in sorted(self._needs.dns - self._zone_follows()):
            await self._read_zone(domain)
        reads["dns_zones"] = requests() - start
        if self.planning:
            for root in sorted({registrable_domain(d) for d in self._unconnected()}):
                await self._read_availability(root)
            for domain in sorted(self._unconnected()):
                if registrable_domain(domain) not in self.for_sale:  # no client sets records for it
                    await self._read_preview(domain)
        return reads

    async def _read(self, fn: Callable[[], Awaitable[T]]) -> T:
        return await self._retry(fn)

    async def _refusable(self, fn: Callable[[], Awaitable[T]], what: str) -> T:
        """`fn`'s answer; DomainsRefused for any answer no retry fixes (the listing is the
        job's, not a row's)."""
        try:
            return await self._read(fn)
        except WixApiError as exc:
            if classify(exc) is Verdict.FINAL:
                raise DomainsRefused(exc, what) from exc
            raise

    async def _probe(self) -> bool:
        """The Domains permission: List Connected Domains' first page of one domain
        (wix-domains.md, "Availability of the permission varies"). Whether the account has
        any connected domain."""

        async def first() -> bool:
            listing = self._client.iter_connected_domains(page_size=1)
            try:
                return await anext(aiter(listing), None) is not None
            finally:
                close = getattr(listing, "aclose", None)
                if close is not None:
                    await close()

        found = await self._refusable(first, "the account's connected domains")
        log.info("domains_probed", extra={"any_connected": found})
        return found

    async def _read_connected(self) -> None:
        """One pass over List Connected Domains, keeping the rows' domains."""
        wanted = set(self._needs.connects)

        async def every() -> dict[str, ConnectedDomain]:
            return {d.domain.lower(): d async for d in
                    self._client.iter_connected_domains(page_size=CONNECTED_PAGE)
                    if d.domain.lower() in wanted}

        self.connected = await self._refusable(every, "the account's connected domains")

    def _zone_follows(self) -> set[str]:
        """Domains a connect row of the file still has to connect with nameservers: their zone
        appears with that row (and their DNS rows wait for it, `domainfile`)."""
        connecting = {domain for domain, connection in self._needs.connects.items()
                      if connection == "nameservers"}
        return {domain for domain in connecting | self._needs.waiting
                if not self._hosted(domain)}

    def _hosted(self, domain: str) -> bool:
        found = self.connected.get(domain)
        return found is not None and found.connection_type == ConnectionType.NAMESERVERS

    def _unconnected(self) -> set[str]:
        return set(self._needs.connects) - set(self.connected)

    async def _read_zone(self, domain: str) -> None:
        try:
            zone = await self._read(lambda: self._client.get_dns_zone(domain))
        except WixApiError as exc:
            if classify(exc) is not Verdict.FINAL:
                raise
            if _job_level(exc):
                raise DomainsRefused(exc, f"the DNS zone of {domain}") from exc
            self.zones[domain] = (
                f"Wix hosts no DNS zone for {domain}: it is connected with pointing, or not "
                "connected; connect it with connection=nameservers"
                if exc.status == 404 and exc.code in (DNS_ZONE_NOT_FOUND, None)
                else f"Wix refused to read the DNS zone of {domain} ({_said(exc)})")
            return
        # A run needs only to know the zone is there; a plan compares the rows' records.
        self.zones[domain] = zone if self.planning else DnsZone(zone.id, zone.domain_name, (),
                                                                zone.dnssec_enabled)

    async def _read_availability(self, root: str) -> None:
        """Check Domain Availability (wix-domains.md (c)): a domain for sale has no owner to
        connect it; 400 INVALID_DOMAIN / DOMAINS_UNSUPPORTED_TLD cannot be connected either."""
        try:
            found = await self._read(lambda: self._client.check_domain_availability(root))
        except WixApiError as exc:
            if classify(exc) is not Verdict.FINAL:
                raise
            if exc.status != 400:
                self.notes.append(f"the availability of {root} was not checked: Wix refused "
                                  f"the read ({_said(exc)})")
            elif exc.code == DOMAINS_UNSUPPORTED_TLD:
                self.for_sale[root] = (f"Wix does not support the top-level domain of {root} "
                                       f"({exc.code}): it cannot be connected to a Wix site")
            elif exc.code == INVALID_DOMAIN:
                self.for_sale[root] = (f"Wix does not take {root} as a domain it can connect "
                                       f"({exc.code}: {exc.message})")
            else:
                self.for_sale[root] = f"Wix refused to check {root} ({_said(exc)})"
            return
        if found.available:
            self.for_sale[root] = (f"the domain {root} is still for sale: nobody owns it yet, "
                                   "so it cannot be connected (the client must buy it first)")

    async def _read_preview(self, domain: str) -> None:
        try:
            self.previews[domain] = await self._read(
                lambda: self._client.preview_dns_zone(domain))
        except WixApiError as exc:
            if classify(exc) is not Verdict.FINAL:
                raise
            self.notes.append(f"the records to set for {domain} are not shown: Wix refused "
                              f"its DNS zone preview ({_said(exc)})")


class DomainJudge:
    """The second pass over the domain rows, against what `DomainReads` found. Connect rows
    naming a `@key` are judged once the pass has seen (and maybe adopted) that create."""

    def __init__(self, reads: DomainReads, listed: Callable[[str], Site | None],
                 needs: DomainNeeds) -> None:
        self._reads = reads
        self._listed = listed  # the account's site of an id, as Query Sites listed it
        self._needs = needs
        self._creates: dict[str, int] = {}  # key of an open create a connect row names -> line
        self._adopted: dict[str, Site] = {}
        self._later: list[Candidate] = []
        self.settled: list[Settled] = []
        self.as_asked: list[Candidate] = []
        self.client_records: list[ClientRecords] = []
        self.wix_refuses: list[RowError] = []  # problems only a plan's own reads find

    def records_for(self, problems: list[RowError]) -> list[ClientRecords]:
        """The records to set, only for rows without a problem (the run refuses the others),
        in line order."""
        refused = {error.line for error in problems}
        return sorted((found for found in self.client_records if found.line not in refused),
                      key=lambda found: found.line)

    def take(self, row: Candidate, adoption: Adoption | None) -> list[RowError]:
        """The row's problems; for a create a connect row names, what it made (None: it was
        not adopted)."""
        spec = row.spec
        if spec.action is Action.CREATE_SITE and spec.key in self._needs.refs:
            self._creates[spec.key] = spec.line
            if adoption is not None:
                self._adopted[spec.key] = adoption.site
        elif spec.action is Action.CONNECT_DOMAIN and spec.site:
            if not is_ref(spec.site):
                return self._connect(row, spec.site, self._listed(spec.site))
            if spec.site[1:] in self._creates:
                # Its create came first (the usual order) and was judged already: the row is
                # judged now, as `finish` would, instead of being held in memory until the
                # end (a whole stored record per connect row, of a million-row job).
                return self._named(row)
            self._later.append(row)
        elif spec.action is Action.SET_DNS_RECORD:
            return self._record(row)
        return []

    def finish(self) -> list[RowError]:
        """The connect rows naming a `@key`: an adopted site is judged as one named by id; a
        site the job still has to create has no Premium yet (and no connection either)."""
        problems: list[RowError] = []
        for row in self._later:
            problems += self._named(row)
        return problems

    def _named(self, row: Candidate) -> list[RowError]:
        """A connect row naming its site by `@key`, once the pass has seen what it can."""
        key = (row.spec.site or "")[1:]
        if key in self._adopted:
            site = self._adopted[key]
            return self._connect(row, site.id, site)
        if key in self._creates:
            return self._connect(row, row.spec.site or "", None, made_at=self._creates[key])
        return self._shared(row)  # a site an earlier run made: the run's own look-up judges it

    def _connect(self, row: Candidate, site_id: str, site: Site | None, *,
                 made_at: int | None = None) -> list[RowError]:
        spec = row.spec
        domain = spec.domain or ""
        connected = self._reads.connected.get(domain)
        problems: list[RowError] = []
        if connected is not None and row.op is not None and row.op.first_sent_at is not None:
            # An earlier run sent this row: the connection may be its own doing. The engine
            # looks it up and says so ("reconciled"); a conflict is its to report too.
            return []
        if connected is not None:
            op = row.op or OpRecord(op_id=0, job_id="", seq=0, spec=spec)
            conflict = connection_conflict(op, site_id, connected)
            if conflict is None:
                self.settled.append(Settled(row, domain, connected.site_id or site_id))
                return []
            problems.append(RowError(spec.line, "domain", (
                f"{conflict}: bulkops never changes an existing connection; change it in the "
                "Wix dashboard, or change this row to match what is there")))
        if made_at is not None:
            problems.append(RowError(spec.line, "site", (
                f"site {show(site_id)} is created by line {made_at} of this file, so it has no "
                "Premium plan yet, and Wix connects domains only to Premium sites: connect the "
                "domain in a later run, once the site has a plan")))
        elif site is not None and not site.premium:
            problems.append(RowError(spec.line, "site", (
                f"site {show(site_id)} ({show(site.display_name)}) has no Premium plan, and "
                "Wix connects domains only to Premium sites: add a Premium plan to the site "
                "first")))
        return problems + self._shared(row)

    def _shared(self, row: Candidate) -> list[RowError]:
        """A plan's checks of any connect row: the domain for sale, its records to set."""
        spec = row.spec
        domain = spec.domain or ""
        reason = self._reads.for_sale.get(registrable_domain(domain))
        preview = self._reads.previews.get(domain)
        if preview is not None:
            self.client_records.append(ClientRecords(
                spec.line, spec.key, domain, spec.connection,
                client_records(domain, spec.connection, preview)))
        if not reason:
            return []
        problem = RowError(spec.line, "domain", reason)
        self.wix_refuses.append(problem)  # a run does not ask: Wix refuses the row when sent
        return [problem]

    def _record(self, row: Candidate) -> list[RowError]:
        spec = row.spec
        zone = self._reads.zones.get(spec.domain or "")
        if isinstance(zone, str):
            return [RowError(spec.line, "domain", zone)]
        if zone is not None and self._reads.planning and holds_as_asked(spec, zone):
            self.as_asked.append(row)
        return []

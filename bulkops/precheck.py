"""Nothing that will fail is sent: a job's rows checked against what Wix already says.

Before the first write, every row still to do is checked with read calls only, and every
problem found is reported at once (as `RowError`s, like validation):

- roles: every invite row's roles resolve in the account's role book (one roles call), at the
  level the row gives them ("site" for a site invite or an account invite limited to sites,
  else "account"), with the hint `RoleBook` gives for a likely cause;
- sites named by id (not `@key`) exist where the row needs them: a site invite's `site` and an
  account invite's `sites` in the account, a transfer's `site` in its `from_account` (default:
  the account). A site is also fine when an operation of the scope produced it (bulkops made or
  moved it: an earlier row or run may have moved it on), or when a transfer row of the job
  moves it there first;
- create_site rows never sent before whose display name a site of the account already has:
  a row error (`--if-exists fail`, the default), or that site taken as the row's result
  (`--if-exists adopt`).

One listing pass (Query Sites, 100 a page) per account involved covers the site and name checks.
The rows are read twice (before and after the listings), so a job of any size is checked in
memory bounded by the sites it names and the accounts' listings, not by its rows; the second
time, only the rows of the actions it can find something in (`_Needs.judged`).

Domain rows are checked too, when the job has any still to do (`domaincheck`).

Reads Wix answers 429/5xx or not at all are tried again (`ReadRetry`: as often as the run
allows a send, at least five times); one that never answers raises its WixError.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field

from bulkops.cells import show
from bulkops.domaincheck import (
    ClientRecords,
    DomainJudge,
    DomainNeeds,
    DomainReads,
    DomainsRefused,
    Settled,
)
from bulkops.engine import NOT_FOUND_RESENT_NOTE
from bulkops.errors import ConfigError, RowError, WixApiError
from bulkops.identity import site_name_key, when
from bulkops.model import DOMAIN_ACTIONS, Action, OpRecord, OpSpec, OpState, is_ref
from bulkops.movedsites import SiteMoves, Waits
from bulkops.retry import DEFAULT_READS, ReadRetry, Verdict, classify
from bulkops.roles import Level, RoleBook, RoleError
from bulkops.settings import IfExists
from bulkops.wix import Site, WixClient

log = logging.getLogger(__name__)

LISTING_PAGE = 100  # sites per Query Sites page: the most Wix serves
_INVITES = frozenset({Action.SITE_INVITE, Action.ACCOUNT_INVITE})
# States of an op whose create may be checked by name: nothing it sent can have had an effect
# (a failed or blocked one is armed again by a new run of the file).
_UNSENT_STATES = frozenset({OpState.PENDING, OpState.FAILED, OpState.BLOCKED, OpState.CANCELLED})


@dataclass(frozen=True)
class Candidate:
    """A row still to do: its spec, and its operation as stored (None: none yet, `plan`)."""

    spec: OpSpec
    op: OpRecord | None = None

    @property
    def name_checked(self) -> bool:
        """A create whose display name is checked against the account's sites: one whose
        earlier sends surely had no effect. A create that may have been made by an earlier
        send (outcome unknown, or sent again after a look-up found nothing yet) is the
        engine's to reconcile: a site of its name may well be its own."""
        if self.spec.action is not Action.CREATE_SITE:
            return False
        op = self.op
        if op is None or op.first_sent_at is None:
            return True
        return (op.state in _UNSENT_STATES and not op.maybe_applied
                and NOT_FOUND_RESENT_NOTE not in (op.note or ""))


RowSource = Callable[[], AsyncIterator[Candidate]]
"""Every row to check, in input order; called once per pass (twice)."""

ActionRows = Callable[[Collection[Action]], AsyncIterator[Candidate]]
"""The rows to check of some actions only, in input order: the second pass's, when the
source can read just those (a stored job's: by its rows' action column)."""


@dataclass(frozen=True)
class Adoption:
    """A create_site row whose site exists already (`--if-exists adopt`): its result."""

    row: Candidate
    site: Site
    note: str


@dataclass(frozen=True)
class Findings:
    """Every problem found (in line order), the rows to record as adopted and as settled. The
    rest is `plan`'s: DNS rows holding their values already (`as_asked`), the records each
    domain's client will set (rows without a problem, in line order), notes on plan-only reads
    Wix refused. `reads`: the requests the
    checks made, by kind (`site_listing`; `connected_domains` and `dns_zones` with domain
    rows), as counted by `check_rows`' `requests`."""

    problems: list[RowError]
    adoptions: list[Adoption]
    settled: list[Settled] = field(default_factory=list)
    as_asked: list[Candidate] = field(default_factory=list)
    client_records: list[ClientRecords] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reads: dict[str, int] = field(default_factory=dict)
    # Problems only `plan`'s own reads find (a domain still for sale): a run sends those rows,
    # and Wix refuses them.
    wix_refuses: list[RowError] = field(default_factory=list)


async def read_roles(client: WixClient, *, retry: ReadRetry = DEFAULT_READS) -> RoleBook:
    """The account's role book: one roles call (retried while a retry can help).

    Raises ConfigError when Wix refuses the key (401/403), the WixError otherwise."""
    try:
        return RoleBook(await retry(client.list_roles))
    except WixApiError as exc:
        if exc.status in (401, 403):
            raise refused_credentials(exc) from exc
        raise


def refused_credentials(exc: WixApiError) -> ConfigError:
    """The one line a refused key or account gets (the key itself is never in it)."""
    return ConfigError(
        f"Wix refused the credentials (HTTP {exc.status} {exc.code or ''}): check WIX_API_KEY "
        "and WIX_ACCOUNT_ID".replace("  ", " ")
    )


def _no_count() -> int:
    return 0


async def check_rows(
    rows: RowSource,
    client: WixClient,
    roles: RoleBook,
    *,
    account_id: str,
    if_exists: IfExists,
    produced: Callable[[Collection[str]], Awaitable[set[str]]],
    retry: ReadRetry = DEFAULT_READS,
    planning: bool = False,
    requests: Callable[[], int] = _no_count,
    of_actions: ActionRows | None = None,
) -> Findings:
    """Check `rows` against Wix (see the module's docstring). `produced(ids)` says which of the
    site ids (lower-case) an operation of the scope produced. `planning`: `plan`'s checks too,
    and a refused domain read is a problem rather than an error. `requests()`: how many
    requests the client has made so far (for `Findings.reads`). `of_actions`: the second
    pass reads through it only the rows of the actions it can find something in (None: it
    reads `rows` again, and skips the others).

    Reads only: the listings of the accounts the rows involve; with domain rows, the domain
    reads. Raises ConfigError when Wix refuses to list the account itself, DomainsRefused (a
    ConfigError) when it refuses a domain read for the whole job (not when `planning`), the
    WixError of a read no retry could make."""
    needs = _Needs(account_id)
    wanted = DomainNeeds()
    problems: list[RowError] = []
    async for row in rows():
        problems += role_problems(row.spec, roles)
        needs.take(row)
        wanted.take(row.spec)
    domains, reads, refusal = await _read_domains(client, wanted, planning=planning,
                                                  retry=retry, requests=requests)
    problems += refusal
    before = requests()
    listings = {account: await _listing(client, account, main=account == needs.account,
                                        retry=retry)
                for account in sorted(needs.accounts())}
    reads = {"site_listing": requests() - before, **reads}
    ours = await produced(needs.site_ids()) if needs.site_ids() else set()
    world = _World(needs, listings, ours)
    judge = DomainJudge(domains, world.listed, wanted) if domains is not None else None
    adoptions: list[Adoption] = []
    judged = needs.judged(wanted, world.names_taken)
    async for row in (rows() if of_actions is None else of_actions(judged)):
        if row.spec.action not in judged:
            continue  # nothing for the second pass to find (`_Needs.judged`)
        problems += world.site_problems(row.spec)
        adoption = None
        if row.name_checked:
            problem, adoption = world.name_check(row, if_exists)
            problems += [problem] if problem else []
            adoptions += [adoption] if adoption else []
        if judge is not None:
            problems += judge.take(row, adoption)
    problems += judge.finish() if judge is not None else []
    problems.sort(key=lambda error: error.line)  # stable: a row's own problems keep their order
    if judge is None:
        return Findings(problems, adoptions, reads=reads)
    return Findings(problems, adoptions, judge.settled, judge.as_asked,
                    judge.records_for(problems), domains.notes if domains else [], reads,
                    judge.wix_refuses)


async def _read_domains(
    client: WixClient, wanted: DomainNeeds, *, planning: bool, retry: ReadRetry,
    requests: Callable[[], int],
) -> tuple[DomainReads | None, dict[str, int], list[RowError]]:
    """The domain reads, when the rows have domains: (what Wix holds, the requests by kind,
    []). None when there are none, or when Wix refused them and `planning`: the refusal is
    then one problem, at the first domain row. Raises DomainsRefused (not `planning`), the
    WixError of a read no retry could make."""
    if wanted.first_line is None:
        return None, {}, []
    domains = DomainReads(client, wanted, planning=planning, retry=retry)
    try:
        return domains, await domains.read_all(requests), []
    except DomainsRefused as exc:
        if not planning:
            raise
        return None, {}, [RowError(wanted.first_line, None, (
            f"{exc.problem}; the domain rows cannot be checked or run ({wanted.rows} row(s))"))]


def role_problems(spec: OpSpec, roles: RoleBook) -> list[RowError]:
    """Each of an invite row's roles that cannot be given at the row's level, with why."""
    if spec.action not in _INVITES:
        return []
    # A role limited to some sites is given at site level; without sites, account-wide.
    level: Level = "site" if spec.action is Action.SITE_INVITE or spec.sites else "account"
    errors: list[RowError] = []
    for value in spec.roles:
        try:
            roles.resolve(value, level)
        except RoleError as exc:
            errors.append(RowError(spec.line, "role", str(exc)))
    return errors


def site_refs(spec: OpSpec, account_id: str) -> list[tuple[str, str, str]]:
    """(column, site id, account it must be in) for each site the row names by id."""
    if (spec.action in (Action.SITE_INVITE, Action.CONNECT_DOMAIN) and spec.site
            and not is_ref(spec.site)):
        return [("site", spec.site, account_id)]
    if spec.action is Action.ACCOUNT_INVITE:
        return [("sites", site, account_id) for site in spec.sites if not is_ref(site)]
    if spec.action is Action.TRANSFER_SITE and spec.site and not is_ref(spec.site):
        return [("site", spec.site, spec.from_account or account_id)]
    return []


class _Needs:
    """The first pass: which sites must be in which accounts, what transfers move where, and
    whether names are checked. Account and site ids are kept lower-case."""

    def __init__(self, account_id: str) -> None:
        self.account = account_id.lower()
        self.wanted: dict[str, set[str]] = {}
        self.moves: set[tuple[str, str]] = set()  # (site, account a transfer row moves it to)
        # Transfers out of the account, by the site as written (an id or @key, lower-case),
        # and which rows each row waits for: flat arrays, not a dict of texts per row.
        self.transfers = SiteMoves()
        self.waits = Waits()
        # The hashes of the names checked (`site_name_key`): a listing that has none of them
        # spares the second pass the creates. Eight bytes a name (a set of the names took 26
        # MB more at a million rows); two names of one hash only cost that pass.
        self.name_hashes = array("q")
        self.by_id: set[Action] = set()  # actions of rows that name a site by id

    def take(self, row: Candidate) -> None:
        spec = row.spec
        for _, site, account in site_refs(spec, self.account):
            self.wanted.setdefault(account.lower(), set()).add(site.lower())
            self.by_id.add(spec.action)
        if spec.action is Action.TRANSFER_SITE and spec.site and spec.to_account:
            if not is_ref(spec.site):  # only sites named by id are looked up (`_absent`)
                self.moves.add((spec.site.lower(), spec.to_account.lower()))
            # Only a transfer out of the account takes a site away from it.
            if (spec.from_account or self.account).lower() == self.account:
                self.transfers.add(spec.site.lower(), spec.line, self.waits.number(spec.key),
                                   spec.to_account.lower())
        waits_for = spec.dependency_keys()
        if waits_for:
            self.waits.add(spec.key, waits_for)
        if row.name_checked:
            self.name_hashes.append(hash(site_name_key(row.spec.site_name or "")))

    def judged(self, domains: DomainNeeds, taken: Collection[str]) -> frozenset[Action]:
        """The actions of the rows the second pass can find something in: rows naming a
        site by id (`site_refs`), account invites when a transfer takes a site away (they
        may name it), creates whose name is checked and may be one of `taken` (the names,
        as `site_name_key` makes them, of the account's sites) or that a connect row names,
        domain rows. The others (an invite or transfer naming its site by `@key`, a create
        whose name no site has, ...) are not read again."""
        actions = set(self.by_id)
        if self.transfers:
            actions.add(Action.ACCOUNT_INVITE)
        if domains.refs or not {hash(name) for name in taken}.isdisjoint(self.name_hashes):
            actions.add(Action.CREATE_SITE)
        if domains.first_line is not None:
            actions |= DOMAIN_ACTIONS
        return frozenset(actions)

    def accounts(self) -> set[str]:
        return set(self.wanted) | ({self.account} if self.name_hashes else set())

    def site_ids(self) -> set[str]:
        return set().union(*self.wanted.values()) if self.wanted else set()


# An account's sites as listed, or why Wix would not list them.
_Listing = list[Site] | WixApiError


async def _listing(
    client: WixClient, account: str, *, main: bool, retry: ReadRetry
) -> _Listing:
    """One pass over the account's sites. A listing Wix refuses (4xx) is returned for another
    account (its rows are told), and raises ConfigError for the account itself."""

    async def every_site() -> list[Site]:
        return [site async for site in client.iter_sites(account_id=account,
                                                         page_size=LISTING_PAGE)]

    try:
        sites = await retry(every_site)
    except WixApiError as exc:
        if classify(exc) is not Verdict.FINAL:
            raise
        if exc.status == 401 or main:
            raise ConfigError(
                f"Wix refused to list the account's sites (HTTP {exc.status} "
                f"{exc.code or ''}): the API key needs permission to read sites; check "
                "WIX_API_KEY and WIX_ACCOUNT_ID".replace("  ", " ")
            ) from exc
        log.warning("listing_refused", extra={"account": account, "status": exc.status})
        return exc
    log.info("sites_listed", extra={"account": account, "sites": len(sites)})
    return sites


class _World:
    """The second pass: each row judged against the listings."""

    def __init__(self, needs: _Needs, listings: dict[str, _Listing], ours: set[str]) -> None:
        self._needs = needs
        self._listings = listings
        self._ours = ours
        self._ids = {account: {site.id.lower() for site in found}
                     for account, found in listings.items() if isinstance(found, list)}
        self._by_name: dict[str, list[Site]] = {}
        self._main: dict[str, Site] = {}
        main = listings.get(needs.account)
        for site in main if isinstance(main, list) else []:
            self._by_name.setdefault(site_name_key(site.display_name), []).append(site)
            self._main[site.id.lower()] = site

    @property
    def names_taken(self) -> Collection[str]:
        """The display names of the account's sites, as `site_name_key` makes them."""
        return self._by_name.keys()

    def listed(self, site_id: str) -> Site | None:
        """The account's site of that id, as Query Sites listed it (None: not listed)."""
        return self._main.get(site_id.lower())

    def site_problems(self, spec: OpSpec) -> list[RowError]:
        errors: list[RowError] = []
        for column, site, account in site_refs(spec, self._needs.account):
            problem = self._absent(spec, site, account)
            if problem is not None:
                errors.append(RowError(spec.line, column, problem))
        return errors + self._moved_first(spec)

    def _moved_first(self, spec: OpSpec) -> list[RowError]:
        """An account invite can only name sites of the account: one limited to a site that a
        transfer row moves to another account must go before that transfer (the transfer
        waits for it), or it fails at Wix."""
        if spec.action is not Action.ACCOUNT_INVITE:
            return []
        errors = []
        for site in spec.sites:
            for line, row, target in self._needs.transfers.of(site.lower()):
                if target == self._needs.account or self._needs.waits.waits_for(row, spec.key):
                    continue
                errors.append(RowError(spec.line, "sites", (
                    f"site {show(site)} is moved to account {target} by line {line}, which does "
                    "not wait for this row: an account invite can only name sites of your "
                    "account; make that transfer depend on this row (depends_on), or invite "
                    "to the site with a site_invite row")))
        return errors

    def _absent(self, spec: OpSpec, site: str, account: str) -> str | None:
        """Why `site` cannot be used from `account`, or None when it can."""
        site_l, account_l = site.lower(), account.lower()
        if site_l in self._ours or (site_l, account_l) in self._needs.moves:
            return None
        found = self._listings.get(account_l)
        if isinstance(found, WixApiError):
            return (f"cannot check site {show(site)}: Wix refused to list the sites of "
                    f"from_account {account} (HTTP {found.status} {found.code or ''}): check "
                    "from_account; the API key must be allowed to act for it"
                    .replace("  ", " "))
        if site_l in self._ids.get(account_l, set()):
            return None
        if spec.action is Action.TRANSFER_SITE:
            where = (f"from_account {account}" if spec.from_account
                     else f"your account {account} (from_account is empty)")
            return (f"site {show(site)} is not in {where}: check the site id and from_account "
                    "(Wix lists no such site there)")
        return (f"site {show(site)} is not in your account {account}: check the site id "
                "(Wix lists no such site there)")

    def name_check(
        self, row: Candidate, if_exists: IfExists
    ) -> tuple[RowError | None, Adoption | None]:
        """A create whose display name a site of the account has: refused, or adopted."""
        spec = row.spec
        name = spec.site_name or ""
        found = self._by_name.get(site_name_key(name), [])
        if not found:
            return None, None
        site = found[0]
        if if_exists == "fail":
            return RowError(spec.line, "site_name", (
                f"a site named {show(site.display_name)} already exists in your account (site "
                f"{site.id}, created {when(site.created_at)}): give this row another "
                "site_name, or run with --if-exists adopt to take that site as this row's "
                "result")), None
        if len(found) > 1:
            ids = ", ".join(other.id for other in found)
            return RowError(spec.line, "site_name", (
                f"{len(found)} sites named {show(name)} exist in your account ({ids}): "
                "--if-exists adopt cannot tell which one is this row's; give this row another "
                "site_name")), None
        note = (f"adopted: a site named {show(site.display_name)} already existed in the "
                f"account (created {when(site.created_at)}); nothing was created")
        return None, Adoption(row, site, note)

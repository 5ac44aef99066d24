"""The sandbox's world in memory: sites, the (lagging) site listing, transfers, invites, e-mails,
connected domains and their DNS zones.

Every method is synchronous and the sandbox runs on one event loop, so each effect is atomic
with respect to concurrent requests.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from enum import StrEnum

from bulkops.sandbox.wire import JsonObject

_MAX_SLUG = 50


class InviteKind(StrEnum):
    ACCOUNT = "account"
    SITE = "site"


class InviteStatus(StrEnum):
    """Invite states, cased exactly as Wix sends them."""

    PENDING = "Pending"
    USED = "Used"
    DELETED = "Deleted"
    DECLINED = "Declined"
    EXPIRED = "Expired"


@dataclass(frozen=True)
class Site:
    id: str  # the metaSiteId: the id every other call takes
    component_id: str  # `siteId` of the create response: a different GUID, never the site id
    name: str  # URL slug, unique
    display_name: str
    created_date: str  # ISO-8601 UTC with milliseconds
    owner_account_id: str
    template_id: str
    premium: bool = False
    folder_id: str | None = None
    namespace: str = "WIX"
    published: bool = False
    seeded: bool = False  # put in place through /_sandbox/sites, not created through the API

    def to_wix(self, listed_owner: str) -> JsonObject:
        """The Query Sites form. Absent optional fields are left out, as Wix does."""
        view: JsonObject = {
            "id": self.id, "name": self.name, "displayName": self.display_name,
            "createdDate": self.created_date, "updatedDate": self.created_date,
            "ownerAccountId": listed_owner, "premium": self.premium,
            "published": self.published, "namespace": self.namespace,
        }
        if self.folder_id is not None:
            view["folderId"] = self.folder_id
        return view

    def to_state(self) -> JsonObject:
        return {
            "id": self.id, "siteId": self.component_id, "name": self.name,
            "displayName": self.display_name, "createdDate": self.created_date,
            "ownerAccountId": self.owner_account_id, "templateId": self.template_id,
            "premium": self.premium, "folderId": self.folder_id, "namespace": self.namespace,
            "published": self.published, "seeded": self.seeded,
        }


@dataclass(frozen=True)
class ListingEntry:
    """The listing's (eventually consistent) belief that `owner` has the site, in clock time."""

    owner: str
    visible_from: float
    visible_until: float = math.inf

    def visible(self, owner: str, now: float) -> bool:
        return self.owner == owner and self.visible_from <= now < self.visible_until


@dataclass(frozen=True)
class Transfer:
    site_id: str
    source: str
    target: str
    at: str

    def to_state(self) -> JsonObject:
        return {"siteId": self.site_id, "from": self.source, "to": self.target, "at": self.at}


@dataclass(frozen=True)
class Invite:
    id: str
    kind: InviteKind
    account_id: str
    site_id: str | None  # site invites: the site; account invites: None
    email: str
    policy_ids: tuple[str, ...]
    site_ids: tuple[str, ...]  # account invites: the sites the roles are limited to
    status: InviteStatus
    date_created: str
    expiration_date: str

    @property
    def scope(self) -> str:
        """Where the invite e-mail is about: `account:<account id>` or the site id."""
        return self.site_id if self.site_id is not None else f"account:{self.account_id}"

    def to_state(self) -> JsonObject:
        return {
            "id": self.id, "kind": self.kind.value, "scope": self.scope, "email": self.email,
            "accountId": self.account_id, "siteId": self.site_id,
            "policyIds": list(self.policy_ids), "siteIds": list(self.site_ids),
            "status": self.status.value, "dateCreated": self.date_created,
        }


@dataclass(frozen=True)
class ConnectedDomain:
    """An external domain connected to the account (wix-domains.md (a)); keyed by `domain`.

    `connection_type` None: a subdomain (shown as UNKNOWN_CONNECTION_TYPE). `site_id` None:
    assigned to no site (created without `wix-site-id`, or unassigned by a later PRIMARY).
    """

    domain: str
    account_id: str
    site_id: str | None
    connection_type: str | None  # "POINTING" | "NAMESERVERS" | None
    assignment_type: str  # "PRIMARY" | "REDIRECT" | "UNKNOWN_ASSIGNMENT_TYPE"
    suppress_notifications: bool
    created_date: str
    updated_date: str

    def to_state(self) -> JsonObject:
        return {
            "domain": self.domain, "accountId": self.account_id, "siteId": self.site_id,
            "connectionType": self.connection_type, "assignmentType": self.assignment_type,
            "suppressNotifications": self.suppress_notifications,
            "createdDate": self.created_date, "updatedDate": self.updated_date,
        }


@dataclass(frozen=True)
class ZoneRecord:
    """One DNS record object of a hosted zone: one per (type, host_name) (wix-domains.md (b))."""

    type: str
    host_name: str
    ttl: int
    values: tuple[str, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.type, self.host_name)

    def to_wix(self) -> JsonObject:
        return {"type": self.type, "hostName": self.host_name, "ttl": self.ttl,
                "values": list(self.values)}


@dataclass
class Touched:
    """What changed since the last save, by key: what a journal entry of the state file
    holds (each object whole, as it is now), and the transfers made since, in order."""

    # Keys in the order they were first touched (dicts as ordered sets): a restart puts new
    # objects back in the order they came.
    sites: dict[str, None] = field(default_factory=dict)
    transfers: list[Transfer] = field(default_factory=list)
    invites: dict[str, None] = field(default_factory=dict)
    emails: dict[tuple[str, str], None] = field(default_factory=dict)
    domains: dict[str, None] = field(default_factory=dict)
    zones: dict[str, None] = field(default_factory=dict)

    def clear(self) -> None:
        for part in (self.sites, self.transfers, self.invites, self.emails, self.domains,
                     self.zones):
            part.clear()


def slugify(display_name: str) -> str:
    """The URL-slug part of a display name: lowercase ASCII letters, digits and dashes."""
    ascii_name = unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:_MAX_SLUG].strip("-")
    return slug or "site"


class SandboxState:
    """Everything the sandbox remembers between requests (cleared by /_sandbox/reset).

    `revision` counts the changes made through the methods below, so that the sandbox can
    tell whether a request changed the world (and its state file needs writing).
    """

    def __init__(self) -> None:
        self.sites: dict[str, Site] = {}
        self.listing: dict[str, list[ListingEntry]] = {}
        self.transfers: list[Transfer] = []
        self.invites: dict[str, Invite] = {}
        self.emails_sent: Counter[tuple[str, str]] = Counter()
        self.domains: dict[str, ConnectedDomain] = {}
        # Hosted DNS zones by domain (only NAMESERVERS-connected domains have one), each as
        # its records in zone order.
        self.zones: dict[str, list[ZoneRecord]] = {}
        self.revision = 0
        # What changed since the state file last took it in (`statefile.StateFile`).
        self.touched = Touched()
        self._names: set[str] = set()
        # The next suffix worth trying per slug base: every smaller one is taken, and names are
        # never freed, so each create tries a few slugs, not one per same-named site before it.
        self._next_suffix: dict[str, int] = {}
        # Every account that owns or has owned a site, and the sites each one's listing has
        # ever shown (in creation order): a transfer and a listing read no other account's.
        self._owners: set[str] = set()
        self._listed_by: dict[str, dict[str, None]] = {}
        # The domains assigned to each site: connecting a primary domain looks up the site's.
        self._site_domains: dict[str, dict[str, None]] = {}

    # -- sites ---------------------------------------------------------------------------

    def unique_name(self, display_name: str) -> str:
        """The first free slug of `display_name`, numbered `-1`, `-2`, ... after the plain one."""
        base = slugify(display_name)
        start = self._next_suffix.get(base, 0)
        # n <= len(names) + 1 always finds a free slug, so the loop is bounded.
        for n in range(start, len(self._names) + 2):
            candidate = base if n == 0 else f"{base}-{n}"
            if candidate not in self._names:
                self._next_suffix[base] = n + 1
                return candidate
        raise AssertionError("unreachable: a free slug always exists")

    def add_site(self, site: Site, visible_from: float) -> Site:
        """Store a site; it shows in its owner's listing from `visible_from` (clock time)."""
        return self.restore_site(site, [ListingEntry(site.owner_account_id, visible_from)])

    def restore_site(self, site: Site, entries: list[ListingEntry]) -> Site:
        """Store a site with its listing history as it is (e.g. as read from a state file)."""
        self.sites[site.id] = site
        self._names.add(site.name)
        self._owners.add(site.owner_account_id)
        self.listing[site.id] = entries
        for entry in entries:
            self._listed_by.setdefault(entry.owner, {})[site.id] = None
        self.touched.sites[site.id] = None
        self.revision += 1
        return site

    def restore_transfer(self, transfer: Transfer) -> None:
        """Record a transfer as it was made (e.g. as read from a state file)."""
        self._owners.add(transfer.source)
        self._owners.add(transfer.target)
        self.transfers.append(transfer)
        self.touched.transfers.append(transfer)
        self.revision += 1

    def move_site(self, transfer: Transfer, now: float, lag: float) -> None:
        """Apply a transfer: the owner changes now, the listing catches up after `lag`."""
        site = self.sites[transfer.site_id]
        self.sites[site.id] = replace(site, owner_account_id=transfer.target)
        switch = now + lag
        entries = [
            replace(entry, visible_until=min(entry.visible_until, switch))
            if entry.visible_until > switch else entry
            for entry in self.listing[site.id]
        ]
        self.listing[site.id] = [*entries, ListingEntry(transfer.target, switch)]
        self._listed_by.setdefault(transfer.target, {})[site.id] = None
        self.touched.sites[site.id] = None
        self.restore_transfer(transfer)

    def listed_sites(self, owner: str, now: float, *, only: Collection[str] | None = None
                     ) -> list[JsonObject]:
        """Query Sites' view of `owner`'s sites at clock time `now` (stale within the lag);
        with `only`, of those of these site ids only."""
        listing = self.listing
        ever = self._listed_by.get(owner, {})
        ids = ever if only is None else [site_id for site_id in only if site_id in ever]
        return [
            self.sites[site_id].to_wix(owner)
            for site_id in ids
            if any(entry.visible(owner, now) for entry in listing[site_id])
        ]

    def listing_changes_after(self, owner: str, now: float) -> float:
        """The first clock time after `now` at which `owner`'s listing shows or drops a site
        by itself (a listing lag ending); inf when none is pending. Until then, and while
        `revision` stays, `listed_sites(owner, ...)` answers as it does at `now`."""
        soonest = math.inf
        for site_id in self._listed_by.get(owner, ()):
            for entry in self.listing[site_id]:
                if entry.owner != owner:
                    continue
                for at in (entry.visible_from, entry.visible_until):
                    if now < at < soonest:
                        soonest = at
        return soonest

    def owners(self) -> set[str]:
        """Every account that owns or has owned a site here."""
        # A past owner that is no site's owner now moved its sites away: a transfer's source.
        return set(self._owners)

    # -- invites -------------------------------------------------------------------------

    def add_invite(self, invite: Invite) -> Invite:
        """Store an invite; creating one sends its e-mail."""
        self.invites[invite.id] = invite
        self.touched.invites[invite.id] = None
        self.count_email(invite)  # also steps `revision`
        return invite

    def count_email(self, invite: Invite) -> None:
        sent = (invite.scope, invite.email.lower())
        self.emails_sent[sent] += 1
        self.touched.emails[sent] = None
        self.revision += 1

    def pending_site_invite(self, invite_id: str, site_id: str) -> Invite | None:
        invite = self.invites.get(invite_id)
        if invite is None or invite.site_id != site_id or invite.status != InviteStatus.PENDING:
            return None
        return invite

    def set_invite_status(self, invite: Invite, status: InviteStatus) -> Invite:
        updated = replace(invite, status=status)
        self.invites[invite.id] = updated
        self.touched.invites[invite.id] = None
        self.revision += 1
        return updated

    # -- domains -------------------------------------------------------------------------

    def put_domain(self, domain: ConnectedDomain) -> ConnectedDomain:
        """Store (or replace) a connected domain."""
        old = self.domains.get(domain.domain)
        if old is not None and old.site_id is not None:
            self._site_domains[old.site_id].pop(domain.domain, None)
        if domain.site_id is not None:
            self._site_domains.setdefault(domain.site_id, {})[domain.domain] = None
        self.domains[domain.domain] = domain
        self.touched.domains[domain.domain] = None
        self.revision += 1
        return domain

    def put_zone(self, domain: str, records: list[ZoneRecord]) -> list[ZoneRecord]:
        """Store (or replace) the hosted zone of `domain`."""
        self.zones[domain] = list(records)
        self.touched.zones[domain] = None
        self.revision += 1
        return self.zones[domain]

    def site_domains(self, site_id: str) -> list[ConnectedDomain]:
        """The domains assigned to `site_id`, in the order they were assigned to it."""
        return [self.domains[domain] for domain in self._site_domains.get(site_id, ())]

    # -- inspection ----------------------------------------------------------------------

    def duplicate_sites(self) -> int:
        """Sum over display names of (count - 1), among sites created through the API.

        Seeded sites stand for sites that existed before the run, so they are not duplicates.
        """
        names = Counter(s.display_name for s in self.sites.values() if not s.seeded)
        return sum(count - 1 for count in names.values())

    def snapshot(self) -> JsonObject:
        return {
            "sites": [site.to_state() for site in self.sites.values()],
            "transfers": [transfer.to_state() for transfer in self.transfers],
            "invites": [invite.to_state() for invite in self.invites.values()],
            "emails_sent": [
                {"scope": scope, "email": email, "count": count}
                for (scope, email), count in self.emails_sent.items()
            ],
            "duplicate_invite_emails": sum(c - 1 for c in self.emails_sent.values()),
            "connected_domains": [domain.to_state() for domain in self.domains.values()],
            "dns_zones": [
                {"domain": domain, "records": [record.to_wix() for record in records]}
                for domain, records in self.zones.items()
            ],
            "duplicate_sites": self.duplicate_sites(),
        }

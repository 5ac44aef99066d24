"""The checks of domain rows before a run, on rows and Wix's answers alone: which sites a connect
row names, how a refused domain read is told, which record already holds a row's values, which
records a client sets, and how each connect row is judged against what Wix holds."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bulkops.domaincheck import (
    CONNECTED_NOTE,
    DomainJudge,
    DomainNeeds,
    DomainReads,
    DomainsRefused,
    _job_level,
    client_records,
    holds_as_asked,
)
from bulkops.domainrows import registrable_domain as registrable
from bulkops.errors import WixApiError
from bulkops.model import Action, OpSpec
from bulkops.precheck import Adoption, Candidate, _Needs, _World, site_refs
from bulkops.retry import ReadRetry
from bulkops.wixdomains import ConnectedDomain, DnsRecord, DnsZone
from bulkops.wixwire import Site

ACCOUNT = "11111111-1111-4111-8111-111111111111"
SHOP = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
FREE = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
OTHER = "cccccccc-cccc-4ccc-8ccc-cccccccccccc"


def connect_row(line: int, site: str, domain: str, connection: str | None = "pointing",
                assignment: str = "redirect", key: str | None = None) -> Candidate:
    return Candidate(OpSpec(line=line, key=key or f"c{line}", action=Action.CONNECT_DOMAIN,
                            site=site, domain=domain, connection=connection,
                            assignment=assignment))


def dns_row(line: int, domain: str, kind: str, host: str, values: tuple[str, ...],
            ttl: int | None = None) -> Candidate:
    return Candidate(OpSpec(line=line, key=f"d{line}", action=Action.SET_DNS_RECORD,
                            domain=domain, record_type=kind, host=host, values=values, ttl=ttl))


def site(site_id: str, name: str, premium: bool) -> Site:
    return Site(id=site_id, name=name.lower(), display_name=name, created_at=0.0,
                owner_account_id=ACCOUNT, folder_id=None, namespace="WIX", premium=premium)


def connected(domain: str, site_id: str | None, kind: str = "POINTING",
              assignment: str = "REDIRECT") -> ConnectedDomain:
    return ConnectedDomain(id=domain, domain=domain, connection_type=kind, site_id=site_id,
                           assignment_type=assignment, primary_domain=None,
                           suppress_notifications=True, dns_propagation_status="IN_PROGRESS",
                           created_date=None, updated_date=None)


def zone(domain: str, *records: DnsRecord) -> DnsZone:
    return DnsZone(id=domain, domain_name=domain, records=records, dnssec_enabled=False)


# -- rows alone ---------------------------------------------------------------------------------


def test_a_connect_rows_site_named_by_id_must_be_in_the_account() -> None:
    assert site_refs(connect_row(2, SHOP, "client.com").spec, ACCOUNT) == [
        ("site", SHOP, ACCOUNT)]
    assert site_refs(connect_row(2, "@made", "client.com").spec, ACCOUNT) == []
    assert site_refs(dns_row(3, "client.com", "TXT", "client.com", ("x",)).spec, ACCOUNT) == []


@pytest.mark.parametrize(
    ("domain", "root"),
    [("client.com", "client.com"), ("shop.client.com", "client.com"),
     ("shop.client.co.uk", "client.co.uk"), ("a.b.client.com.au", "client.com.au")],
)
def test_availability_is_asked_of_the_domain_someone_buys(domain: str, root: str) -> None:
    assert registrable(domain) == root


def test_the_domain_needs_of_the_rows_still_to_do() -> None:
    needs = DomainNeeds()
    for row in (Candidate(OpSpec(line=2, key="m", action=Action.CREATE_SITE, site_name="M")),
                connect_row(5, "@m", "client.com", "nameservers"),
                dns_row(4, "client.com", "TXT", "client.com", ("x",)),
                dns_row(6, "other.com", "TXT", "other.com", ("x",))):
        needs.take(row.spec)
    assert (needs.first_line, needs.rows) == (4, 3)
    assert needs.connects == {"client.com": "nameservers"}
    assert needs.dns == {"client.com", "other.com"} and needs.refs == {"m"}


# -- refused reads ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [(403, "DOMAINS_PERMISSION_DENIED"), (403, None), (401, None), (403, "SOMETHING_ELSE")],
)
def test_a_refused_key_is_told_to_get_the_manage_domains_permission(
    status: int, code: str | None
) -> None:
    refused = DomainsRefused(WixApiError(status, "no", code=code), "the account's domains")
    assert str(refused).startswith(f"Wix refused to read the account's domains (HTTP {status}")
    assert '"Manage Domains" permission (API Keys Manager' in str(refused)
    assert str(refused).endswith("; nothing was sent") and "\n" not in str(refused)
    assert not refused.problem.endswith("nothing was sent")


def test_a_refused_account_is_told_to_check_the_account() -> None:
    refused = DomainsRefused(WixApiError(403, "no", code="DOMAINS_GUID_NOT_FOUND"), "x")
    assert "check WIX_ACCOUNT_ID" in str(refused) and "Manage Domains" not in str(refused)


@pytest.mark.parametrize(
    ("status", "code", "whole_job"),
    [(403, "DOMAINS_PERMISSION_DENIED", True), (401, None, True),
     (404, "TARGET_ACCOUNT_NOT_FOUND", True), (403, "DOMAINS_GUID_NOT_FOUND", True),
     (403, "DOMAINS_DOMAIN_NOT_PERMITTED", False), (404, "DNS_ZONE_NOT_FOUND", False),
     (428, "DOMAIN_NOT_PERMITTED", False), (400, "INVALID_DOMAIN", False)],
)
def test_which_refusals_are_the_whole_jobs(status: int, code: str | None,
                                           whole_job: bool) -> None:
    assert _job_level(WixApiError(status, "no", code=code)) is whole_job


# -- records ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "holds"),
    [
        # Values compare as sets; host names without their trailing dot, in any case.
        (dns_row(2, "c.com", "A", "c.com", ("2.2.2.2", "1.1.1.1")), True),
        (dns_row(2, "c.com", "A", "c.com", ("1.1.1.1",)), False),
        (dns_row(2, "c.com", "CNAME", "www.c.com", ("Target.Example.net",)), True),
        # TXT values compare without the quotes a zone may keep.
        (dns_row(2, "c.com", "TXT", "c.com", ("v=spf1 -all",)), True),
        # A ttl in the row must be the record's; none in the row takes any.
        (dns_row(2, "c.com", "A", "c.com", ("1.1.1.1", "2.2.2.2"), ttl=3600), True),
        (dns_row(2, "c.com", "A", "c.com", ("1.1.1.1", "2.2.2.2"), ttl=600), False),
        (dns_row(2, "c.com", "MX", "c.com", ("10 mail.c.com",)), False),  # no such record
    ],
)
def test_a_record_holds_a_rows_values_as_a_set_and_its_ttl(row: Candidate, holds: bool) -> None:
    found = zone("c.com", DnsRecord("A", "c.com", ("1.1.1.1", "2.2.2.2"), 3600),
                 DnsRecord("CNAME", "www.c.com", ("target.example.net.",), 3600),
                 DnsRecord("TXT", "c.com", ('"v=spf1 -all"',), 3600))
    assert holds_as_asked(row.spec, found) is holds


PREVIEW = zone(
    "c.com",
    DnsRecord("NS", "c.com", ("ns0.wixdns.net", "ns1.wixdns.net"), 86400),
    DnsRecord("SOA", "c.com", ("ns0.wixdns.net. support.wix.com. 1",), 3600),
    DnsRecord("A", "c.com", ("185.230.63.107",), 3600),
    DnsRecord("CNAME", "www.c.com", ("pointing.wixdns.net",), 3600),
)


def test_the_records_a_client_sets_depend_on_the_connection() -> None:
    assert [r.type for r in client_records("c.com", "pointing", PREVIEW)] == ["A", "CNAME"]
    assert [r.type for r in client_records("c.com", "nameservers", PREVIEW)] == ["NS"]
    # A subdomain: a CNAME at its own name (the preview's own, else its target there).
    sub = replace(PREVIEW, records=tuple(replace(r, host_name="www.shop.c.com")
                                         if r.type == "CNAME" else r for r in PREVIEW.records))
    assert client_records("shop.c.com", None, sub) == (
        DnsRecord("CNAME", "shop.c.com", ("pointing.wixdns.net",), 3600),)
    own = zone("shop.c.com", DnsRecord("CNAME", "shop.c.com", ("cdn1.wixdns.net",), 60))
    assert client_records("shop.c.com", None, own) == own.records


# -- connect rows judged ------------------------------------------------------------------------


def _judge(rows: list[Candidate], held: list[ConnectedDomain],
           zones: dict[str, DnsZone | str] | None = None,
           planning: bool = False) -> DomainJudge:
    needs, wanted = _Needs(ACCOUNT), DomainNeeds()
    for row in rows:
        needs.take(row)
        wanted.take(row.spec)
    listing = [site(SHOP, "Shop", True), site(FREE, "Free", False), site(OTHER, "Other", True)]
    world = _World(needs, {ACCOUNT: listing}, set())
    reads = DomainReads(None, wanted, planning=planning,  # type: ignore[arg-type]
                        retry=ReadRetry(attempts=1, base=0.0))
    reads.connected = {d.domain: d for d in held}
    reads.zones = zones or {}
    return DomainJudge(reads, world.listed, wanted)


def _judged(judge: DomainJudge, rows: list[Candidate],
            adoptions: dict[int, Adoption] | None = None) -> dict[int, list[str]]:
    problems: dict[int, list[str]] = {}
    for row in rows:
        for error in judge.take(row, (adoptions or {}).get(row.spec.line)):
            problems.setdefault(error.line, []).append(f"{error.column}: {error.reason}")
    for error in judge.finish():
        problems.setdefault(error.line, []).append(f"{error.column}: {error.reason}")
    return problems


def test_a_domain_connected_as_the_row_asks_is_settled_and_anything_else_is_a_problem() -> None:
    rows = [
        connect_row(2, SHOP, "same.com"),
        connect_row(3, SHOP.upper(), "shop.sub.com", connection=None),
        connect_row(4, SHOP, "moved.com"),
        connect_row(5, SHOP, "kind.com", connection="nameservers"),
        connect_row(6, SHOP, "role.com", assignment="primary"),
        connect_row(7, SHOP, "fresh.com"),
    ]
    judge = _judge(rows, [
        connected("same.com", SHOP), connected("shop.sub.com", SHOP, "UNKNOWN_CONNECTION_TYPE"),
        connected("moved.com", OTHER), connected("kind.com", SHOP),
        connected("role.com", SHOP, assignment="REDIRECT"),
    ])
    problems = _judged(judge, rows)
    assert [(s.row.spec.line, s.domain, s.site_id, s.note) for s in judge.settled] == [
        (2, "same.com", SHOP, CONNECTED_NOTE), (3, "shop.sub.com", SHOP, CONNECTED_NOTE)]
    assert sorted(problems) == [4, 5, 6]
    assert problems[4] == [
        f"domain: moved.com is connected already to site {OTHER} (pointing, redirect), not as "
        f"this row asks (site {SHOP}, pointing, redirect): bulkops never changes an existing "
        "connection; change it in the Wix dashboard, or change this row to match what is there"]
    assert "kind.com is connected already" in problems[5][0]
    assert "role.com is connected already" in problems[6][0]


def test_a_connect_rows_site_needs_premium_and_one_the_file_creates_has_none_yet() -> None:
    made = Candidate(OpSpec(line=2, key="made", action=Action.CREATE_SITE, site_name="Made"))
    adopted = Candidate(OpSpec(line=3, key="old", action=Action.CREATE_SITE, site_name="Old"))
    rows = [
        connect_row(4, "@made", "made.com"),  # before or after its create: the same
        made, adopted,
        connect_row(5, FREE, "free.com"),
        connect_row(6, "@old", "old.com"),
        connect_row(7, "@earlier", "earlier.com"),  # a site an earlier run made: not judged
        connect_row(8, "@made", "taken.com"),
    ]
    judge = _judge(rows, [connected("taken.com", OTHER)])
    free_site = site(FREE, "Old Free", False)
    problems = _judged(judge, rows, {3: Adoption(adopted, free_site, "adopted")})
    assert sorted(problems) == [4, 5, 6, 8]
    assert problems[4] == [
        "site: site '@made' is created by line 2 of this file, so it has no Premium plan yet, "
        "and Wix connects domains only to Premium sites: connect the domain in a later run, "
        "once the site has a plan"]
    assert problems[5] == [
        f"site: site '{FREE}' ('Free') has no Premium plan, and Wix connects domains only to "
        "Premium sites: add a Premium plan to the site first"]
    assert "('Old Free') has no Premium plan" in problems[6][0]
    # A site still to make has no connection either: one there is another site's.
    assert [p.split(":")[0] for p in problems[8]] == ["domain", "site"]
    assert judge.settled == []


def test_a_connect_row_after_its_create_is_judged_at_once_and_not_held_to_the_end() -> None:
    """A million-row job keeps no stored record per connect row: only those whose create comes
    later (or an earlier run made) wait for `finish`, with the same problems either way."""
    made = Candidate(OpSpec(line=2, key="made", action=Action.CREATE_SITE, site_name="Made"))
    rows = [made, connect_row(3, "@made", "made.com"), connect_row(4, "@later", "later.com")]
    judge = _judge(rows, [])
    assert judge.take(rows[0], None) == []
    assert [error.line for error in judge.take(rows[1], None)] == [3]
    assert judge.take(rows[2], None) == []
    assert [row.spec.line for row in judge._later] == [4]


def test_dns_rows_of_a_zone_wix_does_not_host_are_each_a_problem_and_a_plan_finds_done_ones(
) -> None:
    rows = [
        dns_row(2, "gone.com", "TXT", "gone.com", ("x",)),
        dns_row(3, "hosted.com", "A", "hosted.com", ("1.1.1.1",)),
        dns_row(4, "hosted.com", "A", "www.hosted.com", ("1.1.1.1",)),
        dns_row(5, "gone.com", "MX", "gone.com", ("10 m.gone.com",)),
    ]
    zones: dict[str, DnsZone | str] = {
        "gone.com": "Wix hosts no DNS zone for gone.com",
        "hosted.com": zone("hosted.com", DnsRecord("A", "hosted.com", ("1.1.1.1",), 3600)),
    }
    run = _judge(rows, [], zones)
    assert _judged(run, rows) == {2: ["domain: Wix hosts no DNS zone for gone.com"],
                                  5: ["domain: Wix hosts no DNS zone for gone.com"]}
    assert run.as_asked == []  # a run's own family finds them done
    plan = _judge(rows, [], zones, planning=True)
    _judged(plan, rows)
    assert [row.spec.line for row in plan.as_asked] == [3]

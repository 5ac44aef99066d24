"""Query Sites answered from kept results (`sandbox/listings.py`): the same pages as sorting the
account's sites afresh for each request, and never a page the world has moved past."""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bulkops.sandbox import DEFAULT_ACCOUNT_ID, DEFAULT_SUB_ACCOUNTS, Sandbox, SandboxConfig
from bulkops.sandbox.domains_api import _first_after
from bulkops.sandbox.query import SiteQuery, compile_filter, parse_query, pinned_ids
from bulkops.sandbox.state import ConnectedDomain, Transfer
from bulkops.sandbox.wire import JsonObject, format_instant

ACCOUNT = DEFAULT_ACCOUNT_ID
SUB = DEFAULT_SUB_ACCOUNTS[0]
START = datetime(2024, 5, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def sandbox(lag: float = 0.0) -> tuple[Sandbox, Clock]:
    clock = Clock()
    return Sandbox(SandboxConfig(listing_lag=lag), clock=clock), clock


def reference_page(box: Sandbox, query: SiteQuery) -> list[str]:
    """The page as the listing used to be answered: filter, then one comparison function over
    the whole sort key, for every request."""
    spec = query.filter
    spec = {"$and": [spec, {"namespace": "WIX"}]} if spec else {"namespace": "WIX"}
    matches = compile_filter(spec)
    sites = [s for s in box.state.listed_sites(ACCOUNT, box.clock()) if matches(s)]
    if query.after is not None:
        after = query.after
        sites = [s for s in sites if query.compare(query.key(s), after) > 0]
    sites.sort(key=functools.cmp_to_key(lambda a, b: query.compare(query.key(a), query.key(b))))
    return [s["id"] for s in sites[: query.limit]]


def every_page(box: Sandbox, query: dict[str, Any]) -> list[list[str]]:
    """Page through the listing as a client does, checking each page against the reference."""
    pages: list[list[str]] = []
    body: JsonObject = {"query": query}
    while True:
        parsed = parse_query(body)
        answer = box.listings.page(box.state, ACCOUNT, parsed, box.clock())
        ids = [site["id"] for site in answer["sites"]]
        assert ids == reference_page(box, parsed)
        pages.append(ids)
        cursor = answer["metadata"]["cursors"]["next"]
        if cursor is None:
            return pages
        body = {"query": {"cursorPaging": {"limit": query["cursorPaging"]["limit"],
                                           "cursor": cursor}}}


def fill(box: Sandbox, count: int) -> None:
    """Sites with repeated names and created dates, so that ties decide many places."""
    for n in range(count):
        box.add_site(f"Site {n % 7}", ACCOUNT, created_date=START + timedelta(seconds=n % 13),
                     folder_id="f" if n % 3 else None, seeded=True)


@pytest.mark.parametrize("sort", [
    None,
    [{"fieldName": "displayName", "order": "ASC"}],
    [{"fieldName": "displayName", "order": "DESC"}, {"fieldName": "createdDate"}],
    [{"fieldName": "createdDate", "order": "ASC"}, {"fieldName": "name", "order": "DESC"}],
])
def test_paging_through_kept_results_gives_the_pages_of_a_fresh_sort(sort: Any) -> None:
    box, _ = sandbox()
    fill(box, 530)
    query: dict[str, Any] = {"cursorPaging": {"limit": 37}}
    if sort is not None:
        query["sort"] = sort
    pages = every_page(box, query)
    seen = [site for page in pages for site in page]
    assert len(seen) == len(set(seen)) == 530
    folder = every_page(box, {**query, "filter": {"folderId": "f"}})
    assert sum(len(page) for page in folder) == sum(1 for n in range(530) if n % 3)


def test_a_change_between_pages_is_seen_by_the_next_request() -> None:
    box, _ = sandbox()
    fill(box, 50)
    first = parse_query({"query": {"cursorPaging": {"limit": 10}}})
    box.listings.page(box.state, ACCOUNT, first, box.clock())
    newest = box.add_site("Newest", ACCOUNT, created_date=START + timedelta(days=1),
                          seeded=True)
    answer = box.listings.page(box.state, ACCOUNT, first, box.clock())
    assert answer["sites"][0]["id"] == newest.id
    site = answer["sites"][1]["id"]
    box.state.move_site(Transfer(site, ACCOUNT, SUB, box.now_iso()), box.clock(), 0.0)
    ids = [s["id"] for s in box.listings.page(box.state, ACCOUNT, first, box.clock())["sites"]]
    assert site not in ids and ids[0] == newest.id


def test_a_site_shows_when_its_lag_ends_with_nothing_else_changed() -> None:
    box, clock = sandbox(lag=10.0)
    fill(box, 20)
    created = box.add_site("Lagging", ACCOUNT, created_date=START + timedelta(days=1))
    query = parse_query({"query": {"cursorPaging": {"limit": 5}}})

    def first_ids() -> list[str]:
        return [s["id"] for s in box.listings.page(box.state, ACCOUNT, query, clock())["sites"]]

    clock.now += 9.9
    assert created.id not in first_ids()
    clock.now += 0.1
    assert first_ids()[0] == created.id


def test_nothing_kept_answers_after_a_reset() -> None:
    box, _ = sandbox()
    fill(box, 30)
    query = parse_query({"query": {"cursorPaging": {"limit": 5}}})
    assert box.listings.page(box.state, ACCOUNT, query, box.clock())["sites"]
    kept = box.listings
    box.reset()
    assert kept.page(box.state, ACCOUNT, query, box.clock())["sites"] == []


@pytest.mark.parametrize(("spec", "picks"), [
    ({"id": "A"}, {"A"}),
    ({"id": {"$eq": "B"}}, {"B"}),
    ({"id": {"$in": ["A", "C", "nowhere"]}}, {"A", "C", "nowhere"}),
    ({"$and": [{"id": {"$in": ["A", "B"]}}, {"folderId": "f"}]}, {"A", "B"}),
    ({"$and": [{"id": "A"}, {"id": "B"}]}, set()),
    ({"$or": [{"id": "A"}, {"id": "B"}]}, None),
    ({"id": {"$ne": "A"}}, None),
    ({"$not": {"id": "A"}}, None),
])
def test_a_filter_that_pins_ids_reads_only_those_sites(spec: JsonObject,
                                                       picks: set[str] | None) -> None:
    box, _ = sandbox()
    fill(box, 12)
    named = dict(zip("ABC", list(box.state.sites)[3:6], strict=True))

    def rename(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: rename(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rename(v) for v in value]
        return named.get(value, value)

    spec = rename(spec)
    pinned = pinned_ids(spec)
    assert pinned == (None if picks is None else {named.get(p, p) for p in picks})
    query = parse_query({"query": {"filter": spec, "cursorPaging": {"limit": 100}}})
    answer = box.listings.page(box.state, ACCOUNT, query, box.clock())
    assert [s["id"] for s in answer["sites"]] == reference_page(box, query)


def test_many_sites_of_one_name_each_get_the_first_free_slug() -> None:
    box, _ = sandbox()
    box.add_site("Shop 3", ACCOUNT)  # takes "shop-3" before any "Shop" is numbered
    names = [box.add_site("Shop", ACCOUNT).name for _ in range(400)]
    assert names[:5] == ["shop", "shop-1", "shop-2", "shop-4", "shop-5"]
    assert len(set(names)) == 400 and names[-1] == "shop-400"


def test_a_past_owner_stays_a_known_account_after_a_restart(tmp_path: Any) -> None:
    config = SandboxConfig(state_file=tmp_path / "world.json",
                           sub_accounts=(SUB,), forbidden_transfer_targets=frozenset())
    box = Sandbox(config)
    outsider = "33333333-3333-4333-8333-333333333333"
    site = box.add_site("Theirs", outsider, seeded=True)
    box.state.move_site(Transfer(site.id, outsider, ACCOUNT, box.now_iso()), box.clock(), 0.0)
    box.persist()
    assert outsider in box.known_accounts()
    assert outsider in Sandbox(config).known_accounts()


def connect(box: Sandbox, n: int, site: str | None, *, account: str = ACCOUNT,
            primary: bool = False) -> ConnectedDomain:
    created = format_instant(START + timedelta(seconds=n % 5))
    return box.state.put_domain(ConnectedDomain(
        domain=f"d{n:03d}.example.com", account_id=account, site_id=site,
        connection_type="POINTING", assignment_type="PRIMARY" if primary else "REDIRECT",
        suppress_notifications=False, created_date=created, updated_date=created))


def test_connected_domains_page_in_order_from_any_position() -> None:
    box, _ = sandbox()
    for n in range(60):
        connect(box, n, None, account=ACCOUNT if n % 4 else SUB)
    mine = box.listings.connected_domains(box.state, ACCOUNT)
    expected = sorted((d for d in box.state.domains.values() if d.account_id == ACCOUNT),
                      key=lambda d: ([-ord(c) for c in d.created_date], d.domain))
    assert mine == expected
    for index, domain in enumerate(mine):
        assert _first_after(mine, (domain.created_date, domain.domain)) == index + 1
    connect(box, 99, None)  # a change: the next listing has it
    assert len(box.listings.connected_domains(box.state, ACCOUNT)) == len(mine) + 1


def test_a_sites_domains_follow_reassignment_and_a_restart(tmp_path: Any) -> None:
    config = SandboxConfig(state_file=tmp_path / "world.json")
    box = Sandbox(config)
    site, other = (box.add_site(name, ACCOUNT, seeded=True).id for name in ("One", "Two"))
    first = connect(box, 1, site, primary=True)
    connect(box, 2, site)
    box.persist()
    box.state.put_domain(replace(first, site_id=other))  # moved to another site
    connect(box, 3, other)
    box.persist()
    for world in (box, Sandbox(config)):
        assert [d.domain for d in world.state.site_domains(site)] == ["d002.example.com"]
        assert [d.domain for d in world.state.site_domains(other)] == [
            "d001.example.com", "d003.example.com"]

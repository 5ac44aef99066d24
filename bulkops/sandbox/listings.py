"""Query Sites over an account's listing, and List Connected Domains, each query's whole result
kept while the world stands still: paging through an account of N sites (or domains) sorts them
once, not once a page.

A client reading every site of a large account (`plan`, the checks before a run, a
reconciliation) asks for N / 100 pages in a row; sorting the account's sites for each page
made that quadratic, minutes at a few tens of thousands of sites. A kept result answers until
the world changes (`SandboxState.revision`) or a listing lag ends by itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bulkops.sandbox.query import SiteQuery, page_of, pinned_ids, select
from bulkops.sandbox.state import ConnectedDomain, SandboxState
from bulkops.sandbox.wire import JsonObject

# Results kept at once: a few readers paging through a few accounts or filters together.
KEPT_RESULTS = 8


@dataclass(frozen=True)
class _Kept:
    state: SandboxState  # a reset makes a new state: nothing kept for the old one answers
    revision: int
    until: float  # clock time the listing changes by itself (a lag ending); inf: never
    sites: list[JsonObject]


class Listings:
    """Query Sites answers for one sandbox, from kept results where they still hold."""

    def __init__(self) -> None:
        self._kept: dict[tuple[str, str], _Kept] = {}
        self._domains: dict[str, tuple[SandboxState, int, list[ConnectedDomain]]] = {}

    def page(self, state: SandboxState, owner: str, query: SiteQuery, now: float
             ) -> JsonObject:
        """The page `query` asks for of `owner`'s listing at clock time `now` (seconds)."""
        pinned = pinned_ids(query.filter)
        if pinned is not None:  # a look-up of a few sites by id: nothing to sort or keep
            return page_of(query, select(query, state.listed_sites(owner, now, only=pinned)))
        signature = (owner, json.dumps([query.filter, query.sort], sort_keys=True))
        kept = self._kept.pop(signature, None)
        if (kept is None or kept.state is not state or kept.revision != state.revision
                or now >= kept.until):
            kept = _Kept(state, state.revision, state.listing_changes_after(owner, now),
                         select(query, state.listed_sites(owner, now)))
            # A result of an earlier revision can never answer again: no use holding it.
            self._kept = {key: other for key, other in self._kept.items()
                          if other.state is state and other.revision == state.revision}
        self._kept[signature] = kept  # the most recently used last
        while len(self._kept) > KEPT_RESULTS:
            del self._kept[next(iter(self._kept))]
        return page_of(query, kept.sites)

    def connected_domains(self, state: SandboxState, account: str) -> list[ConnectedDomain]:
        """`account`'s connected domains, newest first, ties by domain name."""
        kept = self._domains.get(account)
        if kept is None or kept[0] is not state or kept[1] != state.revision:
            mine = sorted((d for d in state.domains.values() if d.account_id == account),
                          key=lambda d: d.domain)
            mine.sort(key=lambda d: d.created_date, reverse=True)  # stable: ties stay by name
            kept = self._domains[account] = (state, state.revision, mine)
        return kept[2]

"""Action families: one module each behind `ActionFamily`; `family_of` picks a row's family.

A new action is a new module and one more entry in `FAMILIES`; the engine does not change.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable

from bulkops.actions.base import (
    ActionContext,
    ActionFamily,
    CallFailed,
    Done,
    Missing,
    Rejected,
    RowOutcome,
    site_of,
)
from bulkops.actions.domains import ConnectDomains, SetDnsRecords
from bulkops.actions.invites import AccountInvites, SiteInvites
from bulkops.actions.sites import CreateSites
from bulkops.actions.transfers import TransferSites
from bulkops.model import Action, OpRecord, OpSpec
from bulkops.roles import RoleBook

FAMILIES: tuple[ActionFamily, ...] = (CreateSites(), TransferSites(), SiteInvites(),
                                      AccountInvites(), ConnectDomains(), SetDnsRecords())
_BY_ACTION: dict[Action, ActionFamily] = {
    action: family for family in FAMILIES for action in family.actions
}

__all__ = [
    "FAMILIES", "ActionContext", "ActionFamily", "CallFailed", "Done", "Missing", "Rejected",
    "RowOutcome", "calls_needed", "family_of", "site_of",
]


def family_of(action: Action) -> ActionFamily:
    """The family that sends `action`'s rows. KeyError for an action no family serves."""
    return _BY_ACTION[action]


def calls_needed(specs: Iterable[OpSpec], roles: RoleBook) -> Counter[Action]:
    """The fewest calls that send `specs`, per action, as the engine groups them: rows with the
    same batch key share calls of up to the family's batch size, unless one waits for the
    other (a row that depends, directly or not, on a row of its own action goes in a later
    call). `@key` references count as the sites they will name (two rows naming `@a` go to
    one site). A call counts with the reads it makes besides its write (`reads_per_call`)."""
    specs = list(specs)
    waves = _waves(specs)
    groups: Counter[tuple[Action, Hashable, int]] = Counter()
    for number, spec in enumerate(specs):
        refs = {key: f"@{key}" for key in spec.dependency_keys()}
        op = OpRecord(op_id=-1 - number, job_id="", seq=number, spec=spec, refs=refs)
        key = family_of(spec.action).batch_key(op, roles)
        groups[(spec.action, key, waves[number])] += 1
    calls: Counter[Action] = Counter()
    for (action, _, _), rows in groups.items():
        family = family_of(action)
        calls[action] += math.ceil(rows / family.batch_size) * (1 + family.reads_per_call)
    return calls


def _waves(specs: list[OpSpec]) -> list[int]:
    """For each spec: how many rows of its own action lie on the longest chain of dependencies
    that ends at it, among `specs` (rows of one wave may share a call; a later wave cannot
    share one with an earlier). Iterative, so a long chain cannot exhaust the stack."""
    index = {spec.key: number for number, spec in enumerate(specs)}
    # Per row: the most rows of each action on a chain ending at it (itself included).
    most: dict[int, Counter[Action]] = {}
    for start in range(len(specs)):
        stack, on_stack = [start], {start}
        while stack:
            number = stack[-1]
            deps = [index[k] for k in specs[number].dependency_keys() if k in index]
            pending = [d for d in deps if d not in most and d not in on_stack]
            if number in most or pending:
                if number in most:
                    stack.pop()
                    on_stack.discard(number)
                stack.extend(pending)
                on_stack.update(pending)
                continue
            stack.pop()
            on_stack.discard(number)
            counts: Counter[Action] = Counter()
            for d in deps:
                for action, rows in most.get(d, Counter()).items():
                    counts[action] = max(counts[action], rows)
            counts[specs[number].action] += 1
            most[number] = counts
    return [most[number][spec.action] for number, spec in enumerate(specs)]

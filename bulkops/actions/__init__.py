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
from bulkops.actions.invites import AccountInvites, SiteInvites
from bulkops.actions.sites import CreateSites
from bulkops.actions.transfers import TransferSites
from bulkops.model import Action, OpRecord, OpSpec
from bulkops.roles import RoleBook

FAMILIES: tuple[ActionFamily, ...] = (CreateSites(), TransferSites(), SiteInvites(),
                                      AccountInvites())
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
    same batch key share calls of up to the family's batch size. `@key` references count as
    the sites they will name (two rows naming `@a` go to one site)."""
    groups: Counter[tuple[Action, Hashable]] = Counter()
    for number, spec in enumerate(specs):
        refs = {key: f"@{key}" for key in spec.dependency_keys()}
        op = OpRecord(op_id=-1 - number, job_id="", seq=number, spec=spec, refs=refs)
        groups[(spec.action, family_of(spec.action).batch_key(op, roles))] += 1
    calls: Counter[Action] = Counter()
    for (action, _), rows in groups.items():
        calls[action] += math.ceil(rows / family_of(action).batch_size)
    return calls

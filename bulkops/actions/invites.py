"""site_invite and account_invite: many invitees per call, partial success mapped back per row.

Wix (wix-api.md, "Account invites" and "Site invites"):
- `POST /invites/account-invite/create` takes at most 50 invitees (`subjectsAssignments`), each
  with roles of its own; `failedInvites` names the ones refused inside the 200.
- `POST /invites/site-invite/bulk` invites many emails to one site (`wix-site-id`) with the same
  roles; `failedEmails` names the ones refused.
No call lists pending invites, so an unknown outcome cannot be looked up: the engine's resend
policy applies (one duplicate email rather than a missing invite, said in the row's note).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from bulkops.actions.base import (
    ActionContext,
    CallFailed,
    Done,
    FamilyDefaults,
    Missing,
    Rejected,
    RowOutcome,
    hint_in,
    site_of,
)
from bulkops.errors import BulkOpsError, WixError
from bulkops.model import Action, OpRecord
from bulkops.roles import Level, RoleBook
from bulkops.wix import AccountInvitee, InviteResult

MAX_ACCOUNT_INVITEES = 50  # wix-api.md: "at most 50 invitees per call"
# Wix documents no limit for site-invite/bulk; a call this size keeps one failure's reach small.
MAX_SITE_INVITEES = 50

# Rows refused without an HTTP error: the row's own values.
_HINTS = {
    "ROLE_NOT_RESOLVED": (
        "use a role title from the list (any case) or its numeric id; several roles are "
        "separated by ';' — a spreadsheet may also have rounded a long id: format the column "
        "as text"
    ),
    "INVITE_FAILED": (
        "Wix refused this invitee: check the e-mail address (an address it cannot invite, or "
        "one that is a member already)"
    ),
}


class _Invites(FamilyDefaults):
    checkable = False
    look_up_size = 1

    async def look_up(
        self, ops: Sequence[OpRecord], ctx: ActionContext, *, now: float
    ) -> list[Done | Rejected | None]:
        raise ValueError("invites cannot be looked up: Wix lists no pending invites")

    def hint(self, code: str | None) -> str | None:
        return hint_in(_HINTS, code)


class SiteInvites(_Invites):
    actions = frozenset({Action.SITE_INVITE})
    batch_size = MAX_SITE_INVITEES
    gathers = False  # only rows for the same site and roles share a call

    def batch_key(self, op: OpRecord, roles: RoleBook) -> Hashable:
        """One call per (site, role set): Wix gives every email of a call the same roles."""
        assert op.spec.site is not None
        policy_ids = _policy_ids(op, roles, "site")
        if policy_ids is None:
            return ("alone", op.op_id)  # refused before sending; never shares a call
        return (site_of(op, op.spec.site), frozenset(policy_ids))

    async def send(self, ops: Sequence[OpRecord], ctx: ActionContext) -> list[RowOutcome]:
        first = ops[0]
        assert first.spec.site is not None
        try:
            policy_ids = _resolve(first, ctx.roles, "site")
        except BulkOpsError as exc:
            return [Rejected("ROLE_NOT_RESOLVED", str(exc), sent=False) for _ in ops]
        emails = [_email(op) for op in ops]
        results = await ctx.client.create_site_invites(
            site_id=site_of(first, first.spec.site), policy_ids=policy_ids, emails=emails
        )
        return _per_row(results, emails)


class AccountInvites(_Invites):
    actions = frozenset({Action.ACCOUNT_INVITE})
    batch_size = MAX_ACCOUNT_INVITEES
    gathers = True

    def batch_key(self, op: OpRecord, roles: RoleBook) -> Hashable:
        """Any account invites may share a call: each invitee carries its own roles."""
        if _policy_ids(op, roles, _level(op)) is None:
            return ("alone", op.op_id)
        return "account"

    async def send(self, ops: Sequence[OpRecord], ctx: ActionContext) -> list[RowOutcome]:
        outcomes: list[RowOutcome | None] = [None] * len(ops)
        invitees: list[AccountInvitee] = []
        sent: list[int] = []
        for index, op in enumerate(ops):
            try:
                policy_ids = _resolve(op, ctx.roles, _level(op))
            except BulkOpsError as exc:
                outcomes[index] = Rejected("ROLE_NOT_RESOLVED", str(exc), sent=False)
                continue
            sites = tuple(site_of(op, site) for site in op.spec.sites)
            invitees.append(AccountInvitee(_email(op), policy_ids, sites))
            sent.append(index)
        # An email twice in one call would make its answer ambiguous: such a row (the same
        # person invited to other sites) goes in a call of its own after the first.
        for number, part in enumerate(_distinct_emails(list(zip(sent, invitees, strict=True)))):
            try:
                results = await ctx.client.create_account_invites([i for _, i in part])
            except WixError as exc:
                if number == 0:
                    raise  # nothing of the batch went out
                mapped: list[RowOutcome] = [CallFailed(exc) for _ in part]
            else:
                mapped = _per_row(results, [i.email for _, i in part])
            for (index, _), outcome in zip(part, mapped, strict=True):
                outcomes[index] = outcome
        return [outcome for outcome in outcomes if outcome is not None]


def _distinct_emails(
    items: list[tuple[int, AccountInvitee]],
) -> list[list[tuple[int, AccountInvitee]]]:
    """`items` split into parts in which no email appears twice (usually one part)."""
    parts: list[list[tuple[int, AccountInvitee]]] = []
    seen: list[set[str]] = []
    for item in items:
        email = item[1].email.strip().casefold()
        for part, emails in zip(parts, seen, strict=True):
            if email not in emails:
                part.append(item)
                emails.add(email)
                break
        else:
            parts.append([item])
            seen.append({email})
    return parts


def _level(op: OpRecord) -> Level:
    # A role limited to some sites is given at site level; without sites, account-wide.
    return "site" if op.spec.sites else "account"


def _email(op: OpRecord) -> str:
    assert op.spec.email is not None
    return op.spec.email


def _resolve(op: OpRecord, roles: RoleBook, level: Level) -> tuple[str, ...]:
    """The row's policy ids; raises RoleError (a BulkOpsError) for a role that cannot be given."""
    return roles.resolve_all(op.spec.roles, level)


def _policy_ids(op: OpRecord, roles: RoleBook, level: Level) -> tuple[str, ...] | None:
    try:
        return _resolve(op, roles, level)
    except BulkOpsError:
        return None


def _per_row(results: Sequence[InviteResult], emails: Sequence[str]) -> list[RowOutcome]:
    """Each requested email's outcome. Emails are compared case-insensitively (Wix may
    normalise them); an email the answer does not mention is Missing (outcome unknown)."""
    by_email = {result.email.strip().casefold(): result for result in results}
    outcomes: list[RowOutcome] = []
    for email in emails:
        result = by_email.get(email.strip().casefold())
        if result is not None and result.invite_id:
            outcomes.append(Done(invite_id=result.invite_id))
        elif result is not None and result.error:
            outcomes.append(Rejected("INVITE_FAILED", result.error,
                                     request_id=result.request_id))
        else:
            outcomes.append(Missing(f"the answer did not mention {email}"))
    return outcomes

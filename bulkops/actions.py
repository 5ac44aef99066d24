"""What each action means: the request it sends, the result it keeps, how an unknown outcome is
checked against Wix, and which rows can share a call (one row per call for now)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from bulkops.errors import BulkOpsError
from bulkops.model import Action, OpRecord, is_ref
from bulkops.roles import RoleBook
from bulkops.wix import AccountInvitee, InviteResult, WixClient

# How far before our first send a matching site's createdDate may lie: Wix's clock and ours differ.
CLOCK_SKEW_ALLOWANCE = 120.0

CHECKABLE_ACTIONS = frozenset({Action.CREATE_SITE, Action.TRANSFER_SITE})


@dataclass(frozen=True)
class Done:
    """The effect happened: what the report keeps."""

    site_id: str | None = None
    invite_id: str | None = None


class OpRejected(BulkOpsError):
    """A row refused without an HTTP error: a role that cannot be resolved, an invitee that Wix
    listed as failed inside a 200 answer. Final: retrying the same row cannot help."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class OutcomeMissing(BulkOpsError):
    """A 200 answer that does not mention the row (bulk invite without our email): unknown."""


@dataclass(frozen=True)
class ActionContext:
    client: WixClient
    account_id: str
    roles: Callable[[], Awaitable[RoleBook]]  # resolved once per run, on first use


def site_of(op: OpRecord, value: str) -> str:
    """A site id as written in the row, or the site id produced by the referenced row."""
    return op.refs[value[1:]] if is_ref(value) else value


async def perform(op: OpRecord, ctx: ActionContext) -> Done:
    """Send the row's request once. Raises WixError, OpRejected or OutcomeMissing."""
    spec = op.spec
    if spec.action is Action.CREATE_SITE:
        assert spec.site_name is not None
        created = await ctx.client.create_site(
            name=spec.site_name, template_id=spec.template_id, folder_id=spec.folder_id
        )
        return Done(site_id=created.site_id)
    if spec.action is Action.TRANSFER_SITE:
        assert spec.site is not None and spec.to_account is not None
        site_id = site_of(op, spec.site)
        await ctx.client.transfer_site(
            site_id=site_id,
            source_account_id=spec.from_account or ctx.account_id,
            target_account_id=spec.to_account,
        )
        return Done(site_id=site_id)
    if spec.action is Action.SITE_INVITE:
        return await _site_invite(op, ctx)
    return await _account_invite(op, ctx)


async def _resolve_roles(
    op: OpRecord, ctx: ActionContext, level: Literal["site", "account"]
) -> tuple[str, ...]:
    book = await ctx.roles()
    try:
        return tuple(book.resolve(role, level) for role in op.spec.roles)
    except BulkOpsError as exc:
        raise OpRejected("ROLE_NOT_RESOLVED", str(exc)) from exc


async def _site_invite(op: OpRecord, ctx: ActionContext) -> Done:
    spec = op.spec
    assert spec.site is not None and spec.email is not None
    policy_ids = await _resolve_roles(op, ctx, "site")
    results = await ctx.client.create_site_invites(
        site_id=site_of(op, spec.site), policy_ids=policy_ids, emails=[spec.email]
    )
    return _invite_done(results, spec.email)


async def _account_invite(op: OpRecord, ctx: ActionContext) -> Done:
    spec = op.spec
    assert spec.email is not None
    # A role limited to some sites is given at site level; without sites, account-wide.
    policy_ids = await _resolve_roles(op, ctx, "site" if spec.sites else "account")
    invitee = AccountInvitee(
        email=spec.email,
        policy_ids=policy_ids,
        site_ids=tuple(site_of(op, s) for s in spec.sites),
    )
    results = await ctx.client.create_account_invites([invitee])
    return _invite_done(results, spec.email)


def _invite_done(results: list[InviteResult], email: str) -> Done:
    for result in results:
        if result.email.lower() != email.lower():
            continue
        if result.invite_id:
            return Done(invite_id=result.invite_id)
        if result.error:
            raise OpRejected("INVITE_FAILED", result.error)
    raise OutcomeMissing(f"the answer did not mention {email}")


async def check(op: OpRecord, ctx: ActionContext) -> Done | None:
    """Look for the effect of an earlier send. None: not (yet) visible. Only CHECKABLE_ACTIONS."""
    spec = op.spec
    if spec.action is Action.CREATE_SITE:
        return await _find_created_site(op, ctx)
    if spec.action is Action.TRANSFER_SITE:
        assert spec.site is not None and spec.to_account is not None
        site_id = site_of(op, spec.site)
        async for site in ctx.client.iter_sites(
            account_id=spec.to_account, filter={"id": site_id}, page_size=1
        ):
            if site.id == site_id and site.owner_account_id in (None, spec.to_account):
                return Done(site_id=site_id)
        return None
    raise ValueError(f"{spec.action} outcomes cannot be looked up")


async def _find_created_site(op: OpRecord, ctx: ActionContext) -> Done | None:
    """Page through the account's sites, newest first, back to just before our first send; a site
    with our display name created in that window is ours (names are unique within a job)."""
    spec = op.spec
    assert spec.site_name is not None
    since = (op.first_sent_at or time.time()) - CLOCK_SKEW_ALLOWANCE
    wanted = spec.site_name.strip().casefold()
    filters = {"folderId": spec.folder_id} if spec.folder_id else None
    async for site in ctx.client.iter_sites(filter=filters):
        if site.created_at < since:
            break
        if site.display_name.strip().casefold() == wanted:
            return Done(site_id=site.id)
    return None

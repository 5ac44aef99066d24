"""transfer_site: one call per site; an unknown outcome is looked up in the target account.

Wix: `POST /b2b-site-management/v1/transfer-site`, made as the target account; a transfer shows
in Query Sites of the target with `ownerAccountId` = target (wix-api.md, "Transfer a site").
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from bulkops.actions.base import (
    ActionContext,
    Done,
    FamilyDefaults,
    Rejected,
    RowOutcome,
    hint_in,
    site_of,
)
from bulkops.model import Action, OpRecord
from bulkops.roles import RoleBook

_HINTS = {
    "SITE_TRANSFER_NOT_ALLOWED": (
        "this source/target account pair may not transfer sites; the target must be your "
        "own account or one of its sub-accounts"
    ),
    "SITE_TRANSFER_NOT_SUPPORTED": "cancel the site's paid services first, then submit it again",
    "TARGET_ACCOUNT_ID_NOT_FOUND": "check to_account: Wix knows no such target account",
    "SITE_NOT_FOUND": "check the site id and from_account: the site is not in the source account",
}


class TransferSites(FamilyDefaults):
    actions = frozenset({Action.TRANSFER_SITE})
    batch_size = 1
    checkable = True
    gathers = False
    look_up_size = 1  # one filtered listing per row: a failure costs no other row its answer

    def batch_key(self, op: OpRecord, roles: RoleBook) -> Hashable:
        return op.op_id  # Transfer Site moves one site per call

    async def send(self, ops: Sequence[OpRecord], ctx: ActionContext) -> list[RowOutcome]:
        (op,) = ops
        spec = op.spec
        assert spec.site is not None and spec.to_account is not None
        site_id = site_of(op, spec.site)
        await ctx.client.transfer_site(
            site_id=site_id,
            source_account_id=spec.from_account or ctx.account_id,
            target_account_id=spec.to_account,
        )
        return [Done(site_id=site_id)]

    async def look_up(
        self, ops: Sequence[OpRecord], ctx: ActionContext, *, now: float
    ) -> list[Done | Rejected | None]:
        """One filtered Query Sites call per row, as the target account."""
        found: list[Done | Rejected | None] = []
        for op in ops:
            found.append(await _in_target(op, ctx))
        return found

    def hint(self, code: str | None) -> str | None:
        return hint_in(_HINTS, code)


async def _in_target(op: OpRecord, ctx: ActionContext) -> Done | None:
    spec = op.spec
    assert spec.site is not None and spec.to_account is not None
    site_id = site_of(op, spec.site)
    async for site in ctx.client.iter_sites(
        account_id=spec.to_account, filter={"id": site_id}, page_size=1
    ):
        if site.id == site_id and site.owner_account_id in (None, spec.to_account):
            return Done(site_id=site_id)
    return None

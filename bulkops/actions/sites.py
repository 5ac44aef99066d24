"""create_site: one call per site (Create Site takes one), looked up in one listing pass.

Wix: `POST /funnel/projects/v1/create`; an unknown outcome is settled from Query Sites, newest
first (wix-api.md, "Query sites" and "The ambiguous outcome").
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from bulkops.actions.base import ActionContext, Done, FamilyDefaults, Rejected, RowOutcome, hint_in
from bulkops.model import Action, OpRecord
from bulkops.roles import RoleBook
from bulkops.wixwire import Site

# How far before our first send a matching site's createdDate may lie: Wix's clock and ours differ.
CLOCK_SKEW_ALLOWANCE = 120.0

_HINTS = {
    "INVALID_TEMPLATE_ID": "check template_id: it must name an existing site template",
}


class CreateSites(FamilyDefaults):
    actions = frozenset({Action.CREATE_SITE})
    batch_size = 1
    checkable = True
    gathers = False
    look_up_size = 500  # one listing pass settles every unknown create it covers

    def batch_key(self, op: OpRecord, roles: RoleBook) -> Hashable:
        return op.op_id  # Create Site takes one site per call

    async def send(self, ops: Sequence[OpRecord], ctx: ActionContext) -> list[RowOutcome]:
        (op,) = ops
        spec = op.spec
        assert spec.site_name is not None
        created = await ctx.client.create_site(
            name=spec.site_name, template_id=spec.template_id, folder_id=spec.folder_id
        )
        return [Done(site_id=created.site_id)]

    async def look_up(
        self, ops: Sequence[OpRecord], ctx: ActionContext, *, now: float
    ) -> list[Done | Rejected | None]:
        """One pass over the account's sites, newest first (100 a page), back to just before
        the earliest first send among `ops`: a site with a row's display name created in its
        window is that row's. Names are unique within the scope (one op per name), so a name
        settles one row."""
        found: list[Done | Rejected | None] = [None] * len(ops)
        by_name: dict[str, list[int]] = {}
        for index, op in enumerate(ops):
            assert op.spec.site_name is not None
            by_name.setdefault(op.spec.site_name.strip().casefold(), []).append(index)
        since = [(op.first_sent_at or now) - CLOCK_SKEW_ALLOWANCE for op in ops]
        oldest, left = min(since), len(ops)
        async for site in ctx.client.iter_sites():
            if site.created_at < oldest:
                break
            for index in by_name.get(site.display_name.strip().casefold(), []):
                if found[index] is None and _fits(ops[index], site, since[index]):
                    found[index] = Done(site_id=site.id)
                    left -= 1
            if not left:
                break
        return found

    def hint(self, code: str | None) -> str | None:
        return hint_in(_HINTS, code)


def _fits(op: OpRecord, site: Site, since: float) -> bool:
    """Created in the row's window, in the row's folder (when both name one)."""
    folder = op.spec.folder_id
    in_folder = folder is None or site.folder_id is None or site.folder_id == folder
    return in_folder and site.created_at >= since

"""The fewest calls a job's rows take, as `plan` counts them and the engine groups them."""

from __future__ import annotations

from bulkops.actions import calls_needed
from bulkops.model import Action, OpSpec
from bulkops.roles import RoleBook
from bulkops.wixwire import Role

ROLES = RoleBook([Role("7084512206941830272", "Website Manager", None),
                  Role("7084512206941830300", "Blog Writer", None)])
MANAGER = ("Website Manager",)


def member(n: int, **fields: object) -> OpSpec:
    return OpSpec(line=n + 2, key=f"m{n}", action=Action.ACCOUNT_INVITE,
                  email=f"m{n}@example.com", roles=MANAGER, **fields)  # type: ignore[arg-type]


def test_account_invites_are_fifty_to_a_call() -> None:
    assert calls_needed([member(n) for n in range(120)], ROLES) == {Action.ACCOUNT_INVITE: 3}


def test_site_invites_share_a_call_per_site_and_role_set() -> None:
    specs = [OpSpec(line=2, key="s", action=Action.CREATE_SITE, site_name="S")]
    for n, roles in enumerate([MANAGER, MANAGER, ("website manager",), ("Blog Writer",)]):
        specs.append(OpSpec(line=n + 3, key=f"i{n}", action=Action.SITE_INVITE, site="@s",
                            email=f"i{n}@example.com", roles=roles))
    specs.append(OpSpec(line=9, key="o", action=Action.SITE_INVITE, site="@other",
                        email="o@example.com", roles=MANAGER))
    # Titles in any case are one role: (s, Manager) ×3, (s, Blog Writer), (other, Manager).
    assert calls_needed(specs, ROLES) == {Action.CREATE_SITE: 1, Action.SITE_INVITE: 3}


def test_rows_that_wait_for_a_row_of_their_own_action_go_in_a_later_call() -> None:
    """Directly or through a row of another action: an invite that waits for a site that
    waits for an invite cannot share the first invite's call."""
    specs = [member(0), OpSpec(line=10, key="s", action=Action.CREATE_SITE, site_name="S",
                               depends_on=("m0",)),
             member(1, sites=("@s",)), member(2), member(3, depends_on=("m2",)),
             member(4, depends_on=("m3",))]
    # Waves: m0, m2 | m1, m3 | m4.
    assert calls_needed(specs, ROLES) == {Action.ACCOUNT_INVITE: 3, Action.CREATE_SITE: 1}


def test_a_long_chain_is_counted_without_recursion() -> None:
    chain = [member(0)] + [member(n, depends_on=(f"m{n - 1}",)) for n in range(1, 5000)]
    assert calls_needed(chain, ROLES) == {Action.ACCOUNT_INVITE: 5000}

"""The checks before a run, on rows alone: which roles a row gives at which level, which sites
it names by id and where, and which creates have their display name checked."""

from __future__ import annotations

import pytest

from bulkops.engine import NOT_FOUND_RESENT_NOTE
from bulkops.model import Action, OpRecord, OpSpec, OpState
from bulkops.precheck import Candidate, role_problems, site_refs
from bulkops.roles import RoleBook
from bulkops.wixwire import Role

ACCOUNT = "11111111-1111-4111-8111-111111111111"
SUB = "22222222-2222-4222-8222-222222222221"
SITE = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
BOOK = RoleBook([Role("1", "Website Manager", None), Role("2", "Billing Manager", "Site"),
                 Role("3", "Blog Writer", "Account")])


def invite(action: Action, roles: tuple[str, ...], **fields: object) -> OpSpec:
    return OpSpec(line=7, key="k", action=action, email="a@example.com", roles=roles,
                  **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "bad"),
    [
        (invite(Action.SITE_INVITE, ("Website Manager", "Blog Writer"), site=SITE), []),
        (invite(Action.SITE_INVITE, ("Billing Manager",), site="@s"), ["Billing Manager"]),
        # An account invite limited to sites gives its roles on those sites.
        (invite(Action.ACCOUNT_INVITE, ("Billing Manager",), sites=(SITE,)), ["Billing Manager"]),
        (invite(Action.ACCOUNT_INVITE, ("Blog Writer",)), ["Blog Writer"]),
        (invite(Action.ACCOUNT_INVITE, ("Billing Manager", "Nope", "Blog Writer")),
         ["Nope", "Blog Writer"]),
    ],
)
def test_each_role_that_cannot_be_given_at_the_rows_level_is_one_problem(
    spec: OpSpec, bad: list[str]
) -> None:
    problems = role_problems(spec, BOOK)
    assert [(p.line, p.column) for p in problems] == [(7, "role")] * len(bad)
    for problem, role in zip(problems, bad, strict=True):
        assert repr(role) in problem.reason


def test_rows_other_than_invites_have_no_role_problems() -> None:
    spec = OpSpec(line=2, key="c", action=Action.CREATE_SITE, site_name="X")
    assert role_problems(spec, BOOK) == []


def test_sites_named_by_id_and_the_account_each_must_be_in() -> None:
    assert site_refs(invite(Action.SITE_INVITE, ("x",), site=SITE), ACCOUNT) == [
        ("site", SITE, ACCOUNT)]
    assert site_refs(invite(Action.SITE_INVITE, ("x",), site="@made"), ACCOUNT) == []
    assert site_refs(invite(Action.ACCOUNT_INVITE, ("x",), sites=("@a", SITE)), ACCOUNT) == [
        ("sites", SITE, ACCOUNT)]
    move = OpSpec(line=2, key="m", action=Action.TRANSFER_SITE, site=SITE, to_account=SUB)
    assert site_refs(move, ACCOUNT) == [("site", SITE, ACCOUNT)]
    from_sub = OpSpec(line=2, key="m", action=Action.TRANSFER_SITE, site=SITE,
                      from_account=SUB, to_account=ACCOUNT)
    assert site_refs(from_sub, ACCOUNT) == [("site", SITE, SUB)]


def _create_op(**fields: object) -> Candidate:
    spec = OpSpec(line=2, key="c", action=Action.CREATE_SITE, site_name="X")
    return Candidate(spec, OpRecord(op_id=1, job_id="j", seq=0, spec=spec,
                                    **fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("row", "checked"),
    [
        (Candidate(OpSpec(line=2, key="c", action=Action.CREATE_SITE, site_name="X")), True),
        (_create_op(), True),
        # Sent before, surely without effect (a refusal, a retryable error): checked.
        (_create_op(state=OpState.PENDING, first_sent_at=1.0, attempts=1), True),
        (_create_op(state=OpState.FAILED, first_sent_at=1.0), True),
        # Its earlier send may have made the site: the engine reconciles it.
        (_create_op(state=OpState.UNKNOWN, first_sent_at=1.0), False),
        (_create_op(state=OpState.RUNNING, first_sent_at=1.0), False),
        (_create_op(state=OpState.FAILED, first_sent_at=1.0, maybe_applied=True), False),
        (_create_op(state=OpState.PENDING, first_sent_at=1.0, note=NOT_FOUND_RESENT_NOTE),
         False),
        (Candidate(invite(Action.SITE_INVITE, ("x",), site=SITE)), False),
    ],
)
def test_only_creates_no_earlier_send_may_have_made_have_their_name_checked(
    row: Candidate, checked: bool
) -> None:
    assert row.name_checked is checked

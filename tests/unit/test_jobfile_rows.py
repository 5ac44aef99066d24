"""One row on its own: normalisation, formats, required and unused columns, derived keys."""

from __future__ import annotations

import pytest

from bulkops.jobrows import check_row, derive_key
from bulkops.model import Action, OpSpec

SITE_ID = "0f6d1e2a-3b4c-4d5e-8f60-718293a4b5c6"
ACCOUNT = "22222222-2222-4222-8222-222222222221"


def problems(fields: dict[str, object], **defaults: object) -> list[tuple[str | None, str]]:
    result = check_row(5, fields, defaults)
    assert all(error.line == 5 for error in result.errors)
    return [(error.column, error.reason) for error in result.errors]


def test_valid_site_invite_becomes_a_spec_with_split_trimmed_roles() -> None:
    result = check_row(3, {"action": " site_invite ", "key": "inv", "site": "@acme",
                           "email": "Bob@Example.com", "role": " Website Manager ; 123 "})
    assert result.errors == () and result.missing == ()
    assert result.spec == OpSpec(line=3, key="inv", action=Action.SITE_INVITE, site="@acme",
                                 email="Bob@Example.com", roles=("Website Manager", "123"))


def test_depends_on_is_stored_without_the_at_sign() -> None:
    spec = check_row(1, {"action": "account_invite", "email": "a@example.com", "role": "Admin",
                         "depends_on": "@one; @two"}).spec
    assert spec is not None and spec.depends_on == ("one", "two")


def test_json_lists_and_numeric_role_ids_are_accepted() -> None:
    spec = check_row(1, {"action": "account_invite", "email": "a@example.com",
                         "role": [1234567890123456789, "Website Manager"],
                         "sites": [SITE_ID, "@shop"], "depends_on": ["@x"]}).spec
    assert spec is not None
    assert spec.roles == ("1234567890123456789", "Website Manager")
    assert spec.sites == (SITE_ID, "@shop")


@pytest.mark.parametrize(("fields", "expected"), [
    ({"action": "create_site", "site_name": "A", "template_id": "abc"},
     ("template_id", "not a valid id (a GUID like 0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f): 'abc'")),
    ({"action": "create_site", "site_name": "A", "folder_id": "1234"},
     ("folder_id", "not a valid id (a GUID like 0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f): '1234'")),
    ({"action": "transfer_site", "site": "acme", "to_account": ACCOUNT},
     ("site", "not a site id (GUID) or @key of a create_site row: 'acme'")),
    ({"action": "transfer_site", "site": SITE_ID, "to_account": "main"},
     ("to_account", "not a valid id (a GUID like 0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f): 'main'")),
    ({"action": "site_invite", "site": SITE_ID, "email": "bob@", "role": "Website Manager"},
     ("email", "not a valid email address: 'bob@'")),
    ({"action": "site_invite", "site": SITE_ID, "email": "a@x.com;b@x.com", "role": "R"},
     ("email", "not a valid email address: 'a@x.com;b@x.com'")),
    ({"action": "site_invite", "site": SITE_ID, "email": "bob@example", "role": "R"},
     ("email", "not a valid email address: 'bob@example'")),
    ({"action": "site_invite", "site": SITE_ID, "email": "a@example.com", "role": "R;;S"},
     ("role", "empty entry in 'R;;S': remove the extra ';'")),
    ({"action": "account_invite", "email": "a@example.com", "role": "R", "sites": "@a;nope"},
     ("sites", "not a site id (GUID) or @key of a create_site row: 'nope'")),
    ({"action": "create_site", "site_name": "A", "depends_on": "setup"},
     ("depends_on", "depends_on takes @key references: 'setup' (write '@setup')")),
    ({"action": "create_site", "site_name": "A", "key": "a@b"},
     ("key", "key must not contain '@' or ';': 'a@b'")),
    ({"action": "create_site", "site_name": "A", "site": "@"},
     ("site", "empty reference '@': write @ followed by the row's key")),
    ({"action": "create_site", "site_name": "x" * 101},
     ("site_name", "site name is 101 characters long, at most 100 are allowed")),
    ({"action": "create_site", "site_name": 7},
     ("site_name", "must be text, not a number")),
])
def test_bad_value_is_reported_on_its_column(
    fields: dict[str, object], expected: tuple[str, str]
) -> None:
    assert expected in problems(fields)


def test_guids_are_accepted_in_either_case() -> None:
    assert problems({"action": "transfer_site", "site": SITE_ID.upper(), "to_account": ACCOUNT}) \
        == []


def test_unknown_action_names_the_allowed_actions() -> None:
    assert problems({"action": "delete_site", "site": SITE_ID}) == [("action", (
        "unknown action 'delete_site': use create_site, transfer_site, site_invite, "
        "account_invite, connect_domain, set_dns_record"))]


def test_missing_action_is_left_to_the_caller_as_missing() -> None:
    result = check_row(2, {"site_name": "A"})
    assert (result.errors, result.missing) == ((), ("action",))


def test_missing_required_columns_are_listed_but_not_a_bad_one_twice() -> None:
    result = check_row(2, {"action": "site_invite", "email": "nope"})
    assert result.missing == ("site", "role")
    assert [e.column for e in result.errors] == ["email"]


def test_column_not_used_by_the_action_is_an_error() -> None:
    assert problems({"action": "site_invite", "site": SITE_ID, "email": "a@example.com",
                     "role": "R", "template_id": SITE_ID}) == [
        ("template_id", "column template_id is not used by action site_invite")]


def test_every_problem_of_a_row_is_reported_together() -> None:
    columns = [column for column, _ in problems(
        {"action": "site_invite", "site": "x", "email": "y", "role": "R;", "sites": SITE_ID})]
    assert columns == ["site", "email", "role", "sites"]


def test_defaults_fill_only_absent_columns_the_action_uses() -> None:
    defaults = {"template_id": SITE_ID, "role": "Website Manager"}
    site = check_row(1, {"action": "create_site", "site_name": "A"}, defaults).spec
    invite = check_row(2, {"action": "account_invite", "email": "a@example.com", "role": "Admin"},
                       defaults).spec
    assert site is not None and site.template_id == SITE_ID and site.roles == ()
    assert invite is not None and invite.roles == ("Admin",) and invite.template_id is None


def test_a_bad_default_says_it_came_from_the_defaults() -> None:
    assert problems({"action": "create_site", "site_name": "A"}, template_id="t") == [(
        "template_id",
        "not a valid id (a GUID like 0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f): 't' (from defaults)")]


def test_absent_key_is_derived_from_the_action_and_content() -> None:
    result = check_row(9, {"action": "site_invite", "site": "@acme", "email": "a@example.com",
                           "role": "R"})
    assert result.derived_key and result.spec is not None
    assert result.key == result.spec.key and result.key.startswith("site_invite-")
    assert len(result.key) == len("site_invite-") + 12


def test_derived_key_ignores_line_case_of_email_and_surrounding_spaces() -> None:
    first = check_row(1, {"action": "site_invite", "site": "@acme", "email": "A@Example.com",
                          "role": "R"}).key
    second = check_row(70, {"action": "site_invite", "site": " @acme ", "email": "a@example.com",
                            "role": " R"}).key
    assert first == second


def test_derived_key_changes_with_the_rows_own_content() -> None:
    base = {"action": "account_invite", "email": "a@example.com", "role": "R"}
    assert check_row(1, base).key != check_row(1, {**base, "role": "S"}).key


def test_derive_key_of_a_spec_matches_the_key_given_while_checking() -> None:
    result = check_row(4, {"action": "create_site", "site_name": "Acme", "template_id": SITE_ID})
    assert result.spec is not None and derive_key(result.spec) == result.key


def test_explicit_key_is_returned_even_when_the_row_is_bad() -> None:
    result = check_row(4, {"action": "create_site", "key": "acme", "template_id": "bad"})
    assert result.spec is None and result.key == "acme" and not result.derived_key



def test_a_repeated_value_is_judged_once_and_each_row_still_gets_its_own_error() -> None:
    """Values are normalised once per distinct text (a bounded memo), with the same result."""
    from bulkops import jobrows

    bad = {"action": "create_site", "site_name": "A", "template_id": "not-a-guid"}
    first, again = check_row(2, bad), check_row(9, {**bad, "site_name": "B"})
    assert [(e.line, e.column) for e in first.errors] == [(2, "template_id")]
    assert [(e.line, e.reason) for e in again.errors] == [(9, first.errors[0].reason)]
    for n in range(jobrows._MEMO_SIZE + 10):
        check_row(n + 1, {"action": "create_site", "site_name": f"S{n}",
                          "template_id": f"{n:08x}-0000-4000-8000-000000000000"})
    assert len(jobrows._MEMO["template_id"]) <= jobrows._MEMO_SIZE

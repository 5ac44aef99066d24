"""Role titles and ids as users write them, resolved to policy ids at the right level."""

from __future__ import annotations

import pytest

from bulkops.errors import BulkOpsError
from bulkops.roles import Level, RoleBook, RoleError
from bulkops.wixwire import Role

ROLES = [
    Role("1111111111111111111", "Website Manager", None),
    Role("2222222222222222222", "Billing Manager", "Site"),  # never on a single site
    Role("3333333333333333333", "Site Designer", "Account"),  # never account-wide
    Role("0044", "Back Office Manager", None),
    Role("5555555555555555555", "Blog Writer", None),
    Role("6666666666666666666", "Blog Writer", None),  # a custom role sharing a title
]
BOOK = RoleBook(ROLES)


@pytest.mark.parametrize(
    ("value", "level", "expected"),
    [
        ("Website Manager", "site", "1111111111111111111"),
        ("website manager", "account", "1111111111111111111"),
        ("  WEBSITE   manager ", "site", "1111111111111111111"),
        ("Billing Manager", "account", "2222222222222222222"),
        ("Site Designer", "site", "3333333333333333333"),
        ("1111111111111111111", "site", "1111111111111111111"),
        (" 0044 ", "account", "0044"),
        ("2222222222222222222", "account", "2222222222222222222"),
    ],
)
def test_titles_case_insensitive_and_known_ids_resolve_to_the_policy_id(
    value: str, level: Level, expected: str
) -> None:
    assert BOOK.resolve(value, level) == expected


@pytest.mark.parametrize(
    ("value", "level", "message"),
    [
        ("Webmaster", "site", "unknown role 'Webmaster'; known: Back Office Manager, "),
        ("Website Manger", "site", "did you mean 'Website Manager'?"),
        ("9999", "site", "unknown role id '9999'"),
        ("44", "site", "unknown role id '44'"),  # ids are strings: no numeric equality
        ("", "site", "empty role"),
        ("   ", "account", "empty role"),
        ("Billing Manager", "site", "role 'Billing Manager' cannot be given on a site"),
        ("2222222222222222222", "site", "role 'Billing Manager' cannot be given on a site"),
        ("site designer", "account", "role 'Site Designer' cannot be given account-wide"),
        ("Blog Writer", "site", "ambiguous (ids 5555555555555555555, 6666666666666666666)"),
    ],
)
def test_unknown_restricted_or_ambiguous_roles_raise_a_role_error_saying_why(
    value: str, level: Level, message: str
) -> None:
    with pytest.raises(RoleError) as caught:
        BOOK.resolve(value, level)
    assert message in str(caught.value)


def test_an_ambiguous_title_is_still_reachable_by_its_id() -> None:
    assert BOOK.resolve("6666666666666666666", "site") == "6666666666666666666"


def test_restriction_level_is_matched_case_insensitively() -> None:
    book = RoleBook([Role("7", "Owner-ish", "ACCOUNT")])
    with pytest.raises(RoleError, match="account-wide"):
        book.resolve("Owner-ish", "account")
    assert book.resolve("Owner-ish", "site") == "7"


def test_known_roles_list_is_capped_so_the_message_stays_readable() -> None:
    book = RoleBook([Role(str(i), f"Role {i:02d}", None) for i in range(30)])
    with pytest.raises(RoleError) as caught:
        book.resolve("Nothing Like It", "site")
    assert "and 18 more" in str(caught.value)


def test_empty_book_says_no_roles_are_known() -> None:
    with pytest.raises(RoleError, match="known: none"):
        RoleBook([]).resolve("Website Manager", "site")


def test_resolve_all_keeps_order_and_drops_repeated_policy_ids() -> None:
    values = ["Site Designer", "website manager", "1111111111111111111"]
    assert BOOK.resolve_all(values, "site") == ("3333333333333333333", "1111111111111111111")


def test_role_error_is_a_bulkops_error_so_the_cli_reports_it_as_such() -> None:
    assert issubclass(RoleError, BulkOpsError)


def test_book_counts_each_role_once() -> None:
    assert len(BOOK) == len(ROLES)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        # An older, shorter name of a role.
        ("Admin", "did you mean 'Admin (Co-owner)'?"),
        # Two roles in one cell, written as a spreadsheet user would.
        ("Website Manager, Back Office Manager", "separated by ';', not ','"),
        # A 19-digit id that a spreadsheet rounded to 15 significant digits.
        ("1111111111111110000", "a spreadsheet may have rounded it"),
    ],
)
def test_unknown_roles_name_their_likely_cause(value: str, hint: str) -> None:
    book = RoleBook([*ROLES, Role("7777777777777777777", "Admin (Co-owner)", None)])
    with pytest.raises(RoleError) as caught:
        book.resolve(value, "site")
    assert hint in str(caught.value)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        # Excel's keep-as-text formula, as a JSON file or a hand-typed cell keeps it.
        ('="1111111111111111111"', "write '1111111111111111111' alone (the role 'Website "
                                   "Manager')"),
        ("'1111111111111111111", "keep-as-text wrapper: write '1111111111111111111' alone"),
        ('="9999"', "keep-as-text wrapper: write '9999' alone)"),
    ],
)
def test_a_spreadsheet_wrapped_value_names_the_wrapper_and_the_role_inside(
    value: str, hint: str
) -> None:
    with pytest.raises(RoleError) as caught:
        BOOK.resolve(value, "site")
    assert hint in str(caught.value)


def test_a_restricted_role_says_where_it_can_be_given_instead() -> None:
    with pytest.raises(RoleError, match="give it account-wide instead"):
        BOOK.resolve("Billing Manager", "site")
    with pytest.raises(RoleError, match="give it on sites instead"):
        BOOK.resolve("Site Designer", "account")


"""The same person invited twice to the same place is an error, whatever the rows' keys say."""

from __future__ import annotations

import json
from pathlib import Path

from jobfiles import problems, write_file

from bulkops.jobfile import load_job, validate

HEADER = "action,key,site_name,site,email,role,sites\n"
SITE_ID = "0f6d1e2a-3b4c-4d5e-8f60-718293a4b5c6"
OTHER_SITE_ID = "7c2a9e4f-1b3d-4a6c-8e5f-0a1b2c3d4e02"
SAME = "(the same person twice; emails compare case-insensitively)"


def write(tmp_path: Path, rows: str, name: str = "job.csv") -> Path:
    return write_file(tmp_path, HEADER + rows, name)


def site_error(line: int, email: str, earlier: int) -> tuple[int, str, str]:
    return (line, "email", f"{email!r} is already invited to this site at line {earlier} {SAME}")


def account_error(line: int, email: str, earlier: int) -> tuple[int, str, str]:
    return (line, "email", f"{email!r} is already invited to the account at line {earlier} {SAME}")


def test_site_invite_of_the_same_email_to_the_same_site_names_the_earlier_line(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "create_site,shop,Shop,,,,\n"
                           "site_invite,,,@shop,owner@acme.com,Website Manager,\n"
                           "site_invite,,,@shop,owner@acme.com,Back Office Manager,\n")
    assert problems(path) == [site_error(4, "owner@acme.com", 3)]


def test_case_and_surrounding_spaces_do_not_make_another_person(tmp_path: Path) -> None:
    path = write(tmp_path, "create_site,shop,Shop,,,,\n"
                           "site_invite,,,@shop,Owner@Acme.com,Website Manager,\n"
                           'site_invite,,,@shop,"  OWNER@acme.COM ",Back Office Manager,\n'
                           "account_invite,,,,  boss@acme.com,Admin,\n"
                           "account_invite,,,,BOSS@ACME.COM  ,Website Manager,\n")
    assert problems(path) == [site_error(4, "OWNER@acme.COM", 3),
                              account_error(6, "BOSS@ACME.COM", 5)]


def test_site_ids_compare_case_insensitively(tmp_path: Path) -> None:
    path = write(tmp_path, f"site_invite,,,{SITE_ID},a@example.com,Website Manager,\n"
                           f"site_invite,,,{SITE_ID.upper()},a@example.com,Back Office Manager,\n")
    assert problems(path) == [site_error(3, "a@example.com", 2)]


def test_explicit_different_keys_still_error(tmp_path: Path) -> None:
    path = write(tmp_path, f"site_invite,first,,{SITE_ID},a@example.com,Website Manager,\n"
                           f"site_invite,second,,{SITE_ID},a@example.com,Website Manager,\n"
                           "account_invite,third,,,b@example.com,Admin,\n"
                           "account_invite,fourth,,,b@example.com,Admin,\n")
    assert problems(path) == [site_error(3, "a@example.com", 2),
                              account_error(5, "b@example.com", 4)]


def test_three_rows_give_two_errors_naming_the_first(tmp_path: Path) -> None:
    path = write(tmp_path, "account_invite,a,,,lead@example.com,Admin,\n"
                           "create_site,shop,Shop,,,,\n"
                           "account_invite,b,,,Lead@example.com,Website Manager,\n"
                           "account_invite,c,,,LEAD@example.com,Admin,@shop\n")
    assert problems(path) == [account_error(4, "Lead@example.com", 2),
                              account_error(5, "LEAD@example.com", 2)]


def test_different_sites_and_a_site_and_the_account_are_different_places(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "create_site,shop,Shop,,,,\n"
                           "create_site,cafe,Cafe,,,,\n"
                           "site_invite,,,@shop,a@example.com,Website Manager,\n"
                           "site_invite,,,@cafe,a@example.com,Website Manager,\n"
                           f"site_invite,,,{SITE_ID},a@example.com,Website Manager,\n"
                           f"site_invite,,,{OTHER_SITE_ID},a@example.com,Website Manager,\n"
                           "account_invite,,,,A@example.com,Admin,@shop\n"
                           "account_invite,,,,b@example.com,Admin,\n")
    assert [spec.email for spec in load_job(path)[1]()][2:] == [
        "a@example.com", "a@example.com", "a@example.com", "a@example.com", "A@example.com",
        "b@example.com"]


def test_identical_rows_are_reported_once_as_the_same_operation(tmp_path: Path) -> None:
    path = write(tmp_path, f"site_invite,,,{SITE_ID},a@example.com,Website Manager,\n"
                           f"site_invite,,,{SITE_ID},A@Example.com, Website Manager,\n")
    assert problems(path) == [(3, None, "same operation as line 2 (duplicate of line 2)")]


def test_duplicate_key_is_reported_instead_of_the_invitee(tmp_path: Path) -> None:
    path = write(tmp_path, "account_invite,boss,,,b@example.com,Admin,\n"
                           "account_invite,boss,,,b@example.com,Website Manager,\n"
                           "account_invite,other,,,b@example.com,Website Manager,\n")
    assert problems(path) == [(3, "key", "duplicate key 'boss': duplicate of line 2"),
                              account_error(4, "b@example.com", 2)]


def test_rows_with_other_problems_are_not_compared(tmp_path: Path) -> None:
    path = write(tmp_path, "account_invite,,,,a@example.com,,\n"
                           "account_invite,,,,a@example.com,Admin,\n")
    assert problems(path) == [(2, "role", "role is required for account_invite")]


def test_json_rows_are_checked_by_element_index(tmp_path: Path) -> None:
    document = {"defaults": {"role": "Website Manager"},
                "ops": [{"action": "create_site", "key": "shop", "site_name": "Shop"},
                        {"action": "site_invite", "site": "@shop", "email": "a@example.com"},
                        {"action": "site_invite", "site": "@shop", "email": " A@EXAMPLE.com",
                         "key": "again"},
                        {"action": "account_invite", "email": "a@example.com"},
                        {"action": "account_invite", "email": "a@Example.COM",
                         "role": "Admin (Co-owner)"}]}
    path = write_file(tmp_path, json.dumps(document), "job.json")
    assert problems(path) == [site_error(3, "A@EXAMPLE.com", 2),
                              account_error(5, "a@Example.COM", 4)]


def test_json_lines_different_places_validate(tmp_path: Path) -> None:
    ops = [{"action": "site_invite", "site": SITE_ID, "email": "a@example.com", "role": "R"},
           {"action": "site_invite", "site": OTHER_SITE_ID, "email": "a@example.com",
            "role": "R"},
           {"action": "account_invite", "email": "a@example.com", "role": "R"}]
    path = write_file(tmp_path, "\n".join(json.dumps(op) for op in ops) + "\n", "job.jsonl")
    assert validate(path).total == 3

"""JSON and JSON Lines job files: shapes, defaults, element and line numbers, broken input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jobfiles import problems, write_file

from bulkops.jobfile import load_job, validate
from bulkops.jobreaders import MAX_JSON_DEPTH
from bulkops.model import Action

SITE_ID = "0f6d1e2a-3b4c-4d5e-8f60-718293a4b5c6"
TEMPLATE = "7c2a9e4f-1b3d-4a6c-8e5f-0a1b2c3d4e02"


def write(tmp_path: Path, content: str | bytes, name: str = "job.json") -> Path:
    return write_file(tmp_path, content, name)


def test_json_list_lines_are_element_indexes_from_one(tmp_path: Path) -> None:
    ops = [{"action": "create_site", "key": "acme", "site_name": "Acme"},
           {"action": "account_invite", "email": "a@example.com", "roles": ["Admin (Co-owner)"],
            "sites": ["@acme"]}]
    source, specs = load_job(write(tmp_path, json.dumps(ops, indent=4)))
    assert source.format == "json" and source.total == 2
    read = list(specs())
    assert [spec.line for spec in read] == [1, 2]
    assert read[1].roles == ("Admin (Co-owner)",) and read[1].sites == ("@acme",)


def test_defaults_fill_absent_fields_of_the_ops(tmp_path: Path) -> None:
    document = {"defaults": {"template_id": TEMPLATE, "role": "Website Manager"},
                "ops": [{"action": "create_site", "site_name": "Acme"},
                        {"action": "create_site", "site_name": "Beta", "template_id": SITE_ID},
                        {"action": "site_invite", "site": "@acme-x", "email": "a@example.com",
                         "key": "inv"},
                        {"action": "create_site", "key": "acme-x", "site_name": "X"}]}
    specs = list(load_job(write(tmp_path, json.dumps(document)))[1]())
    assert [spec.template_id for spec in specs] == [TEMPLATE, SITE_ID, None, TEMPLATE]
    assert specs[2].roles == ("Website Manager",)


def test_roles_sites_and_depends_on_may_be_semicolon_strings(tmp_path: Path) -> None:
    ops = [{"action": "create_site", "key": "a", "site_name": "A"},
           {"action": "account_invite", "email": "a@example.com", "role": "R1; R2",
            "sites": "@a", "depends_on": "@a"}]
    spec = list(load_job(write(tmp_path, json.dumps(ops)))[1]())[1]
    assert (spec.roles, spec.sites, spec.depends_on) == (("R1", "R2"), ("@a",), ("a",))


def test_unknown_column_is_reported_on_each_element(tmp_path: Path) -> None:
    ops = [{"action": "create_site", "site_name": "A", "colour": "red"},
           {"action": "create_site", "site_name": "B", "Email": "x"}]
    assert problems(write(tmp_path, json.dumps(ops))) == [
        (1, "colour", "unknown column 'colour': the columns are action, key, site_name, "
                      "template_id, folder_id, site, to_account, from_account, email, role, "
                      "sites, depends_on, domain, connection, assignment, notify, "
                      "record_type, host, values, ttl"),
        (2, "Email", "unknown column 'Email': did you mean email?"),
    ]


def test_problems_in_defaults_are_reported_on_line_one(tmp_path: Path) -> None:
    document = {"defaults": {"key": "k", "colour": "red"}, "extra": 1,
                "ops": [{"action": "create_site", "site_name": "A"}]}
    assert problems(write(tmp_path, json.dumps(document))) == [
        (1, "extra", 'unknown top-level field \'extra\': a JSON job file is a list of operations '
                     'or {"defaults": {...}, "ops": [...]}'),
        (1, "key", "key cannot have a default: each row has its own"),
        (1, "colour", "unknown column 'colour' in defaults: the columns are action, key, "
                      "site_name, template_id, folder_id, site, to_account, from_account, "
                      "email, role, sites, depends_on, domain, connection, assignment, "
                      "notify, record_type, host, values, ttl"),
    ]


def test_element_that_is_not_an_object_is_an_error(tmp_path: Path) -> None:
    ops = [{"action": "create_site", "site_name": "A"}, ["create_site", "B"], "x"]
    assert problems(write(tmp_path, json.dumps(ops))) == [
        (2, None, "each operation must be a JSON object, not a list"),
        (3, None, "each operation must be a JSON object, not str"),
    ]


def test_broken_json_reports_the_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '[\n  {"action": "create_site",\n   "site_name": "A",}\n]\n')
    assert problems(path) == [(3, None, "invalid JSON at file line 3, column 21: Expecting "
                                        "property name enclosed in double quotes")]


@pytest.mark.parametrize("content", ["[]", '{"ops": []}', "", " \n"])
def test_json_without_operations_is_an_error(tmp_path: Path, content: str) -> None:
    assert problems(write(tmp_path, content)) == [(1, None, "no operations: the file has no rows")]


@pytest.mark.parametrize("document", ['{"op": []}', '"create_site"', '{"ops": {}}'])
def test_json_of_the_wrong_shape_is_an_error(tmp_path: Path, document: str) -> None:
    assert problems(write(tmp_path, document)) == [
        (1, None, 'a JSON job file is a list of operations or {"defaults": {...}, "ops": [...]}')]


def test_non_utf8_json_is_one_error_on_the_file_line(tmp_path: Path) -> None:
    path = write(tmp_path, b'[\n{"action": "create_site",\n "site_name": "Caf\xe9"}\n]')
    assert problems(path) == [(3, None, "the file is not UTF-8 text: byte 0xE9 at character 19 "
                                        "cannot be decoded; save the file as UTF-8")]


def test_jsonl_lines_are_physical_lines_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    content = ('{"action": "create_site", "key": "a", "site_name": "A"}\n\n'
               '{"action": "site_invite", "site": "@a", "email": "a@example.com", "role": "R"}\n')
    source, specs = load_job(write(tmp_path, content, "job.jsonl"))
    assert source.format == "jsonl" and source.total == 2
    assert [spec.line for spec in specs()] == [1, 3]


def test_jsonl_reports_every_broken_line(tmp_path: Path) -> None:
    content = ('{"action": "create_site", "site_name": "A"}\n'
               '{"action": "create_site", "site_name": }\n'
               '\n'
               '[1]\n'
               '{"action": "account_invite", "email": "nope", "role": "R"}\n')
    assert problems(write(tmp_path, content, "job.jsonl")) == [
        (2, None, "invalid JSON at column 40: Expecting value"),
        (4, None, "each operation must be a JSON object, not a list"),
        (5, "email", "not a valid email address: 'nope'"),
    ]


def test_jsonl_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = write(tmp_path, b'\xef\xbb\xbf{"action": "create_site", "site_name": "A"}\n',
                 "job.jsonl")
    assert next(load_job(path)[1]()).action == Action.CREATE_SITE


def test_report_fields_are_accepted_in_json(tmp_path: Path) -> None:
    ops = [{"line": 4, "status": "failed", "attempts": 2, "action": "create_site",
            "site_name": "A", "error_code": "X"}]
    assert validate(write(tmp_path, json.dumps(ops))).total == 1


ROLE_ID = 7084512206941830272


@pytest.mark.parametrize("role", [ROLE_ID, [ROLE_ID], str(ROLE_ID), [str(ROLE_ID)]],
                         ids=["number", "list-of-number", "text", "list-of-text"])
def test_a_role_id_is_read_alike_as_text_or_exact_integer_alone_or_in_a_list(
    tmp_path: Path, role: object
) -> None:
    ops = [{"action": "account_invite", "email": "a@example.com", "role": role}]
    _, specs = load_job(write(tmp_path, json.dumps(ops)))
    assert [spec.roles for spec in specs()] == [(str(ROLE_ID),)]


@pytest.mark.parametrize("role", [7.08451e18, [7.08451e18], [str(ROLE_ID), 1.5]],
                         ids=["float", "list-of-float", "mixed"])
def test_a_role_id_written_as_a_json_float_is_refused_with_the_reason(
    tmp_path: Path, role: object
) -> None:
    """A float has lost the id's last digits: never sent, and the row says why."""
    ops = [{"action": "account_invite", "email": "a@example.com", "role": role}]
    [(line, column, reason)] = problems(write(tmp_path, json.dumps(ops)))
    assert (line, column) == (1, "role")
    assert "fraction or exponent" in reason and "as text in quotes" in reason


def test_invisible_characters_in_json_values_never_reach_wix(tmp_path: Path) -> None:
    """A JSON writer keeps what a copy from a web page or a spreadsheet hid in the text (zero
    width space, bidi marks, soft hyphen, no-break space): dropped, or made a plain space,
    as in a CSV file."""
    ops = [{"action": "create_site", "site_name": "ZW\u200bJSON\u202c\u00a0Site"},
           {"action": "account_invite", "email": "zoe\u00ad@exa\u200emple.com",
            "role": ["Website\u00a0Manager\u200b"]}]
    _, specs = load_job(write(tmp_path, json.dumps(ops)))
    site, invite = list(specs())
    assert site.site_name == "ZWJSON Site"
    assert (invite.email, invite.roles) == ("zoe@example.com", ("Website Manager",))


@pytest.mark.parametrize("name", ["deep.json", "deep.jsonl"])
def test_json_nested_too_deeply_for_the_parser_is_one_clear_problem(
    tmp_path: Path, name: str
) -> None:
    path = write(tmp_path, "[" * 100_000, name)
    found = problems(path)
    assert found[0][:2] == (1, None) and "nested too deeply" in found[0][2], found


@pytest.mark.parametrize("name", ["deep.json", "deep.jsonl"])
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 990])
def test_an_operation_nested_past_the_limit_is_refused_the_same_way_everywhere(
    tmp_path: Path, name: str, depth: int
) -> None:
    """Past MAX_JSON_DEPTH, an operation is refused on its own line before the parser's own
    limit, which moves with the call stack (a helper process's is shallower): the same file
    gets the same answer in any process. At the limit, it is judged as any operation."""
    nested = "[" * (depth - 1) + "]" * (depth - 1)  # the operation itself is one level
    op = f'{{"action": "create_site", "key": "deep", "site_name": "Deep", "x": {nested}}}'
    text = f"[{op}]" if name.endswith(".json") else op + "\n"
    found = problems(write(tmp_path, text, name))
    too_deep = [reason for _, _, reason in found if "nested too deeply" in reason]
    assert bool(too_deep) == (depth > MAX_JSON_DEPTH), found
    if depth <= MAX_JSON_DEPTH:
        assert any("unknown column 'x'" in reason for _, _, reason in found), found


@pytest.mark.parametrize("name", ["bad.json", "bad.jsonl"])
def test_text_with_half_a_character_is_a_problem_of_its_row(tmp_path: Path, name: str) -> None:
    """A \\uD800-\\uDFFF escape alone (an unpaired surrogate) is no character: each cell that
    holds one is named, in values, lists and column names alike, never a crash."""
    ops = [
        '{"action": "create_site", "key": "a\\udc00b", "site_name": "X"}',
        '{"action": "create_site", "site_name": "Y\\ud800"}',
        '{"action": "site_invite", "site": "s-1", "email": "e@x.com", "roles": ["R\\udfff"]}',
        '{"action": "create_site", "site_name": "Z", "\\ud801x": "1"}',
        '{"action": "create_site", "site_name": "Fine \\ud83d\\ude00"}',  # a pair: one emoji
    ]
    text = "[" + ",\n".join(ops) + "]" if name.endswith(".json") else "\n".join(ops) + "\n"
    found = problems(write(tmp_path, text, name))
    unpaired = [(line, column) for line, column, reason in found if "unpaired surrogate" in reason]
    # One operation a line: its line (JSON Lines) and its element index (JSON) are the same.
    assert unpaired == [(1, "key"), (2, "site_name"), (3, "role")], found
    assert any(line == 4 and "unknown column" in reason for line, _, reason in found)
    assert all(line != 5 for line, _, _ in found)  # the pair is one valid character

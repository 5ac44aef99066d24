"""CSV job files: header, physical line numbers, file-level problems, the two passes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from jobfiles import Problem, write_file

from bulkops.errors import JobFileError
from bulkops.jobfile import load_job, validate
from bulkops.model import Action

HEADER = "action,key,site_name,template_id,site,to_account,email,role,sites,depends_on\n"
SITE_ID = "0f6d1e2a-3b4c-4d5e-8f60-718293a4b5c6"
ACCOUNT = "22222222-2222-4222-8222-222222222221"


def write(tmp_path: Path, content: str | bytes, name: str = "job.csv") -> Path:
    return write_file(tmp_path, content, name)


def problems(path: Path) -> list[Problem]:
    with pytest.raises(JobFileError) as info:
        validate(path)
    assert info.value.path == str(path)
    return [(error.line, error.column, error.reason) for error in info.value.errors]


def test_valid_file_gives_its_source_and_specs_in_input_order(tmp_path: Path) -> None:
    content = (HEADER + "create_site,acme,Acme Bakery,,,,,,,\n"
               f"transfer_site,,,,@acme,{ACCOUNT},,,,\n"
               "site_invite,inv,,,@acme,,bob@example.com,Website Manager,,@acme\n")
    path = write(tmp_path, content)
    source, specs = load_job(path)
    assert source.format == "csv" and source.total == 3 and source.path == str(path)
    assert source.job_id == hashlib.sha256(content.encode()).hexdigest()[:16]
    read = list(specs())
    assert [(s.line, s.action) for s in read] == [
        (2, Action.CREATE_SITE), (3, Action.TRANSFER_SITE), (4, Action.SITE_INVITE)]
    assert read[2].depends_on == ("acme",) and read[2].roles == ("Website Manager",)
    assert list(specs()) == read  # the factory can be called again


def test_same_content_is_the_same_job_and_other_content_another(tmp_path: Path) -> None:
    content = HEADER + "create_site,,Acme,,,,,,,\n"
    (tmp_path / "a").mkdir()
    first = validate(write(tmp_path / "a", content))
    again = validate(write(tmp_path, content, "copy.csv"))
    other = validate(write(tmp_path, content + "create_site,,Beta,,,,,,,\n", "other.csv"))
    assert first.job_id == again.job_id != other.job_id


def test_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbf" + (HEADER + "create_site,,Acme,,,,,,,\n").encode())
    source, specs = load_job(path)
    assert source.total == 1 and next(specs()).site_name == "Acme"


def test_values_are_trimmed_and_header_names_are_case_insensitive(tmp_path: Path) -> None:
    path = write(tmp_path, " Action , Site_Name \n create_site ,  Acme Bakery  \n")
    assert next(load_job(path)[1]()).site_name == "Acme Bakery"


def test_multi_line_quoted_cell_keeps_physical_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + 'create_site,,"Acme\nBakery\nMain",,,,,,,\n'
                                    "account_invite,,,,,,bob@,Admin,,\n")
    assert problems(path) == [(5, "email", "not a valid email address: 'bob@'")]
    path.write_text(HEADER + 'create_site,,"Acme\nBakery",,,,,,,\ncreate_site,,Beta,,,,,,,\n')
    assert [spec.line for spec in load_job(path)[1]()] == [2, 4]


def test_blank_and_all_empty_rows_are_skipped_but_still_counted_as_lines(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "create_site,,Acme,,,,,,,\n\n , ,,,,,,,,\n"
                                    "create_site,,Beta,nope,,,,,,\n")
    assert problems(path) == [(5, "template_id", "not a valid id (a GUID like "
                                                 "0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f): 'nope'")]


def test_report_columns_are_accepted_and_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "line,key,action,site_name,status,attempts,site_id,invite_id,"
                           "error_code,error_message,error_hint\n"
                           "7,acme,create_site,Acme,failed,3,,,SITE_NAME_TAKEN,Name in use,"
                           "Pick another name\n")
    source, specs = load_job(path)
    assert source.total == 1 and next(specs()).key == "acme"


def test_missing_action_column_is_one_error_on_the_header(tmp_path: Path) -> None:
    path = write(tmp_path, "key,site_name\na,Acme\nb,Beta\n")
    assert problems(path) == [(1, "action", "the header has no action column: every row needs "
                                            "one (create_site, transfer_site, site_invite, "
                                            "account_invite, connect_domain, set_dns_record)")]


def test_missing_required_column_is_reported_once_on_the_header(tmp_path: Path) -> None:
    path = write(tmp_path, "action,site,role\n"
                           f"create_site,{SITE_ID},R\n"
                           f"site_invite,{SITE_ID},Website Manager\n"
                           f"site_invite,{SITE_ID},Website Manager\n")
    assert problems(path) == [
        (1, "site_name", "the header has no site_name column, which create_site rows need "
                         "(first at line 2)"),
        (1, "email", "the header has no email column, which site_invite rows need "
                     "(first at line 3)"),
        (2, "site", "column site is not used by action create_site"),
        (2, "role", "column role is not used by action create_site"),
    ]


def test_empty_required_cell_is_reported_on_its_row(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "create_site,,,,,,,,,\n")
    assert problems(path) == [(2, "site_name", "site_name is required for create_site")]


def test_unknown_columns_are_reported_once_on_the_header(tmp_path: Path) -> None:
    path = write(tmp_path, "action,site_name,emial,colour\n"
                           "create_site,Acme,x,red\ncreate_site,Beta,y,blue\n")
    assert problems(path) == [
        (1, "emial", "unknown column 'emial': did you mean email?"),
        (1, "colour", "unknown column 'colour': the columns are action, key, site_name, "
                      "template_id, folder_id, site, to_account, from_account, email, role, "
                      "sites, depends_on, domain, connection, assignment, notify, "
                      "record_type, host, values, ttl"),
    ]


def test_column_named_twice_in_the_header_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "action,site_name,site_name\ncreate_site,Acme,Acme\n")
    assert problems(path) == [(1, "site_name", "column appears twice in the header")]


def test_unknown_action_is_reported_with_its_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "create_site,,Acme,,,,,,,\ndelete_site,,,,,,,,,\n")
    assert problems(path) == [(3, "action", "unknown action 'delete_site': use create_site, "
                                            "transfer_site, site_invite, account_invite, "
                                            "connect_domain, set_dns_record")]


def test_bad_email_is_reported_with_its_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + f"site_invite,,,,{SITE_ID},,bob@,Website Manager,,\n")
    assert problems(path) == [(2, "email", "not a valid email address: 'bob@'")]


def test_every_bad_row_is_reported_at_once_in_line_order(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "create_site,,Acme,,,,,,,\n"
                                    "account_invite,,,,,,not-an-email,Admin,,\n"
                                    "create_site,,Beta,,,,,,,\n"
                                    "frobnicate,,,,,,,,,\n"
                                    f"transfer_site,,,,{SITE_ID},,,,,\n")
    assert problems(path) == [
        (3, "email", "not a valid email address: 'not-an-email'"),
        (5, "action", "unknown action 'frobnicate': use create_site, transfer_site, "
                      "site_invite, account_invite, connect_domain, set_dns_record"),
        (6, "to_account", "to_account is required for transfer_site"),
    ]


def test_cells_beyond_the_header_are_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "action,site_name\ncreate_site,Acme,surprise\ncreate_site,Beta,,\n")
    assert problems(path) == [
        (2, None, "cell 3 has a value but no column name in the header (the header has 2 "
                  "columns)")]


def test_non_utf8_file_is_one_error_on_the_line_of_the_bad_byte(tmp_path: Path) -> None:
    path = write(tmp_path, b"action,site_name\ncreate_site,\n"
                           b"create_site,Caf\xe9 Bleu\ncreate_site,Ok\n")
    assert problems(path) == [(3, None, "the file is not UTF-8 text: byte 0xE9 at character 16 "
                                        "cannot be decoded; save the file as UTF-8")]


@pytest.mark.parametrize(("row", "reason"), [
    ('create_site,,"Acme,,,,,,,\ncreate_site,,Beta,,,,,,,\n',
     "malformed CSV: a quoted cell that starts on this row is never closed"),
    ('create_site,,"Acme" Bakery,,,,,,,\n', "malformed CSV: ',' expected after '\"'"),
])
def test_broken_quoting_is_one_error_on_the_row_where_it_starts(
    tmp_path: Path, row: str, reason: str
) -> None:
    path = write(tmp_path, HEADER + "create_site,,Zed,,,,,,,\n" + row)
    assert problems(path) == [(3, None, reason)]


def test_quotes_inside_an_unquoted_cell_are_kept(tmp_path: Path) -> None:
    path = write(tmp_path, 'action,site_name\ncreate_site,Acme "Best" Bakery\n')
    assert next(load_job(path)[1]()).site_name == 'Acme "Best" Bakery'


@pytest.mark.parametrize("content", ["", "\n\n", HEADER, HEADER + ",,,\n"])
def test_file_without_operations_is_an_error(tmp_path: Path, content: str) -> None:
    assert problems(write(tmp_path, content)) == [(1, None, "no operations: the file has no rows")]


def test_unknown_extension_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "create_site,,Acme,,,,,,,\n", "job.xml")
    assert problems(path) == [(1, None, "unknown job file type '.xml': use .csv, .json or .jsonl")]


@pytest.mark.parametrize("name", ["job.txt", "job.tsv", "job.TAB"])
def test_a_spreadsheets_text_export_is_named_with_the_name_to_give_it(
    tmp_path: Path, name: str
) -> None:
    """Excel's "Unicode text" / "Text (tab delimited)": the reader takes them as CSV, once
    the file is called what it is."""
    path = write(tmp_path, HEADER + "create_site,,Acme,,,,,,,\n", name)
    [(line, column, reason)] = problems(path)
    assert (line, column) == (1, None) and reason.endswith("rename it to 'job.csv'")


def test_missing_file_is_a_job_file_error(tmp_path: Path) -> None:
    assert problems(tmp_path / "absent.csv") == [
        (1, None, "cannot read the file: No such file or directory")]


def test_reading_specs_refuses_a_file_changed_after_validation(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "create_site,,Acme,,,,,,,\n")
    _, specs = load_job(path)
    path.write_text(HEADER + "create_site,,Acme Bakery,,,,,,,\n")
    with pytest.raises(JobFileError) as info:
        list(specs())
    assert [str(e) for e in info.value.errors] == [
        "line 1: the file changed after it was validated; run the command again"]

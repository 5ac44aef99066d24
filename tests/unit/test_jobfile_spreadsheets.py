"""CSV job files as spreadsheets really save them: delimiters, line ends, encodings, invisible
characters, number mangling, header quirks and the debris of copying and joining exports.

Each file is written as the bytes the spreadsheet writes. Readable files must give the values the
user meant; the others must be refused with one clear error on the right line, so that nothing of
a garbled file is ever sent.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from jobfiles import problems, write_file

from bulkops.jobfile import load_job, validate
from bulkops.model import Action, OpSpec

SITE_ID = "0f6d1e2a-3b4c-4d5e-8f60-718293a4b5c6"
ROLE_ID = "7084512206941830272"
ROUNDED = "the spreadsheet rounded this id: format the column as text and paste the id again"


def write(tmp_path: Path, content: bytes, name: str = "job.csv") -> Path:
    return write_file(tmp_path, content, name)


def specs(path: Path) -> list[OpSpec]:
    """The specs of a file that must validate, read back by the second pass."""
    source, read = load_job(path)
    found = list(read())
    assert source.total == len(found)
    return found


def invites(rows: str, header: str = "action,site,email,role\n") -> bytes:
    return (header + rows).encode()


# --- Delimiters -----------------------------------------------------------------------------

def test_semicolons_as_european_excel_and_libreoffice_write_them(tmp_path: Path) -> None:
    content = ("action;key;site_name;site;email;role\r\n"
               "create_site;acme;Acme, Bakery & Co;;;\r\n"
               'site_invite;;;@acme;bob@example.com;"Website Manager;Back Office Manager"\r\n')
    read = specs(write(tmp_path, content.encode()))
    assert [(s.line, s.action) for s in read] == [(2, Action.CREATE_SITE), (3, Action.SITE_INVITE)]
    assert read[0].site_name == "Acme, Bakery & Co"
    assert read[1].roles == ("Website Manager", "Back Office Manager")


def test_tabs_from_tsv_or_text_content_saved_as_csv(tmp_path: Path) -> None:
    content = "action\tkey\tsite_name\ncreate_site\tacme\tAcme; Bakery, Main\ncreate_site\tb\t\n"
    path = write(tmp_path, content.encode())
    assert problems(path) == [(3, "site_name", "site_name is required for create_site")]
    path.write_bytes(content.replace("create_site\tb\t\n", "").encode())
    assert [(s.key, s.site_name) for s in specs(path)] == [("acme", "Acme; Bakery, Main")]


def test_excel_sep_line_is_understood_and_skipped_keeping_line_numbers(tmp_path: Path) -> None:
    content = b"sep=;\r\naction;key;site_name\r\ncreate_site;a;Acme\r\ncreate_site;b;\r\n"
    assert problems(write(tmp_path, content)) == [
        (4, "site_name", "site_name is required for create_site")]
    path = write(tmp_path, b"sep=|\naction|site_name\ncreate_site|Acme, Inc\n", "pipe.csv")
    assert [(s.line, s.site_name) for s in specs(path)] == [(3, "Acme, Inc")]


def test_sep_line_that_contradicts_the_header_is_one_error(tmp_path: Path) -> None:
    path = write(tmp_path, b"sep=;\r\naction,key,site_name\r\ncreate_site,a,Acme\r\n")
    assert problems(path) == [(1, None, "the first line says sep=; but the header on line 2 is "
                                        "separated by commas: remove the sep= line or correct it")]


def test_semicolon_header_without_action_is_reported_as_such(tmp_path: Path) -> None:
    path = write(tmp_path, b"key;site_name\r\na;Acme\r\n")
    assert problems(path) == [(1, "action", "the header has no action column: every row needs "
                                            "one (create_site, transfer_site, site_invite, "
                                            "account_invite, connect_domain, set_dns_record)")]


# --- Line ends ------------------------------------------------------------------------------

def test_old_mac_carriage_returns_end_lines(tmp_path: Path) -> None:
    content = b"action,key,site_name\rcreate_site,a,Acme\rcreate_site,b,\rcreate_site,c,Cee\r"
    path = write(tmp_path, content)
    assert problems(path) == [(3, "site_name", "site_name is required for create_site")]
    path.write_bytes(content.replace(b"create_site,b,\r", b""))
    assert [(s.line, s.site_name) for s in specs(path)] == [(2, "Acme"), (3, "Cee")]


def test_mixed_line_ends_and_a_last_line_without_one(tmp_path: Path) -> None:
    content = b"action,key,site_name\r\ncreate_site,a,Acme\ncreate_site,b,Beta\rcreate_site,c,Cee"
    read = specs(write(tmp_path, content))
    assert [(s.line, s.site_name) for s in read] == [(2, "Acme"), (3, "Beta"), (4, "Cee")]


def test_multi_line_cells_keep_later_line_numbers_whatever_the_line_ends(tmp_path: Path) -> None:
    # Excel writes Alt-Enter inside a cell as LF while rows end in CRLF; old Mac files use CR.
    for end, inside in ((b"\r\n", b"\n"), (b"\r", b"\r"), (b"\n", b"\r\n")):
        content = (b"action,key,site_name" + end + b'create_site,a,"Acme' + inside + b'Bakery"'
                   + end + b"create_site,b," + end)
        assert problems(write(tmp_path, content)) == [
            (4, "site_name", "site_name is required for create_site")]


def test_broken_quoting_is_reported_on_its_physical_line(tmp_path: Path) -> None:
    content = b'sep=;\r\r;;\raction;site_name\rcreate_site;"Acme\rBakery"\rcreate_site;"Beta\r'
    assert problems(write(tmp_path, content)) == [
        (7, None, "malformed CSV: a quoted cell that starts on this row is never closed")]


# --- Encodings ------------------------------------------------------------------------------

def test_utf16_le_unicode_text_from_excel(tmp_path: Path) -> None:
    # Excel's "Unicode Text": UTF-16 LE with a BOM, cells separated by tabs, CRLF.
    content = "action\tkey\tsite_name\r\ncreate_site\tcafe\tCafé Ünïcode — 東京\r\n"
    read = specs(write(tmp_path, content.encode("utf-16")))
    assert content.encode("utf-16").startswith(b"\xff\xfe")
    assert [(s.line, s.key, s.site_name) for s in read] == [(2, "cafe", "Café Ünïcode — 東京")]


@pytest.mark.parametrize(("bom", "codec"), [(b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"),
                                           (b"\xff\xfe\x00\x00", "utf-32-le")])
def test_other_unicode_encodings_with_a_byte_order_mark(
    tmp_path: Path, bom: bytes, codec: str
) -> None:
    content = "action,site_name\r\ncreate_site,Crème 🍰\r\ncreate_site,\r\n"
    path = write(tmp_path, bom + content.encode(codec))
    assert problems(path) == [(3, "site_name", "site_name is required for create_site")]
    path.write_bytes(bom + content.replace("create_site,\r\n", "").encode(codec))
    assert [s.site_name for s in specs(path)] == ["Crème 🍰"]


def test_utf8_with_and_without_bom_read_alike(tmp_path: Path) -> None:
    content = "action,site_name\r\ncreate_site,Café\r\n".encode()
    with_bom = specs(write(tmp_path, b"\xef\xbb\xbf" + content, "bom.csv"))
    assert with_bom == specs(write(tmp_path, content))
    assert with_bom[0].site_name == "Café"


def test_windows_1252_csv_is_one_error_naming_the_line(tmp_path: Path) -> None:
    # Excel on Windows, "CSV (Comma delimited)": Windows-1252, so é is the single byte 0xE9 and
    # typographic quotes are 0x93/0x94; only the first bad byte is reported.
    path = write(tmp_path, b"action,key,site_name\r\ncreate_site,a,Alpha\r\n"
                           b"create_site,b,Caf\xe9 \x93Bleu\x94\r\ncreate_site,c,Z\xfcrich\r\n")
    assert problems(path) == [(3, None, "the file is not UTF-8 text: byte 0xE9 at character 18 "
                                        "cannot be decoded; save the file as UTF-8")]


def test_utf16_without_a_byte_order_mark_is_one_error(tmp_path: Path) -> None:
    path = write(tmp_path, "action,site_name\r\ncreate_site,Acme\r\n".encode("utf-16-le"))
    assert problems(path) == [(1, None, "the file looks like UTF-16 text without a byte order "
                                        "mark: save it as CSV UTF-8")]


def test_utf16_cut_in_the_middle_of_a_character_is_one_error(tmp_path: Path) -> None:
    path = write(tmp_path, "action,site_name\r\ncreate_site,Acme\r\n".encode("utf-16") + b"\x41")
    [(line, column, reason)] = problems(path)
    assert (line, column) == (3, None) and reason.startswith("the file is not valid UTF-16 text")
    assert reason.endswith("save it as CSV UTF-8")


@pytest.mark.parametrize(("magic", "what"), [
    (b"PK\x03\x04\x14\x00\x06\x00\x08\x00", "a spreadsheet workbook (.xlsx, .ods or .numbers)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00", "an Excel 97-2003 workbook (.xls)"),
])
def test_workbook_saved_under_a_csv_name_is_one_error(
    tmp_path: Path, magic: bytes, what: str
) -> None:
    path = write(tmp_path, magic + bytes(range(256)) * 4)
    assert problems(path) == [(1, None, f"this is {what}, not CSV text: in the spreadsheet, "
                                        "save or export it as CSV UTF-8")]


def test_text_garbled_by_an_earlier_wrong_encoding_is_refused(tmp_path: Path) -> None:
    # A UTF-8 export opened as Windows-1252 and saved again as CSV UTF-8.
    path = write(tmp_path, "action,site_name\ncreate_site,CafÃ© Bleu\n".encode())
    assert problems(path) == [(2, "site_name", "garbled text 'CafÃ© Bleu': it reads 'Café Bleu' "
                                               "once decoded as UTF-8, so the file was opened "
                                               "with the wrong encoding at some point; correct "
                                               "the text and save as CSV UTF-8")]


# --- Invisible and odd characters -----------------------------------------------------------

INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u200e", "\u200f", "\u202a",
             "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
             "\u00ad"]
ODD_SPACES = ["\u00a0", "\u2000", "\u2001", "\u2002", "\u2003", "\u2004", "\u2005", "\u2006",
              "\u2007", "\u2008", "\u2009", "\u200a", "\u202f", "\u3000"]


@pytest.mark.parametrize("char", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
def test_invisible_characters_are_removed_from_every_cell(tmp_path: Path, char: str) -> None:
    c = char
    content = (f"{c}action,key,site{c}_name,site,email,role,depends_on\n"
               f"create_site,{c}acme{c},Acme{c} Bakery,,,,\n"
               f"site_invite,in{c}v,,{c}@acme,{c}bob@exam{c}ple.com{c},Web{c}site Manager,"
               f"@ac{c}me\n"
               f"site_invite,,,{c}{SITE_ID}{c},ann@example.com,{c}{ROLE_ID}{c},\n")
    read = specs(write(tmp_path, content.encode()))
    assert read[0].key == "acme" and read[0].site_name == "Acme Bakery"
    assert (read[1].key, read[1].site, read[1].email) == ("inv", "@acme", "bob@example.com")
    assert read[1].roles == ("Website Manager",) and read[1].depends_on == ("acme",)
    assert (read[2].site, read[2].roles) == (SITE_ID, (ROLE_ID,))


@pytest.mark.parametrize("space", ODD_SPACES, ids=lambda c: f"U+{ord(c):04X}")
def test_odd_spaces_are_spaces_then_trimmed(tmp_path: Path, space: str) -> None:
    s = space
    content = (f"action,key,site_name,site,email,role\n"
               f"create_site,{s}acme{s},{s}{s}Acme{s}Bakery{s},,,\n"
               f"site_invite,{s},,{s}@acme{s},{s}bob@example.com{s}{s},{s}Admin{s}\n")
    read = specs(write(tmp_path, content.encode()))
    assert (read[0].key, read[0].site_name) == ("acme", "Acme Bakery")
    assert (read[1].site, read[1].email, read[1].roles) == ("@acme", "bob@example.com", ("Admin",))


def test_space_inside_an_email_is_still_refused(tmp_path: Path) -> None:
    path = write(tmp_path, invites(f"site_invite,{SITE_ID},bob\u00a0@example.com,Admin\n"))
    assert problems(path) == [(2, "email", "not a valid email address: 'bob @example.com'")]


@pytest.mark.parametrize(("written", "meant"), [
    ("“bob@example.com”", "bob@example.com"),
    ("‘bob@example.com’", "bob@example.com"),
    ("„bob@example.com“", "bob@example.com"),
    ("« bob@example.com »", "bob@example.com"),
])
def test_typographic_quotes_around_a_value_are_removed(
    tmp_path: Path, written: str, meant: str
) -> None:
    path = write(tmp_path, invites(f"site_invite,“{SITE_ID}”,{written},‘Admin’\n"))
    [spec] = specs(path)
    assert (spec.site, spec.email, spec.roles) == (SITE_ID, meant, ("Admin",))


def test_leading_apostrophes_that_keep_text_as_text_are_removed(tmp_path: Path) -> None:
    # '0123 is how a digits-as-text cell comes out of a tool that writes the marker; '= is the
    # formula guard of bulkops' own reports; any other apostrophe is text.
    path = write(tmp_path, invites(f"site_invite,{SITE_ID},bob@example.com,'{ROLE_ID},\n"
                                   "create_site,,,,'=Sum of parts\n"
                                   "create_site,,,,'tis the season\n",
                                   "action,site,email,role,site_name\n"))
    read = specs(path)
    assert read[0].roles == (ROLE_ID,)
    assert [s.site_name for s in read[1:]] == ["=Sum of parts", "'tis the season"]


def test_non_ascii_letters_in_an_email_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, invites(f"site_invite,{SITE_ID},zoë@example.com,Admin\n"
                                   f"site_invite,{SITE_ID},bob@bücher.de,Admin\n"
                                   f"site_invite,{SITE_ID},bob＠example.com,Admin\n"))
    assert problems(path) == [
        (2, "email", "not a valid email address: 'zoë@example.com' contains 'ë' (U+00EB); "
                     "email addresses must be plain ASCII"),
        (3, "email", "not a valid email address: 'bob@bücher.de' contains 'ü' (U+00FC); "
                     "email addresses must be plain ASCII: write the domain as "
                     "xn--bcher-kva.de"),
        (4, "email", "not a valid email address: 'bob＠example.com' contains '＠' (U+FF20); "
                     "email addresses must be plain ASCII"),
    ]


@pytest.mark.parametrize(("char", "code"), [("\x00", "0000"), ("\x07", "0007"), ("\x0b", "000B"),
                                            ("\x1b", "001B"), ("\x7f", "007F"), ("\x85", "0085")])
def test_control_characters_in_a_cell_are_a_row_error(
    tmp_path: Path, char: str, code: str
) -> None:
    row = f"account_invite,a,Ac{char}me@example.com,Admin\n"
    path = write(tmp_path, ("action,key,email,role\n" + row).encode())
    assert problems(path) == [
        (2, "email", f"contains the control character U+{code} at character 3: remove it")]


@pytest.mark.parametrize(("cell", "what"), [('"bob\n@example.com"', "a line break"),
                                            ('"bob\t@example.com"', "a tab")])
def test_a_line_break_or_tab_inside_a_value_is_a_row_error(
    tmp_path: Path, cell: str, what: str
) -> None:
    path = write(tmp_path, f"action,key,email,role\naccount_invite,a,{cell},Admin\n".encode())
    assert problems(path) == [(2, "email", f"contains {what} at character 4: remove it")]


@pytest.mark.parametrize("name", ['"Acme\tBakery"', '"Acme\nBakery"', '"Acme\r\nBakery"',
                                  "Acme  Bakery", '" Acme \x0b Bakery "'])
def test_a_site_name_wrapped_or_spaced_in_its_cell_is_one_line_with_single_spaces(
    tmp_path: Path, name: str
) -> None:
    """Alt-Enter in a cell, a tab, a double space: the name as it shows, as Wix keeps it."""
    path = write(tmp_path, f"action,site_name\ncreate_site,{name}\n".encode())
    assert specs(path)[0].site_name == "Acme Bakery"


def test_site_names_that_differ_only_in_spaces_or_unicode_form_are_duplicates(
    tmp_path: Path,
) -> None:
    """The file's names compare as the account's do (NFC, any case, spaces collapsed)."""
    content = ("action,site_name\ncreate_site,Alpha Beta\ncreate_site,alpha  beta\n"
               "create_site,Caf\u00e9\ncreate_site,Cafe\u0301\n")
    assert problems(write(tmp_path, content.encode())) == [
        (3, "site_name", "duplicate site name 'alpha beta': duplicate of line 2"),
        # Read as NFC, the two rows are the very same row too.
        (5, None, "same operation as line 4 (duplicate of line 4)"),
        (5, "site_name", "duplicate site name 'Caf\u00e9': duplicate of line 4")]


# --- Spreadsheet number mangling ------------------------------------------------------------

def test_excel_keep_as_text_wrapper_is_unwrapped_in_any_column(tmp_path: Path) -> None:
    # The cell ="7084512206941830272" as Excel quotes it, and as typed into a text editor.
    content = invites(f'site_invite,"=""{SITE_ID}""","=""bob@example.com""","=""{ROLE_ID}"""\n'
                      f'site_invite,{SITE_ID},ann@example.com,="{ROLE_ID}";Admin\n'
                      f'site_invite,{SITE_ID},cy@example.com,"=""{ROLE_ID}"";Admin"\n')
    read = specs(write(tmp_path, content))
    assert (read[0].site, read[0].email, read[0].roles) == (SITE_ID, "bob@example.com", (ROLE_ID,))
    assert read[1].roles == (ROLE_ID, "Admin")
    assert read[2].roles == (ROLE_ID, "Admin")


@pytest.mark.parametrize("rounded", ["7.08451E+18", "7,08451E+18", "7.08451220694183e+18",
                                     "7E+18", "7.E+18"])
def test_role_id_in_scientific_notation_is_refused(tmp_path: Path, rounded: str) -> None:
    path = write(tmp_path, invites(f'site_invite,{SITE_ID},bob@example.com,"Admin;{rounded}"\n'))
    assert problems(path) == [
        (2, "role", f"role {rounded!r} is a number in scientific notation: {ROUNDED}")]


@pytest.mark.parametrize("decimal", [f"{ROLE_ID}.0", f"{ROLE_ID},00"])
def test_role_id_written_as_a_decimal_is_refused_with_the_id_to_write(
    tmp_path: Path, decimal: str
) -> None:
    """A number-formatted column writes the id as a decimal: caught offline, like scientific
    notation, with the id to write instead."""
    path = write(tmp_path, invites(f'site_invite,{SITE_ID},bob@example.com,"{decimal}"\n'))
    [(line, column, reason)] = problems(path)
    assert (line, column) == (2, "role")
    assert f"written as a decimal number: write '{ROLE_ID}'" in reason


def test_role_ids_written_as_text_are_left_to_role_resolution(tmp_path: Path) -> None:
    path = write(tmp_path, invites(f"site_invite,{SITE_ID},bob@example.com,{ROLE_ID}\n"
                                   f"site_invite,{SITE_ID},ann@example.com,7084512206941830000\n"
                                   f"site_invite,{SITE_ID},cy@example.com,E18 Editors\n"))
    assert [s.roles for s in specs(path)] == [(ROLE_ID,), ("7084512206941830000",),
                                              ("E18 Editors",)]


def test_scientific_notation_is_refused_from_json_too(tmp_path: Path) -> None:
    path = write(tmp_path, b'[{"action": "account_invite", "email": "a@example.com", '
                           b'"role": ["7.08451E+18"]}]', "job.json")
    assert problems(path) == [
        (1, "role", f"role '7.08451E+18' is a number in scientific notation: {ROUNDED}")]


@pytest.mark.parametrize("value", ["#N/A", "#REF!", "#VALUE!", "#NAME?", "#DIV/0!", "Err:502"])
def test_spreadsheet_error_values_are_refused(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, invites(f"site_invite,{SITE_ID},{value},Admin\n"))
    assert problems(path) == [(2, "email", f"{value!r} is a spreadsheet error value, not data: "
                                           "the formula behind this cell failed; fix it, or "
                                           "paste the values you meant")]


# --- Header quirks --------------------------------------------------------------------------

@pytest.mark.parametrize("written", ["Site Name", "site name", "SITE_NAME", " Site_Name ",
                                     "\ufeffsite name", "SiteName", "site-name"])
def test_header_names_are_matched_without_case_spaces_or_underscores(
    tmp_path: Path, written: str
) -> None:
    path = write(tmp_path, f"Action,Key,{written},E-mail\ncreate_site,a,Acme,\n".encode())
    assert [(s.key, s.site_name) for s in specs(path)] == [("a", "Acme")]


def test_roles_header_is_the_role_column(tmp_path: Path) -> None:
    path = write(tmp_path, invites(f"site_invite,{SITE_ID},bob@example.com,Admin\n",
                                   "Action,Site,Email,Roles\n"))
    assert specs(path)[0].roles == ("Admin",)


def test_column_named_twice_in_different_spellings_names_both_cells(tmp_path: Path) -> None:
    path = write(tmp_path, b"action,Site Name,key,site_name\ncreate_site,Acme,a,Acme\n")
    assert problems(path) == [(1, "site_name", "column appears twice in the header: cell 2 "
                                               "'Site Name' and cell 4 'site_name' name the "
                                               "same column")]


def test_trailing_empty_columns_and_empty_rows_are_ignored(tmp_path: Path) -> None:
    content = (b"action;key;site_name;;;\r\ncreate_site;a;Acme;;;\r\n;;;;;\r\n"
               b"create_site;b;Beta\r\n;;;;;\r\n;;;;;\r\n")
    assert [(s.line, s.key) for s in specs(write(tmp_path, content))] == [(2, "a"), (4, "b")]


def test_more_cells_than_the_header_is_an_error_unless_they_are_empty(tmp_path: Path) -> None:
    path = write(tmp_path, b"action;key;site_name\r\ncreate_site;a;Acme;;\r\n"
                           b"create_site;b;Beta;;stray\r\n")
    assert problems(path) == [
        (3, None, "cell 5 has a value but no column name in the header (the header has 3 "
                  "columns)")]


# --- Debris of old tools, copies and joined exports -----------------------------------------

@pytest.mark.parametrize("ending", [b"\r\n\x1a", b"\x1a", b"\r\n\x1a\x1a"])
def test_dos_end_of_file_mark_is_ignored(tmp_path: Path, ending: bytes) -> None:
    path = write(tmp_path, b"action,key,site_name\r\ncreate_site,a,Acme" + ending)
    assert [(s.key, s.site_name) for s in specs(path)] == [("a", "Acme")]


def test_ctrl_z_inside_the_file_is_a_control_character(tmp_path: Path) -> None:
    path = write(tmp_path, b"action,key,site_name\r\ncreate_site,a,Ac\x1ame\r\n")
    assert problems(path) == [
        (2, "site_name", "contains the control character U+001A at character 3: remove it")]


def test_two_joined_exports_with_the_same_header_read_as_one(tmp_path: Path) -> None:
    # `cat a.csv b.csv` of two "CSV UTF-8" exports: the second BOM and header land mid-file.
    export = b"\xef\xbb\xbfAction,Key,Site Name\r\n"
    path = write(tmp_path, export + b"create_site,a,Acme\r\n" + export + b"create_site,b,\r\n")
    assert problems(path) == [(4, "site_name", "site_name is required for create_site")]
    path.write_bytes(export + b"create_site,a,Acme\r\n" + export + b"create_site,b,Beta\r\n")
    assert [(s.line, s.key) for s in specs(path)] == [(2, "a"), (4, "b")]


def test_a_second_header_with_other_columns_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, b"action,key,site_name\r\ncreate_site,a,Acme\r\n"
                           b"\xef\xbb\xbfaction,site_name,key\r\ncreate_site,Beta,b\r\n")
    assert problems(path) == [
        (3, None, "a second header row, with other columns than the header on line 1 (two "
                  "files joined together?): keep one header and put every row's cells in its "
                  "column order")]


def test_everything_at_once_as_a_european_mac_excel_file(tmp_path: Path) -> None:
    content = (f"sep=;\r\ufeffAction ; Key ; Site Name ; Site ; E-mail ; Role ;;\r"
               f'create_site;acme;"Boulangerie\rDupont";;;;;\r'
               f";;;;;;;\r"
               f"site_invite;;;@acme\u200b;\u00a0“Zoe@Example.com”;=\"{ROLE_ID}\";;\r"
               f"\x1a")
    read = specs(write(tmp_path, content.encode("utf-16")))
    assert [(s.line, s.action) for s in read] == [(3, Action.CREATE_SITE), (6, Action.SITE_INVITE)]
    assert read[0].site_name == "Boulangerie Dupont"
    assert (read[1].site, read[1].email, read[1].roles) == ("@acme", "Zoe@Example.com", (ROLE_ID,))


# --- Streaming ------------------------------------------------------------------------------

def _peak_while_validating(path: Path) -> int:
    tracemalloc.start()
    try:
        validate(path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_carriage_return_and_utf16_files_stream_like_plain_ones(tmp_path: Path) -> None:
    """No line end or encoding makes the reader hold the file: the peak stays that of LF UTF-8."""
    # Long notes (a report column, ignored) make the file big next to what validation keeps.
    header = "action,key,site_name,note\n"
    rows = "".join(f"create_site,,Client {n},{'x' * 400}\n" for n in range(2000))
    plain = write(tmp_path, (header + rows).encode(), "lf.csv")
    mac = write(tmp_path, (header + rows).replace("\n", "\r").encode(), "cr.csv")
    wide = write(tmp_path, (header + rows).replace(",", "\t").encode("utf-16"), "utf16.csv")
    baseline = _peak_while_validating(plain)
    assert mac.stat().st_size > baseline / 2  # the file itself would show
    for path in (mac, wide):
        assert _peak_while_validating(path) < baseline * 1.25

"""Checks across rows: references, cycles, duplicate keys and site names, stable derived keys."""

from __future__ import annotations

from pathlib import Path

from jobfiles import problems, write_file

from bulkops.jobfile import load_job, validate
from bulkops.jobgraph import RefGraph
from bulkops.model import Action, OpSpec

HEADER = "action,key,site_name,site,to_account,email,role,sites,depends_on\n"
ACCOUNT = "22222222-2222-4222-8222-222222222221"


def write(tmp_path: Path, rows: str, name: str = "job.csv") -> Path:
    return write_file(tmp_path, HEADER + rows, name)


def test_references_may_point_forwards_and_backwards(tmp_path: Path) -> None:
    path = write(tmp_path, "site_invite,,,@shop,,a@example.com,R,,@move\n"
                           "create_site,shop,Shop,,,,,,\n"
                           f"transfer_site,move,,@shop,{ACCOUNT},,,,\n")
    assert validate(path).total == 3


def test_dangling_reference_is_reported_on_the_referring_row_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "create_site,shop,Shop,,,,,,\n"
                           "site_invite,,,@shopp,,a@example.com,R,,\n"
                           "account_invite,,,,,b@example.com,R,@shop;@cafe,@nobody\n")
    found = problems(path)
    assert [(line, column) for line, column, _ in found] == [
        (3, "site"), (4, "sites"), (4, "depends_on"),
    ]
    for (_, _, reason), key in zip(found, ("@shopp", "@cafe", "@nobody"), strict=True):
        # Without a database there is no earlier run to look in: the message says how to.
        assert reason.startswith(f"'{key}' refers to no row in this file"), reason
        assert "no database" in reason and "--db" in reason, reason


def test_site_reference_to_a_row_that_creates_no_site_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "account_invite,boss,,,,b@example.com,Admin,,\n"
                           "site_invite,,,@boss,,a@example.com,R,,\n"
                           "account_invite,,,,,c@example.com,R,@boss,@boss\n")
    assert problems(path) == [
        (3, "site", "'@boss' is line 2 (account_invite), not a create_site row"),
        (4, "sites", "'@boss' is line 2 (account_invite), not a create_site row"),
    ]


def test_reference_to_a_row_with_a_bad_action_adds_no_second_error(tmp_path: Path) -> None:
    path = write(tmp_path, "make_site,shop,Shop,,,,,,\nsite_invite,,,@shop,,a@example.com,R,,\n")
    assert [(line, column) for line, column, _ in problems(path)] == [(2, "action")]


def test_cycle_is_reported_once_with_the_lines_in_it(tmp_path: Path) -> None:
    path = write(tmp_path, "create_site,a,A,,,,,,@c\n"
                           "create_site,free,Free,,,,,,\n"
                           "create_site,b,B,,,,,,@a\n"
                           "site_invite,c,,@b,,x@example.com,R,,\n"
                           "site_invite,d,,@a,,y@example.com,R,,@c\n")
    assert problems(path) == [(2, "depends_on", "dependency cycle between lines 2, 4 and 5")]


def test_row_that_refers_to_itself_is_a_cycle(tmp_path: Path) -> None:
    path = write(tmp_path, "create_site,a,A,,,,,,@a\n")
    assert problems(path) == [(2, "depends_on", "the row refers to itself ('@a')")]


def test_cycle_through_many_rows_lists_the_first_ten_lines() -> None:
    graph = RefGraph()
    count = 30_000
    for n in range(count):
        spec = OpSpec(line=n + 2, key=f"k{n}", action=Action.CREATE_SITE, site_name=f"S{n}",
                      depends_on=(f"k{(n + 1) % count}",))
        assert graph.add_row(spec.line, spec.key, spec.action, spec, derived=False) is None
    [error] = graph.errors()
    assert (error.line, error.column) == (2, "depends_on")
    assert error.reason == ("dependency cycle between lines 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 "
                            f"and {count - 10} more")


def test_long_chain_without_cycle_is_accepted() -> None:
    graph = RefGraph()
    count = 30_000
    for n in range(count):  # each row waits for the next one: all edges point forwards
        deps = (f"k{n + 1}",) if n + 1 < count else ()
        spec = OpSpec(line=n + 2, key=f"k{n}", action=Action.CREATE_SITE, site_name=f"S{n}",
                      depends_on=deps)
        graph.add_row(spec.line, spec.key, spec.action, spec, derived=False)
    assert graph.errors() == []


def test_duplicate_key_names_the_earlier_line(tmp_path: Path) -> None:
    path = write(tmp_path, "create_site,shop,Shop,,,,,,\n"
                           "account_invite,x,,,,a@example.com,R,,\n"
                           "create_site,shop,Shop Two,,,,,,\n")
    assert problems(path) == [(4, "key", "duplicate key 'shop': duplicate of line 2")]


def test_identical_rows_without_key_are_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path, "account_invite,,,,,a@example.com,R,,\n"
                           "account_invite,,,,,b@example.com,R,,\n"
                           "account_invite,,,,,A@example.com, R,,\n")
    assert problems(path) == [(4, None, "same operation as line 2 (duplicate of line 2)")]


def test_duplicate_site_name_ignores_case_and_spaces(tmp_path: Path) -> None:
    path = write(tmp_path, "create_site,a,Acme Bakery,,,,,,\n"
                           "create_site,b,Beta,,,,,,\n"
                           "create_site,c,  ACME bakery ,,,,,,\n")
    assert problems(path) == [
        (4, "site_name", "duplicate site name 'ACME bakery': duplicate of line 2")]


def test_derived_keys_survive_reordering_and_editing_other_rows(tmp_path: Path) -> None:
    invite = "site_invite,,,@shop,,a@example.com,Website Manager,,\n"
    transfer = f"transfer_site,,,@shop,{ACCOUNT},,,,\n"
    first = write(tmp_path, "create_site,shop,Shop,,,,,,\n" + invite + transfer, "one.csv")
    second = write(tmp_path, transfer + "create_site,shop,Shop 2,,,,,,\n"
                             "account_invite,,,,,z@example.com,R,,\n" + invite, "two.csv")
    keys_first = {s.action: s.key for s in load_job(first)[1]()}
    keys_second = {s.action: s.key for s in load_job(second)[1]()}
    assert keys_first[Action.SITE_INVITE] == keys_second[Action.SITE_INVITE]
    assert keys_first[Action.TRANSFER_SITE] == keys_second[Action.TRANSFER_SITE]
    assert keys_first[Action.SITE_INVITE].startswith("site_invite-")


def test_specs_list_their_dependency_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "create_site,shop,Shop,,,,,,\ncreate_site,cafe,Cafe,,,,,,\n"
                           "account_invite,,,,,a@example.com,R,@shop;@cafe,@shop\n")
    assert list(load_job(path)[1]())[2].dependency_keys() == ("shop", "cafe")


def test_a_bad_rows_dangling_reference_is_reported_with_its_other_problems(
    tmp_path: Path,
) -> None:
    """One pass: the bad e-mail and the reference to no row come out together."""
    path = write(tmp_path, "create_site,shop,Shop,,,,,,\n"
                           "site_invite,,,@ghost,,not-an-email,R,,\n"
                           "site_invite,,,@shop,,also-bad,R,,@nobody\n")
    found = {(line, column) for line, column, _ in problems(path)}
    assert found == {(3, "email"), (3, "site"), (4, "email"), (4, "depends_on")}

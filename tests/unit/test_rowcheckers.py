"""A large file's rows checked in a helper process too (`rowcheckers`): the same problems,
specs and outside references as the one-process pass, whichever process checked a row, and
the same when the helper dies mid-pass."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from processes import ONLY_WITH_PROC, live_processes

from bulkops import cpus, jobfile, jobreaders, rowcheckers
from bulkops.errors import JobFileError
from bulkops.jobreaders import JobFormat, read_rows
from bulkops.jobrows import check_row

TEMPLATE = "3f0c9a2e-1d2b-4c5d-8e9f-0a1b2c3d4e5f"
ACCOUNT = "22222222-2222-4222-8222-222222222221"
HEADER = ("action,key,site_name,template_id,site,to_account,email,role,sites,depends_on,"
          "domain,connection,record_type,host,values,ttl")


# (every, at, rows): client n gets the rows when n % every == at. Each kind of problem the
# cross-row checks judge (duplicate key, name or invitee, a reference to a missing or wrong
# row, a cycle) and some the row check does (unknown action, bad cells).
BAD_ROWS = [
    (97, 5, "create_site,site-{n},Client {n} Again,,,,,,,,,,,,,"),  # duplicate key
    (89, 7, "create_site,other-{n},client {n}  studio,,,,,,,,,,,,,"),  # duplicate name
    (83, 3, "site_invite,,,,@site-{n},,OWNER{n}@client{n}.com,Website Manager,,,,,,,,"),
    (79, 2, "site_invite,,,,@nowhere-{n},,x{n}@client{n}.com,Website Manager,,,,,,,,"),
    (73, 1, "site_invite,,,,@owner-{n},,y{n}@client{n}.com,Website Manager,,,,,,,,"),
    (71, 4, "transfer_site,loop-a-{n},,,@site-{n},{account},,,,@loop-b-{n},,,,,,",
            "transfer_site,loop-b-{n},,,@site-{n},{account},,,,@loop-a-{n},,,,,,"),  # a cycle
    (67, 6, "make_site,bad-{n},Client {n},,,,,,,,,,,,,"),  # unknown action
    (61, 0, "site_invite,,,,@site-{n},,not-an-email,Website Manager,,,,,,,,"),
    (59, 8, "set_dns_record,,,,,,,,,,client{n}.com,,MX,client{n}.com,oops,3600"),
]


def client_rows(n: int) -> list[str]:
    """One client's rows: every action, `@key` references, and now and then `BAD_ROWS`."""
    rows = [
        f"create_site,site-{n},Client {n} Studio,{TEMPLATE},,,,,,,,,,,,",
        f"create_site,,Client {n} Blog,,,,,,,,,,,,,",
        f"site_invite,owner-{n},,,@site-{n},,owner{n}@client{n}.com,Website Manager,,,,,,,,",
        f"account_invite,team-{n},,,,,team{n}@agency.example.com,Website Manager,@site-{n},,,,,,,",
        f"connect_domain,domain-{n},,,@site-{n},,,,,,client{n}.com,nameservers,,,,",
        f"set_dns_record,,,,,,,,,,client{n}.com,,MX,client{n}.com,10 mx1.client{n}.com,3600",
        f"transfer_site,move-{n},,,@site-{n},{ACCOUNT},,,,@owner-{n};@domain-{n},,,,,,",
    ]
    rows += [row.format(n=n, account=ACCOUNT) for every, at, *bad in BAD_ROWS if n % every == at
             for row in bad]
    return rows


def write_csv(path: Path, clients: int) -> Path:
    lines = [HEADER] + [row for n in range(clients) for row in client_rows(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def as_jsonl(csv_path: Path, path: Path) -> Path:
    """The same rows as a JSON Lines file, which helpers read too (a JSON document they do
    not: it is parsed whole)."""
    names = HEADER.split(",")
    lines = []
    for line in csv_path.read_text(encoding="utf-8").splitlines()[1:]:
        cells = dict(zip(names, line.split(","), strict=True))
        lines.append(json.dumps({name: value for name, value in cells.items() if value}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def checked(path: Path, *, helper: bool, monkeypatch: pytest.MonkeyPatch
            ) -> tuple[list[tuple[int, str | None, str]], list[object], list[object]]:
    """(problems, specs, outside references) of `check_job(path)`, with or without helper."""
    monkeypatch.setattr(rowcheckers, "HELPER_FROM_BYTES", 0 if helper else 1 << 62)
    job = jobfile.check_job(path)
    problems = [(error.line, error.column, error.reason) for error in job.errors]
    specs = [] if job.errors else list(job.specs())
    return problems, specs, list(job.outside)


@pytest.fixture
def big_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "clients.csv", 1500)  # over 10,000 rows: many batches


def test_helped_pass_reports_what_one_process_reports(
    big_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = checked(big_csv, helper=False, monkeypatch=monkeypatch)
    helped = checked(big_csv, helper=True, monkeypatch=monkeypatch)
    assert helped == alone
    problems = alone[0]
    reasons = " | ".join(reason for _, _, reason in problems)
    # Each kind of problem the file holds is among them, cross-row ones included.
    for kind in ("duplicate key", "duplicate site name", "already invited", "not a create_site",
                 "dependency cycle", "unknown action", "email"):
        assert kind in reasons
    assert [ref.key for ref in alone[2]][:1] == ["nowhere-2"]


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_helped_pass_gives_the_same_specs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    clean = tmp_path / "clean.csv"
    lines = [HEADER] + [row for n in range(1200) for row in client_rows(n)[:7]]
    clean.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = clean if kind == "csv" else as_jsonl(clean, tmp_path / "clean.jsonl")
    alone = checked(path, helper=False, monkeypatch=monkeypatch)
    helped = checked(path, helper=True, monkeypatch=monkeypatch)
    assert alone[0] == [] and len(alone[1]) == 8400
    assert helped == alone


def test_a_json_document_is_checked_in_this_process_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each helper would hold the whole parsed document: a large .json is checked here."""
    path = tmp_path / "clean.json"
    path.write_text(json.dumps([{"action": "create_site", "key": f"s{n}", "site_name": f"S {n}"}
                                for n in range(100)]), encoding="utf-8")

    def no_helpers(*_: object) -> Iterator[object]:
        raise AssertionError("helpers started for a JSON document")

    monkeypatch.setattr(jobfile, "helped_items", no_helpers)
    problems, specs, _ = checked(path, helper=True, monkeypatch=monkeypatch)
    assert problems == [] and len(specs) == 100


@ONLY_WITH_PROC
def test_the_helpers_read_and_check_and_this_process_takes_their_batches_in_order(
    big_csv: Path
) -> None:
    helped = list(rowcheckers.helped_items(big_csv, JobFormat.CSV))
    assert len(helped) > 4 * rowcheckers.BATCH  # batches of both helpers, taken in turn
    assert helped == list(rowcheckers.checked_items(read_rows(big_csv, JobFormat.CSV)))
    assert helper_pids() == []  # each helper has ended


def helper_pids() -> list[int]:
    """The live helper processes this process started."""
    return live_processes("bulkops.rowcheckers", parent=os.getpid())


def kill_helpers_after_a_batch(items: Iterator[object]) -> Iterator[object]:
    for n, item in enumerate(items):
        if n == rowcheckers.BATCH:
            pids = helper_pids()
            assert pids  # still at work: the file has many more batches
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
        yield item


@ONLY_WITH_PROC
def test_helpers_killed_mid_pass_end_it_with_helpers_lost(big_csv: Path) -> None:
    with pytest.raises(rowcheckers.HelpersLost):
        list(kill_helpers_after_a_batch(rowcheckers.helped_items(big_csv, JobFormat.CSV)))
    assert helper_pids() == []


@ONLY_WITH_PROC
def test_a_pass_whose_helpers_die_is_run_again_here_with_the_same_outcome(
    big_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = checked(big_csv, helper=False, monkeypatch=monkeypatch)
    lost: list[rowcheckers.HelpersLost] = []

    def killed(path: Path, fmt: JobFormat, *, stored: bool,
               keep: Callable[[bytes], None] | None) -> Iterator[object]:
        try:
            yield from kill_helpers_after_a_batch(
                rowcheckers.helped_items(path, fmt, stored=stored, keep=keep))
        except rowcheckers.HelpersLost as exc:
            lost.append(exc)
            raise

    monkeypatch.setattr(jobfile, "helped_items", killed)
    assert checked(big_csv, helper=True, monkeypatch=monkeypatch) == alone
    assert len(lost) == 1


def test_a_file_that_turns_unreadable_midway_stops_the_pass_and_the_helper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_csv(tmp_path / "bad.csv", 1500)
    data = path.read_bytes()
    middle = data.index(b"\n", len(data) // 2) + 1
    path.write_bytes(data[:middle] + b"create_site,x,\xff\xfe,,,,,,,,,,,,,\n" + data[middle:])
    monkeypatch.setattr(rowcheckers, "HELPER_FROM_BYTES", 0)
    with pytest.raises(JobFileError) as info:
        jobfile.check_job(path)
    assert "not UTF-8" in info.value.errors[0].reason


def test_a_spec_crosses_as_plain_values_and_comes_back_the_same(big_csv: Path) -> None:
    for item in read_rows(big_csv, JobFormat.CSV):
        if hasattr(item, "fields"):
            spec = check_row(item.line, item.fields, item.defaults).spec
            if spec is not None:
                plain = rowcheckers.spec_plain(spec)
                kept = dict(plain)
                assert rowcheckers.spec_of_plain(plain) == spec
                assert plain == kept  # left as it was


def fake_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answers: list[bytes]) -> None:
    """Helpers that answer with `answers[INDEX]`, whatever they are asked: a stand-in
    interpreter writes the answer and ends."""
    for index, answer in enumerate(answers):
        (tmp_path / f"answer-{index}").write_bytes(answer)
    fake = tmp_path / "fake-python"  # -P -m MODULE PACKAGE PATH FORMAT INDEX HELPERS
    fake.write_text(f"#!/bin/sh\ncat '{tmp_path}/answer-'\"$7\"\n")
    fake.chmod(0o755)
    monkeypatch.setattr(rowcheckers.sys, "executable", str(fake))


@pytest.mark.parametrize("answer", [
    b"",  # ends at once
    b"\x05\x00\x00\x00\x00\x00\x00\x00hello",  # a batch that is no marshalled batch
    b"\x05\x00\x00\x00\x00\x00\x00\x00he",  # a batch cut short
    b"\xff" * 8,  # gives up
], ids=["ends", "garbage", "cut", "fails"])
def test_a_helper_that_answers_nonsense_ends_the_helped_pass_with_helpers_lost(
    big_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: bytes
) -> None:
    """Whatever a helper writes or fails to write, the pass ends with HelpersLost (which
    sends it back to this process), never with another error."""
    fake_helpers(tmp_path, monkeypatch, [answer] * rowcheckers.HELPERS)
    with pytest.raises(rowcheckers.HelpersLost):
        list(rowcheckers.helped_items(big_csv, JobFormat.CSV))


def test_no_interpreter_to_start_helpers_with_is_helpers_lost(
    big_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rowcheckers.sys, "executable", "")
    with pytest.raises(rowcheckers.HelpersLost):
        list(rowcheckers.helped_items(big_csv, JobFormat.CSV))


def test_a_helper_that_imported_another_bulkops_gives_up_at_once(big_csv: Path) -> None:
    """Told which package the pass runs, a helper running another one (another version first
    on its path) checks nothing: it answers that it could not go on."""
    package = str(Path(rowcheckers.__file__).resolve().parent)
    for args in (["/elsewhere/bulkops", str(big_csv), "csv", "0", "2", "stored"],
                 [package, str(big_csv), "csv", "0", "2"],  # as an earlier version starts it
                 [package, str(big_csv), "csv", "0", "2", "everything"]):
        done = subprocess.run([sys.executable, "-m", "bulkops.rowcheckers", *args],
                              capture_output=True, check=True, timeout=60)
        assert done.stdout == b"\xff" * 8  # its one answer: failed


def test_a_helper_of_this_package_sends_its_batches_then_the_end(big_csv: Path) -> None:
    package = str(Path(rowcheckers.__file__).resolve().parent)
    done = subprocess.run(
        [sys.executable, "-m", "bulkops.rowcheckers", package, str(big_csv), "csv", "1", "2",
         "stored"],
        capture_output=True, check=True, timeout=60)
    items = sum(1 for _ in read_rows(big_csv, JobFormat.CSV))
    # Its batches, then the end and the number of items it read: the whole file's.
    assert len(done.stdout) > 100_000 and done.stdout[-16:-8] == b"\x00" * 8
    assert int.from_bytes(done.stdout[-8:], "little") == items


def helper_answer(path: Path, index: int) -> bytes:
    out = io.BytesIO()
    rowcheckers.help_with(str(path), "csv", index, 2, out)
    return out.getvalue()


def test_helpers_that_read_a_growing_file_to_different_ends_end_the_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One helper read the file while it had two and a half batches, the other once it had
    four: taking the first one's short batch and then the other's next would lose the rows
    in between. Their item counts disagree: HelpersLost (the pass runs again here)."""
    rows = [f"create_site,s{n},Site {n}" for n in range(4 * rowcheckers.BATCH - 1)]
    short = tmp_path / "short.csv"
    short.write_text("action,key,site_name\n" + "\n".join(rows[:2 * rowcheckers.BATCH + 499])
                     + "\n", encoding="utf-8")
    grown = tmp_path / "grown.csv"
    grown.write_text("action,key,site_name\n" + "\n".join(rows) + "\n", encoding="utf-8")
    fake_helpers(tmp_path, monkeypatch, [helper_answer(short, 0), helper_answer(grown, 1)])
    with pytest.raises(rowcheckers.HelpersLost, match="different ends"):
        list(rowcheckers.helped_items(grown, JobFormat.CSV))
    # The same file read by both: every item, in order.
    fake_helpers(tmp_path, monkeypatch, [helper_answer(grown, 0), helper_answer(grown, 1)])
    assert list(rowcheckers.helped_items(grown, JobFormat.CSV)) == list(
        rowcheckers.checked_items(read_rows(grown, JobFormat.CSV)))


def test_helpers_import_nothing_from_the_folder_the_command_runs_in(
    big_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A csv.py where the user runs the command is not a helper's csv module."""
    folder = tmp_path / "work"
    folder.mkdir()
    marker = tmp_path / "imported"
    (folder / "csv.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise ImportError\n")
    monkeypatch.chdir(folder)
    helped = list(rowcheckers.helped_items(big_csv, JobFormat.CSV))
    assert not marker.exists()
    assert len(helped) > 10_000


def test_a_process_allowed_one_cpu_checks_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    big = rowcheckers.HELPER_FROM_BYTES
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert not rowcheckers.worth_helping(big, JobFormat.CSV)
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert rowcheckers.worth_helping(big, JobFormat.CSV)
    assert rowcheckers.worth_helping(big, JobFormat.JSONL)
    assert not rowcheckers.worth_helping(big, JobFormat.JSON)
    assert not rowcheckers.worth_helping(big - 1, JobFormat.CSV)


def test_no_helpers_for_a_process_whose_cgroup_quota_is_one_cpu(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # A container given one CPU (`docker run --cpus 1`) on a host of many: its affinity shows
    # them all, its quota does not.
    big = rowcheckers.HELPER_FROM_BYTES
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3},
                        raising=False)
    monkeypatch.setattr(cpus, "cgroup_cpu_quota", lambda root=None: 1.0)
    assert not rowcheckers.worth_helping(big, JobFormat.CSV)
    monkeypatch.setattr(cpus, "cgroup_cpu_quota", lambda root=None: 2.0)
    assert rowcheckers.worth_helping(big, JobFormat.CSV)


@ONLY_WITH_PROC
def test_a_second_interrupt_while_helpers_end_kills_them_all(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two processes that outlive their closed output (as a helper busy with a batch would),
    # and a Ctrl-C arriving while the first is waited for: both are killed, none left behind,
    # and the interrupt goes on up.
    processes = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                  stdout=subprocess.PIPE) for _ in range(2)]
    waited = processes[0].wait

    def interrupted(timeout: float | None = None) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(processes[0], "wait", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            rowcheckers._end(processes)
        assert waited(10) == -signal.SIGKILL
        assert processes[1].wait(10) == -signal.SIGKILL
    finally:
        for process in processes:
            process.kill()


# Rows making one item, two (a stray cell's problem, then the row), none or one (a second
# header), and rows whose count only making them tells (a wrapped cell), between blank lines.
MIXED_CSV = (
    "sep=,\n"
    "action,key,site_name,,note\n"
    + "".join(
        f"create_site,s{n},Site {n},,\n"
        f"create_site,t{n},Site T{n},stray {n},\n"
        "\n"
        f"create_site,w{n},\"=\"\"00{n}\"\"\",,\n"
        + ("ACTION,key,site_name,,\n" if n % 7 == 0 else "")
        + ("Action,Key,Site_Name,,Note\n" if n % 3 == 0 else "")  # the header again: no item
        + (f"action,k{n},x,,\n" if n % 5 == 0 else "")
        for n in range(60)
    )
)


@pytest.mark.parametrize("period", [1, 2, 3, 7])
def test_a_skipping_read_gives_the_same_items_in_the_same_places(
    tmp_path: Path, period: int
) -> None:
    """Every wanted item as `read_rows` gives it; an unwanted one as it, or SKIPPED in its
    place: a helper counts its batches' items exactly as if it had read them all."""
    path = tmp_path / "mixed.csv"
    path.write_text(MIXED_CSV, encoding="utf-8")
    full = list(read_rows(path, JobFormat.CSV))

    def wanted(number: int) -> bool:
        return (number // period) % 2 == 0

    skipping = list(jobreaders.read_rows_skipping(path, JobFormat.CSV, wanted))
    assert len(skipping) == len(full)
    for number, (item, whole) in enumerate(zip(skipping, full, strict=True)):
        assert item == whole or (item is jobreaders.SKIPPED and not wanted(number)), number
    assert sum(item is jobreaders.SKIPPED for item in skipping) >= len(full) // 10
    # Every kind of item was met: header, rows, stray-cell problems, second headers.
    assert {type(item).__name__ for item in full} == {"CsvHeader", "RawRow", "RowError"}
    assert any("no column name" in str(item) for item in full)

"""The specs `check_job` hands to the store come from its spool, not from parsing again: the
same specs, in input order, as validating each row on its own gives."""

from __future__ import annotations

import errno
import marshal
from pathlib import Path

import pytest
from checkedrows import checked_one_by_one

from bulkops import jobfile, rowcheckers
from bulkops.errors import ConfigError
from bulkops.storedspec import StoredRow

JOBS = Path(__file__).resolve().parents[2] / "jobs"


@pytest.mark.parametrize("name", ["onboarding.csv", "onboarding.json"])
def test_spooled_specs_are_the_rows_validated_one_by_one(name: str) -> None:
    checked = jobfile.check_job(JOBS / name)
    assert not checked.errors
    assert list(checked.specs()) == checked_one_by_one(JOBS / name)


def test_the_specs_can_be_read_more_than_once_and_side_by_side(tmp_path: Path) -> None:
    job = tmp_path / "many.csv"
    lines = [f"create_site,site-{n},Site {n}" for n in range(10_000)]  # several spool batches
    job.write_text("action,key,site_name\n" + "\n".join(lines) + "\n", encoding="utf-8")
    checked = jobfile.check_job(job)
    first, second = checked.specs(), checked.specs()
    pairs = list(zip(first, second, strict=True))
    assert len(pairs) == 10_000 and all(a == b for a, b in pairs)
    assert [spec.line for spec, _ in pairs] == list(range(2, 10_002))
    assert list(checked.specs())[-1].key == "site-9999"


def test_a_spool_that_cannot_be_written_is_not_blamed_on_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No room for the temporary file of checked rows: said as that, with what to do (exit 2
    through ConfigError), never as the job file being unreadable."""
    job = tmp_path / "job.csv"
    job.write_text("action,key,site_name\ncreate_site,a,Site A\n", encoding="utf-8")

    def no_room(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jobfile.tempfile, "TemporaryFile", no_room)
    checked = jobfile.check_job(job)  # one row: kept in memory until read back
    with pytest.raises(ConfigError) as refused:
        list(checked.specs())
    assert "temporary file" in str(refused.value) and "TMPDIR" in str(refused.value)
    assert "No space left on device" in str(refused.value)
    assert jobfile.check_job(job, keep_specs=False).errors == []  # validate keeps nothing
    many = tmp_path / "many.csv"  # more rows than a spool batch: written during the pass
    many.write_text("action,key,site_name\n" + "".join(
        f"create_site,site-{n},Site {n}\n" for n in range(jobfile._Spool.BATCH + 1)),
        encoding="utf-8")
    with pytest.raises(ConfigError, match="TMPDIR"):
        jobfile.check_job(many)


DOMAIN_HEADER = "action,key,site,domain,connection,record_type,host,values,ttl\n"
SITE_ID = "de305173-0001-4000-8000-00000000ac3e"


def test_helpers_batches_spool_as_they_came_with_the_rows_the_checks_changed_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Helpers' stored forms go to the spool unread; each DNS row that gains its domain's
    connect (a change only the cross-row checks make) is spooled again after its batch. Read
    back, every row is as checking the rows one by one makes it, across many batches."""
    job = tmp_path / "domains.csv"
    job.write_text(DOMAIN_HEADER + "".join(
        f"connect_domain,domain-{n},{SITE_ID},client{n}.com,nameservers,,,,\n"
        f"set_dns_record,,,client{n}.com,,MX,client{n}.com,10 mx.client{n}.com,3600\n"
        for n in range(3 * rowcheckers.BATCH)), encoding="utf-8")
    monkeypatch.setattr(rowcheckers, "HELPER_FROM_BYTES", 0)
    kept: list[bytes] = []
    made_again: list[int] = []
    add_batch, again = jobfile._Spool.add_batch, jobfile._Spool.again
    monkeypatch.setattr(jobfile._Spool, "add_batch",
                        lambda spool, blob: (kept.append(blob), add_batch(spool, blob))[1])
    monkeypatch.setattr(jobfile._Spool, "again", lambda spool, number, row: (
        made_again.append(number), again(spool, number, row))[1])
    checked = jobfile.check_job(job)
    assert not checked.errors
    items = 6 * rowcheckers.BATCH + 1  # the rows and the header
    assert len(kept) == -(-items // rowcheckers.BATCH)  # one blob a helper's batch
    assert made_again == list(range(1, 6 * rowcheckers.BATCH, 2))  # every DNS row
    specs = list(checked.specs())
    assert specs == checked_one_by_one(job)
    assert all(spec.implied_depends_on for spec in specs[1::2])


def test_a_row_made_again_outside_the_batch_before_it_is_refused() -> None:
    spool = jobfile._Spool()
    spool.add_batch(marshal.dumps([stored(0), stored(1)]))
    spool.again(1, stored(7))
    spool.add_batch(marshal.dumps([stored(2)]))
    assert [row[0] for row in spool.read()] == [0, 7, 2]
    spool.again(0, stored(8))  # row 0 is not of the last batch
    with pytest.raises(RuntimeError, match="row 0 made again out of its batch"):
        list(spool.read())


def stored(line: int) -> StoredRow:
    return (line, f"k{line}", "create_site", "{}", None, ())

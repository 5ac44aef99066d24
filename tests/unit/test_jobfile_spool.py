"""The specs `check_job` hands to the store come from its spool, not from parsing again: the
same specs, in input order, as validating each row on its own gives."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from checkedrows import checked_one_by_one

from bulkops import jobfile
from bulkops.errors import ConfigError

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

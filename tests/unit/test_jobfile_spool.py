"""The specs `check_job` hands to the store come from its spool, not from parsing again: the
same specs, in input order, as validating each row on its own gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkops import jobfile
from bulkops.domainfile import DomainRows
from bulkops.jobreaders import JobFormat, RawRow, read_rows
from bulkops.jobrows import check_row
from bulkops.model import OpSpec

JOBS = Path(__file__).resolve().parents[2] / "jobs"


def row_by_row(path: Path) -> list[OpSpec]:
    domains = DomainRows()
    specs = []
    for item in read_rows(path, JobFormat(path.suffix[1:])):
        if isinstance(item, RawRow):
            spec = check_row(item.line, item.fields, item.defaults).spec
            assert spec is not None
            specs.append(domains.take(spec)[0])
    return specs


@pytest.mark.parametrize("name", ["onboarding.csv", "onboarding.json"])
def test_spooled_specs_are_the_rows_validated_one_by_one(name: str) -> None:
    checked = jobfile.check_job(JOBS / name)
    assert not checked.errors
    assert list(checked.specs()) == row_by_row(JOBS / name)


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

"""A job file's specs made row by row, as each row's own check and the domain rows make them:
what the first pass's spool must give back, without the spool."""

from __future__ import annotations

from pathlib import Path

from bulkops.domainfile import DomainRows
from bulkops.jobreaders import JobFormat, RawRow, read_rows
from bulkops.jobrows import check_row
from bulkops.model import OpSpec


def checked_one_by_one(path: Path) -> list[OpSpec]:
    """The specs of a file with no problem, in input order."""
    domains = DomainRows()
    specs = []
    for item in read_rows(path, JobFormat(path.suffix[1:])):
        if isinstance(item, RawRow):
            spec = check_row(item.line, item.fields, item.defaults).spec
            assert spec is not None
            specs.append(domains.take(spec)[0])
    return specs

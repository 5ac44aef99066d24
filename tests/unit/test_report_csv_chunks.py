"""The CSV report resolves `@key`s a chunk of rows at a time, never holding the whole job's
site ids: the same cells as with every site id at hand, and each lookup asks only for the keys
its chunk's rows name."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Collection, Iterable, Mapping

import pytest

from bulkops import report
from bulkops.cells import escape
from bulkops.model import Action, OpRecord, OpSpec, OpState
from bulkops.report import write_csv

SITE = "0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f"


def rows(clients: int) -> list[OpRecord]:
    """Per client: a create that succeeded, a failed create, and an invite naming both."""
    ops: list[OpRecord] = []
    for n in range(clients):
        seq = len(ops)
        ops += [
            OpRecord(op_id=seq, job_id="j", seq=seq, state=OpState.SUCCEEDED, attempts=1,
                     site_id=f"{SITE[:-4]}{n:04d}",
                     spec=OpSpec(line=seq + 2, key=f"ok{n}", action=Action.CREATE_SITE,
                                 site_name=f"=Client {n}")),
            OpRecord(op_id=seq + 1, job_id="j", seq=seq + 1, state=OpState.FAILED, attempts=1,
                     spec=OpSpec(line=seq + 3, key=f"bad{n}", action=Action.CREATE_SITE,
                                 site_name=f"Shop {n}")),
            OpRecord(op_id=seq + 2, job_id="j", seq=seq + 2, state=OpState.BLOCKED,
                     spec=OpSpec(line=seq + 4, key=f"inv{n}", action=Action.ACCOUNT_INVITE,
                                 email=f"a{n}@example.com", roles=("Admin",),
                                 sites=(f"@ok{n}", f"@bad{n}"),
                                 depends_on=(f"ok{n}", f"bad{n}"))),
        ]
    return ops


async def _each(ops: Iterable[OpRecord]) -> AsyncIterator[OpRecord]:
    for op in ops:
        yield op


async def test_chunked_lookups_give_the_cells_of_the_whole_job_s_site_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ops = rows(7)
    produced = {op.spec.key: op.site_id or "" for op in ops if op.state is OpState.SUCCEEDED}
    asked: list[set[str]] = []

    async def lookup(keys: Collection[str]) -> Mapping[str, str]:
        asked.append(set(keys))
        return {key: produced[key] for key in keys if key in produced}

    whole, chunked = io.StringIO(), io.StringIO()
    monkeypatch.setattr(report, "CSV_CHUNK", 4)
    assert await write_csv(_each(ops), produced, whole) == len(ops)
    assert await write_csv(_each(ops), lookup, chunked) == len(ops)

    assert chunked.getvalue() == whole.getvalue()
    assert len(asked) == -(-len(ops) // 4)  # one lookup per chunk
    assert all(len(keys) <= 2 * 4 for keys in asked)  # only the keys its rows name
    record = list(csv.DictReader(io.StringIO(chunked.getvalue())))[2]
    assert record["sites"] == f"{produced['ok0']};@bad0"
    assert record["depends_on"] == "'@bad0"  # the succeeded one is done; formula-safe


def test_csv_cells_are_escaped_as_cells_escape_does() -> None:
    for value in ("", "plain", "=SUM(A1)", "+1", "-1", "@key", "\tx", "\rx", "'=", " ="):
        assert report._safe(value) == escape(value)

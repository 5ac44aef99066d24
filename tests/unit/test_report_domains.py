"""Domain rows in reports: the registrar records a client must set, and a CSV report that reads
back as the same job file (TXT values with ';' inside included)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from bulkops.jobfile import load_job
from bulkops.model import Action, OpRecord, OpSpec, OpState
from bulkops.report import record_json, write_csv

SITE = "0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f"
SETUP = {
    "setup": "POINTING",
    "registrar": "GoDaddy",
    "registrar_records": [
        {"type": "A", "host": "client.com", "values": ["185.230.63.107", "185.230.63.171"],
         "ttl": 3600},
        {"type": "CNAME", "host": "www.client.com", "values": ["pointing.wixdns.net"],
         "ttl": 3600},
    ],
}


def connected(details: dict[str, object] | None = SETUP) -> OpRecord:
    spec = OpSpec(line=2, key="conn", action=Action.CONNECT_DOMAIN, site=SITE,
                  domain="client.com", connection="nameservers", assignment="primary", notify=True)
    return OpRecord(op_id=1, job_id="j", seq=0, spec=spec, state=OpState.SUCCEEDED, attempts=1,
                    site_id=SITE, details=details)


def dns(line: int, kind: str, host: str, *values: str, ttl: int | None = None) -> OpRecord:
    spec = OpSpec(line=line, key=f"r{line}", action=Action.SET_DNS_RECORD, domain="client.com",
                  record_type=kind, host=host, values=values, ttl=ttl)
    return OpRecord(op_id=line, job_id="j", seq=line, spec=spec, state=OpState.FAILED,
                    attempts=1)


async def _each(ops: Iterable[OpRecord]) -> AsyncIterator[OpRecord]:
    for op in ops:
        yield op


async def csv_report(ops: list[OpRecord]) -> str:
    out = io.StringIO()
    await write_csv(_each(ops), {}, out)
    return out.getvalue()


def test_the_json_report_gives_each_connected_domain_its_registrar_records() -> None:
    result = record_json(connected())["result"]
    assert result["registrar_records"] == SETUP["registrar_records"]
    assert result["registrar"] == "GoDaddy" and result["site_id"] == SITE
    assert "registrar_records" not in (record_json(connected(None))["result"] or {})


async def test_the_csv_report_writes_the_records_in_one_readable_cell() -> None:
    (row,) = csv.DictReader(io.StringIO(await csv_report([connected()])))
    assert row["registrar_records"] == ("A client.com 185.230.63.107, 185.230.63.171 (TTL 3600); "
                                        "CNAME www.client.com pointing.wixdns.net (TTL 3600)")


@pytest.mark.parametrize("values", [
    ("v=DMARC1; p=none; rua=mailto:dmarc@client.com",),
    ("v=spf1 include:_spf.mail.net ~all", "google-site-verification=ab;cd"),
    ('"quoted" text',),
    ("ends in a backslash \\", 'and "one" more'),
])
async def test_a_csv_report_reads_back_as_the_same_rows(tmp_path: Path,
                                                       values: tuple[str, ...]) -> None:
    """Fix-and-resubmit: the report of domain rows is a job file with the same content."""
    ops = [connected(), dns(3, "TXT", "_dmarc.client.com", *values),
           dns(4, "MX", "client.com", "10 mx1.mail.net", "20 mx2.mail.net", ttl=600)]
    path = tmp_path / "report.csv"
    path.write_text(await csv_report(ops), encoding="utf-8")
    _, specs = load_job(path)
    read = list(specs())
    assert [(s.key, s.action) for s in read] == [(op.spec.key, op.spec.action) for op in ops]
    for back, op in zip(read, ops, strict=True):
        again = back.to_json()
        # Read back, the DNS rows wait for the row connecting their domain, as in any file.
        assert again.pop("implied_depends_on", None) == (
            ["conn"] if back.action is Action.SET_DNS_RECORD else None)
        assert json.dumps(again) == json.dumps(op.spec.to_json())

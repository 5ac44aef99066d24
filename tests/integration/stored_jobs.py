"""Jobs stored straight through the store, as a CSV of these rows would be (header on line 1),
for the report tests."""

from __future__ import annotations

import dataclasses

from bulkops.model import JobSource, OpSpec
from bulkops.store.base import Store

ACCOUNT = "11111111-1111-4111-8111-111111111111"
BASE_URL = "http://127.0.0.1:8089"


def numbered(specs: list[OpSpec]) -> list[OpSpec]:
    """The specs with line numbers as a CSV would give them."""
    return [dataclasses.replace(spec, line=i + 2) for i, spec in enumerate(specs)]


async def add_job(store: Store, job_id: str, specs: list[OpSpec]) -> None:
    """Store `specs` as job `job_id` of ACCOUNT at BASE_URL."""
    source = JobSource(job_id=job_id, path=f"/jobs/{job_id}.csv", format="csv",
                       total=len(specs), account_id=ACCOUNT, base_url=BASE_URL)
    await store.add_job(source, iter(numbered(specs)))

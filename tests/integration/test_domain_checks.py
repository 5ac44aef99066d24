"""The domain reads before the first write, against the sandbox over HTTP: which zones are read.

A DNS row whose domain the file connects with nameservers waits for that row, so its zone is
not looked for before the run, even when the connecting row is not among the rows checked (its
operation is another job's: the same file, grown, run again after a crash).
"""

from __future__ import annotations

from collections import Counter

from test_engine import ACCOUNT, sandbox_state

from bulkops.domaincheck import DomainNeeds, DomainReads
from bulkops.model import Action, OpSpec
from bulkops.ratelimit import AdaptiveBudget
from bulkops.retry import ReadRetry
from bulkops.sandbox import Endpoint, SandboxConfig, running_sandbox
from bulkops.settings import parse_rate
from bulkops.wix import WixClient


def record(domain: str, *, waits_for: str | None) -> OpSpec:
    return OpSpec(line=3, key=f"mx-{domain}", action=Action.SET_DNS_RECORD, domain=domain,
                  record_type="MX", host=domain, values=("10 mx.mail.net",),
                  implied_depends_on=(waits_for,) if waits_for else ())


async def test_a_zone_that_comes_with_a_connection_of_the_file_is_not_looked_for() -> None:
    needs = DomainNeeds()
    needs.take(record("waiting.com", waits_for="connect-waiting"))  # its connect row: elsewhere
    needs.take(record("alone.com", waits_for=None))
    async with running_sandbox(SandboxConfig(), port=0) as fake:
        budget = AdaptiveBudget(parse_rate("500/s"))
        async with WixClient(base_url=fake.base_url, api_key="sandbox-key", account_id=ACCOUNT,
                             budget=budget, timeout=5.0) as client:
            reads = DomainReads(client, needs, planning=False,
                                retry=ReadRetry(attempts=2, base=0.01))
            await reads.read_all(lambda: budget.snapshot().requests)
        state = await sandbox_state(fake.base_url)
    assert Counter(state["requests"]["by_endpoint"])[Endpoint.GET_DNS_ZONE.value] == 1
    assert set(reads.zones) == {"alone.com"}  # and that one is a problem: Wix hosts no zone
    assert isinstance(reads.zones["alone.com"], str)

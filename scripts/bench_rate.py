"""How well the request budget fills a server's rate limit without going over it.

    python scripts/bench_rate.py            # quick: 20 requests / 6 s windows, ~2 minutes
    python scripts/bench_rate.py --full     # real scale: 200 requests / 60 s, >= 3 min each

Each scenario runs the real engine in this process — a SQLite checkpoint file in a temporary
directory, the Wix client over real HTTP to a sandbox on 127.0.0.1 that enforces a sliding-window
limit of N requests per W seconds — on a generated onboarding job (create a site, invite its
owner, move it to a sub-account). The budget is configured at a multiple of that limit.

The quick mode keeps the rate of 200/min but shrinks the window tenfold (20 per 6 s): the
budget's adaptation runs in windows, so ten windows take one minute instead of ten. The budget
is not told the server's window: it infers what it needs from the answers.
The quick mode is the harsher judge of the 429 share: each adaptation episode costs a handful
of refused requests whatever N is, and with 20 a window each weighs ten times what it does at
200. Network jitter (`--latency`) weighs ten times as much against a 6 s window, too.

Figures come from the sandbox's own request log (GET /_sandbox/state):
- rate: every request that reached the server, per minute, first to last arrival;
- ok: requests the server admitted (not 429) over the same span;
- util: ok against the server's limit — the useful share of what the server allows;
- 429: refused requests and their share of all requests;
- peak: the most requests that arrived inside any one server window, refused ones included;
  at most the limit means the budget never asked for more than the server allows;
- counted: the budget counted exactly as many requests as the server saw.

A sliding window admits up to N requests in every window, so a run only a few windows long that
starts and ends with a burst can show a first-to-last rate above N / W without breaking the
limit once; `peak` shows whether that happened.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from bulkops.engine import Engine, EngineConfig, RunOutcome
from bulkops.model import Action, JobSource, OpSpec, OpState
from bulkops.ratelimit import AdaptiveBudget
from bulkops.sandbox import SandboxConfig, running_sandbox
from bulkops.settings import Rate
from bulkops.store import open_store
from bulkops.wix import WixClient

TEMPLATE = "3f0c9a2e-1d2b-4c5d-8e9f-0a1b2c3d4e5f"
SUB_ACCOUNTS = SandboxConfig().sub_accounts
ACCOUNT = SandboxConfig().account_id
# Requests outside the job's rows: the pre-flight read and the roles list.
FIXED_REQUESTS = 2
ROWS_PER_CLIENT = 3


@dataclass(frozen=True)
class Scenario:
    name: str
    overshoot: float  # the configured --rate as a multiple of the server's limit
    retry_after: bool  # whether the server's 429s carry Retry-After
    min_utilisation: float  # target: admitted requests per second / the server's limit
    max_throttled_share: float  # target: 429s / all requests, strictly below


SCENARIOS = (
    Scenario("at-limit", 1.0, False, 0.90, 0.01),
    Scenario("above-limit-2x", 2.0, False, 0.70, 0.15),
    Scenario("above-limit-2x-retry-after", 2.0, True, 0.70, 0.15),
    Scenario("above-limit-5x", 5.0, False, 0.70, 0.15),
)


@dataclass(frozen=True)
class BenchConfig:
    limit: int  # the server admits this many requests ...
    window: float  # ... in any window of this many seconds
    seconds: float  # each job is sized to take this long at the server's limit
    latency: float  # sandbox answer delay, plus uniform jitter of the same size
    concurrency: int

    @property
    def per_second(self) -> float:
        return self.limit / self.window


@dataclass(frozen=True)
class Measured:
    scenario: Scenario
    config: BenchConfig
    outcome: RunOutcome
    duration: float  # wall time of the engine's run
    requests: int  # as the sandbox counted them
    throttled: int
    span: float  # seconds from the first to the last request the sandbox saw
    budget_requests: int
    peak: int  # the most arrivals inside one server window

    @property
    def admitted(self) -> int:
        return self.requests - self.throttled

    @property
    def rate(self) -> float:
        # n arrivals span n - 1 intervals.
        return (self.requests - 1) / self.span if self.span > 0 else 0.0

    @property
    def admitted_rate(self) -> float:
        return (self.admitted - 1) / self.span if self.span > 0 else 0.0

    @property
    def utilisation(self) -> float:
        return self.admitted_rate / self.config.per_second

    @property
    def throttled_share(self) -> float:
        return self.throttled / self.requests if self.requests else 0.0

    @property
    def counted(self) -> bool:
        return self.budget_requests == self.requests

    @property
    def passed(self) -> bool:
        return (
            self.outcome is RunOutcome.FINISHED
            and self.counted
            and self.utilisation >= self.scenario.min_utilisation
            and self.throttled_share < self.scenario.max_throttled_share
        )


def peak_in_window(times: Sequence[float], window: float) -> int:
    """The most of `times` (sorted) inside any window (t - window, t], as the server counts."""
    peak, oldest = 0, 0
    for newest, now in enumerate(times):
        while times[oldest] <= now - window:
            oldest += 1
        peak = max(peak, newest - oldest + 1)
    return peak


def onboarding_specs(clients: int) -> Iterator[OpSpec]:
    """Per client: create a site, invite its owner to it, then move it to a sub-account."""
    for i in range(clients):
        key, line = f"c{i}", 2 + ROWS_PER_CLIENT * i
        yield OpSpec(line=line, key=key, action=Action.CREATE_SITE,
                     site_name=f"Client {i}", template_id=TEMPLATE)
        yield OpSpec(line=line + 1, key=f"{key}-invite", action=Action.SITE_INVITE,
                     site=f"@{key}", email=f"owner{i}@example.com", roles=("Website Manager",))
        yield OpSpec(line=line + 2, key=f"{key}-move", action=Action.TRANSFER_SITE,
                     site=f"@{key}", to_account=SUB_ACCOUNTS[i % len(SUB_ACCOUNTS)],
                     depends_on=(f"{key}-invite",))


def clients_for(config: BenchConfig) -> int:
    """Enough clients that the job takes `seconds` at the server's limit (one request a row)."""
    requests = config.per_second * config.seconds - FIXED_REQUESTS
    return max(1, round(requests / ROWS_PER_CLIENT))


async def sandbox_requests(base_url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/_sandbox/state") as resp:
        resp.raise_for_status()
        state: dict[str, Any] = await resp.json()
        requests: dict[str, Any] = state["requests"]
        return requests


async def run_scenario(scenario: Scenario, config: BenchConfig, workdir: Path) -> Measured:
    sandbox_config = SandboxConfig(
        rate_limit=(config.limit, config.window),
        retry_after=scenario.retry_after,
        latency=config.latency,
        latency_jitter=config.latency,
        seed=1,
    )
    specs = list(onboarding_specs(clients_for(config)))
    store = await open_store(str(workdir / f"{scenario.name}.db"))
    try:
        source = JobSource(job_id=scenario.name, path="bench.csv", format="csv", total=len(specs))
        await store.add_job(source, iter(specs))
        async with running_sandbox(sandbox_config, port=0) as fake:
            rate = Rate(config.limit * scenario.overshoot, config.window)
            budget = AdaptiveBudget(rate)
            async with WixClient(base_url=fake.base_url, api_key=sandbox_config.api_key,
                                 account_id=ACCOUNT, budget=budget, timeout=30.0) as client:
                engine = Engine(store=store, client=client, budget=budget,
                                config=EngineConfig(account_id=ACCOUNT,
                                                    concurrency=config.concurrency))
                started = time.monotonic()
                result = await engine.run(source.job_id, anyio.Event())
                duration = time.monotonic() - started
            seen = await sandbox_requests(fake.base_url)
    finally:
        await store.close()
    succeeded = result.counts.get(OpState.SUCCEEDED, 0)
    outcome = result.outcome if succeeded == len(specs) else RunOutcome.STOPPED
    first, last = seen["first_request_at"], seen["last_request_at"]
    return Measured(
        scenario=scenario,
        config=config,
        outcome=outcome,
        duration=duration,
        requests=int(seen["total"]),
        throttled=int(seen["by_status"].get("429", 0)),
        span=(last - first) if first is not None and last is not None else 0.0,
        budget_requests=budget.snapshot().requests,
        peak=peak_in_window(sorted(seen["request_times"]), config.window),
    )


HEADER = ("scenario", "rate", "limit", "time s", "req", "rate/min", "ok/min", "util",
          "429", "429 %", "peak", "counted", "result")


def _per_minute(count: float, window: float) -> str:
    return f"{count / window * 60:.0f}/min"


def table_row(m: Measured) -> tuple[str, ...]:
    window = m.config.window
    return (
        m.scenario.name,
        _per_minute(m.config.limit * m.scenario.overshoot, window),
        f"{m.config.limit}/{window:g}s",
        f"{m.duration:.1f}",
        str(m.requests),
        f"{m.rate * 60:.1f}",
        f"{m.admitted_rate * 60:.1f}",
        f"{m.utilisation:.0%}",
        str(m.throttled),
        f"{m.throttled_share:.1%}",
        str(m.peak),
        "yes" if m.counted else f"no ({m.budget_requests})",
        ("PASS" if m.passed else "FAIL")
        + f" (>={m.scenario.min_utilisation:.0%}, <{m.scenario.max_throttled_share:.0%})",
    )


def format_table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def parse_args(argv: Sequence[str]) -> tuple[BenchConfig, list[Scenario]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--full", action="store_true",
                        help="the real limit, 200 requests per 60 s, for 180 s a scenario")
    parser.add_argument("--limit", type=int, help="server limit: requests per window")
    parser.add_argument("--window", type=float, help="server window in seconds")
    parser.add_argument("--seconds", type=float,
                        help="size each job to take this long at the server's limit")
    parser.add_argument("--latency", type=float, default=0.02,
                        help="sandbox answer delay in seconds (plus jitter of the same size)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--only", action="append", choices=[s.name for s in SCENARIOS],
                        help="run only this scenario (repeatable)")
    args = parser.parse_args(argv)
    limit, window, seconds = (200, 60.0, 180.0) if args.full else (20, 6.0, 25.0)
    config = BenchConfig(
        limit=args.limit or limit,
        window=args.window or window,
        seconds=args.seconds or seconds,
        latency=args.latency,
        concurrency=args.concurrency,
    )
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    return config, chosen


async def bench(config: BenchConfig, scenarios: Sequence[Scenario]) -> list[Measured]:
    results = []
    with tempfile.TemporaryDirectory(prefix="bulkops-bench-rate-") as tmp:
        for scenario in scenarios:
            print(f"running {scenario.name} ...", file=sys.stderr, flush=True)
            results.append(await run_scenario(scenario, config, Path(tmp)))
    return results


def main(argv: Sequence[str]) -> int:
    config, scenarios = parse_args(argv)
    print(f"server limit {config.limit} per {config.window:g} s "
          f"({config.per_second * 60:.0f}/min), jobs of ~{config.seconds:g} s at the limit, "
          f"latency {config.latency:g}+{config.latency:g} s, concurrency {config.concurrency}")
    results = asyncio.run(bench(config, scenarios))
    print(format_table([HEADER, *(table_row(m) for m in results)]))
    return 0 if all(m.passed for m in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

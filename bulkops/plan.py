"""`bulkops plan FILE`: what a run of the file would do, found with read calls only.

The file is validated, compared with the database (rows done in earlier runs, `@key`s of
earlier runs, done keys reused for other work) and checked against the live account as `run`
checks it before its first write (`precheck`). The plan then says what would be created,
transferred, invited and connected, the API calls that takes (the fewest the engine groups the
rows into, plus the run's reads: one roles call, the site listing pages and, with domain rows,
the domain probe, connected-domain pages and DNS zones) and the time those calls take under
the request budget (`--rate`).

With domain rows it reads more than a run's checks do (`precheck`, `planning`): whether each
domain to connect is still for sale (Check Domain Availability), the records its client will
have to set (Preview DNS Zone), and which DNS rows hold their values already. A key without the
Domains permission is one problem (exit 2).

Nothing is written: no job is stored, no state changes in the database (opening an older one
still upgrades its schema, as every command does), and `--sandbox` plans against a copy of the
in-process sandbox's saved world.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

from bulkops.actions import calls_needed
from bulkops.deadline import format_span
from bulkops.domaincheck import ClientRecords, Settled
from bulkops.errors import ConfigError, RowError
from bulkops.identity import outside_ref_errors, scope_of
from bulkops.jobfile import CheckedJob
from bulkops.jobviews import opened_store, outside_problems
from bulkops.locations import SANDBOX_TARGET, file_exists, sandbox_state_file
from bulkops.model import Action, OpSpec, OpState
from bulkops.precheck import Adoption, Candidate, check_rows, read_roles
from bulkops.ratelimit import AdaptiveBudget
from bulkops.settings import Settings
from bulkops.store.base import Store
from bulkops.wix import WixClient

PLAN_VERSION = 1  # of the JSON document: keys are only ever added
CHUNK = 1000  # rows looked up in the database at once
SHOWN_LINES = 20  # line numbers listed in the text output before "…"


@dataclass(frozen=True)
class DoneRow:
    """A row whose operation succeeded in an earlier run (of this file or another)."""

    line: int
    key: str
    action: str
    job_id: str


@dataclass(frozen=True)
class Plan:
    """What a run of the file would do. `checked`: False when the file's own problems stopped
    the plan before any read (only `problems` is filled then). Counts are rows; `calls` and
    `reads` are HTTP requests."""

    path: str
    total: int
    account_id: str
    base_url: str
    settings: Settings = field(repr=False)
    problems: list[RowError] = field(default_factory=list)
    checked: bool = False
    done_before: list[DoneRow] = field(default_factory=list)
    to_do: Counter[Action] = field(default_factory=Counter)
    adopted: list[Adoption] = field(default_factory=list)
    settled: list[Settled] = field(default_factory=list)  # domains connected as asked already
    as_asked: list[Candidate] = field(default_factory=list)  # DNS rows holding their values
    client_records: list[ClientRecords] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # plan reads Wix refused (not problems)
    wix_refuses: list[RowError] = field(default_factory=list)  # problems a run does not check
    calls: Counter[Action] = field(default_factory=Counter)  # sends, by action
    reads: dict[str, int] = field(default_factory=dict)  # the run's reads, by kind

    @property
    def clean(self) -> bool:
        return not self.problems

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values()) + sum(self.reads.values())

    @property
    def seconds(self) -> float:
        """The calls' time under the budget (the engine spaces requests evenly at --rate)."""
        return self.total_calls / self.settings.rate.per_second


async def make_plan(checked: CheckedJob, settings: Settings, db_url: str | None) -> Plan:
    """The plan of `checked` against `settings`' account and API (`SANDBOX_TARGET`: the
    in-process sandbox), judged against the database at `db_url` (None: there is none).

    Raises ConfigError when Wix refuses the key (a key without the Domains permission is a
    problem of the plan instead), a WixError when Wix did not answer a read.
    """
    source = checked.source
    scope = scope_of(settings.account_id, settings.base_url)
    plan = Plan(source.path, source.total, settings.account_id, settings.base_url, settings)
    if db_url is None:
        return await _plan(plan, checked, None, scope)
    async with opened_store(db_url) as store:
        return await _plan(plan, checked, store, scope)


async def _plan(plan: Plan, checked: CheckedJob, store: Store | None, scope: str) -> Plan:
    problems = list(checked.errors)
    if store is None:
        problems += outside_ref_errors(checked.outside, {}, database=False)
    else:
        problems += await outside_problems(store, checked, scope)
    if checked.errors:  # rows without a spec: nothing more can be said of them
        return _with(plan, problems=_in_order(problems))
    if store is not None:
        problems += await store.conflicts_of(scope, checked.specs())
    rows = _FileRows(checked, store, scope)
    settings = plan.settings
    budget = AdaptiveBudget(settings.rate, pacer=settings.pacer)
    async with _endpoint(settings) as base_url, WixClient(
        base_url=base_url, api_key=settings.api_key, account_id=settings.account_id,
        budget=budget, timeout=settings.timeout,
    ) as client:
        roles = await read_roles(client, retry=settings.reads)

        async def produced(site_ids: Collection[str]) -> set[str]:
            return await store.produced_sites(scope, site_ids) if store else set()

        findings = await check_rows(rows, client, roles, account_id=settings.account_id,
                                    if_exists=settings.if_exists, produced=produced,
                                    retry=settings.reads, planning=True,
                                    requests=lambda: budget.snapshot().requests)
    problems = _in_order(problems + findings.problems)
    # The calls of the rows that would be sent: not done, not refused, not settled by the
    # checks (adopted, connected already, holding their values already).
    refused = {error.line for error in problems}
    skipped = (refused
               | {a.row.spec.line for a in findings.adoptions}
               | {s.row.spec.line for s in findings.settled}
               | {row.spec.line for row in findings.as_asked})
    done = {row.key for row in rows.done}
    to_send = (spec for spec in checked.specs() if spec.key not in done
               and spec.line not in skipped)
    calls = calls_needed(to_send, roles)
    # The run's own reads, when it has anything to do: the checks' (roles, listings, domain
    # reads; not the plan's own availability and preview reads). Having heard Wix answer
    # them, the engine makes no first read of its own.
    reads = {"roles": 1, **findings.reads}
    if findings.settled:  # their registrar records, for the report (`prerun`)
        reads["setup_info"] = len(findings.settled)
    return _with(plan, problems=problems, checked=True, done_before=rows.done,
                 to_do=rows.to_do, adopted=findings.adoptions, settled=findings.settled,
                 as_asked=findings.as_asked,
                 client_records=[found for found in findings.client_records
                                 if found.line not in refused],
                 notes=findings.notes, calls=calls, reads=reads if rows.to_do else {},
                 wix_refuses=findings.wix_refuses)


def _with(plan: Plan, **changes: Any) -> Plan:
    return replace(plan, **changes)


def _in_order(problems: list[RowError]) -> list[RowError]:
    return sorted(problems, key=lambda error: error.line)


class _FileRows:
    """The file's rows still to do, as `precheck` reads them (once per pass), each with the
    operation the database already holds for it. The first pass also counts the rows done
    before and the rows to do."""

    def __init__(self, checked: CheckedJob, store: Store | None, scope: str) -> None:
        self._checked = checked
        self._store = store
        self._scope = scope
        self._passes = 0
        self.done: list[DoneRow] = []
        self.to_do: Counter[Action] = Counter()

    async def __call__(self) -> AsyncIterator[Candidate]:
        first = self._passes == 0
        self._passes += 1
        for chunk in _chunks(self._checked.specs()):
            prior = await self._store.prior_ops(self._scope, chunk) if self._store else {}
            for spec in chunk:
                op = prior.get(spec.key)
                if op is not None and op.state is OpState.SUCCEEDED:
                    if first:
                        self.done.append(DoneRow(spec.line, spec.key, spec.action.value,
                                                 op.job_id))
                    continue
                if first:
                    self.to_do[spec.action] += 1
                yield Candidate(spec, op)


def _chunks(specs: Iterator[OpSpec]) -> Iterator[list[OpSpec]]:
    while chunk := list(islice(specs, CHUNK)):
        yield chunk


@asynccontextmanager
async def _endpoint(settings: Settings) -> AsyncIterator[str]:
    """The base URL to read from: the account's API, or an in-process sandbox started on a
    copy of the world `run --sandbox` saved beside the database (a plan must not rewrite it
    under a run that is using it)."""
    if settings.base_url != SANDBOX_TARGET:
        yield settings.base_url
        return
    from bulkops.sandbox import SandboxConfig, running_sandbox
    from bulkops.sandbox.statefile import copy_saved_world

    saved = sandbox_state_file(settings.db_url)
    with tempfile.TemporaryDirectory(prefix="bulkops-plan-") as folder:
        copy = None
        if file_exists(saved, "the sandbox's saved world") and saved.is_file():
            copy = Path(folder) / saved.name
            try:
                copy_saved_world(saved, copy)
            except OSError as exc:  # a journal that is a folder, a file not to be read
                raise ConfigError(f"cannot read the sandbox's saved world {saved}: "
                                  f"{exc.strerror}") from None
        try:
            async with running_sandbox(SandboxConfig(state_file=copy, demo_sites=True),
                                       port=0) as fake:
                yield fake.base_url
        except ConfigError as exc:
            if folder not in str(exc):
                raise
            # A damaged saved world: named where the user can find it, not in the copy.
            raise ConfigError(str(exc).replace(folder, str(saved.parent))) from None


# -- output -----------------------------------------------------------------------------------


def plan_json(plan: Plan) -> str:
    """The plan as one JSON object (keys are only ever added)."""
    document = {
        "version": PLAN_VERSION,
        "file": plan.path,
        "account_id": plan.account_id,
        "base_url": plan.base_url,
        "total": plan.total,
        "clean": plan.clean,
        "checked_at_wix": plan.checked,
        "done_before": {"rows": len(plan.done_before),
                        "lines": [row.line for row in plan.done_before]},
        "to_do": {"rows": sum(plan.to_do.values()),
                  "by_action": {action.value: plan.to_do[action] for action in Action}},
        "adopt": [{"line": a.row.spec.line, "key": a.row.spec.key,
                   "site_name": a.row.spec.site_name, "site_id": a.site.id}
                  for a in plan.adopted],
        "already_connected": [{"line": s.row.spec.line, "key": s.row.spec.key,
                               "domain": s.domain, "site_id": s.site_id}
                              for s in plan.settled],
        "already_as_asked": {"rows": len(plan.as_asked),
                             "lines": [row.spec.line for row in plan.as_asked]},
        "client_records": [_records_json(found) for found in plan.client_records],
        "calls": {"total": plan.total_calls,
                  "by_action": {action.value: plan.calls[action] for action in Action},
                  "reads": plan.reads},
        "rate": str(plan.settings.rate),
        "budget_per_minute": round(plan.settings.rate.per_second * 60, 3),
        "seconds": round(plan.seconds, 1),
        "problems": [{"line": e.line, "column": e.column, "reason": e.reason}
                     for e in plan.problems],
        "notes": plan.notes,
    }
    return json.dumps(document, indent=1, ensure_ascii=False)


def _records_json(found: ClientRecords) -> dict[str, Any]:
    return {"line": found.line, "key": found.key, "domain": found.domain,
            "connection": found.connection,
            "records": [{"type": r.type, "host": r.host_name, "values": list(r.values),
                         "ttl": r.ttl} for r in found.records]}


def plan_text(plan: Plan) -> list[str]:
    """The plan for people, line by line."""
    where = "the in-process sandbox" if plan.base_url == SANDBOX_TARGET else plan.base_url
    lines = [f"plan for {plan.path}: {plan.total} row(s), account {plan.account_id} at {where}"]
    if plan.checked:
        lines += _what_would_happen(plan)
        lines += _records_text(plan.client_records)
    lines += [f"note: {note}" for note in plan.notes]
    if plan.clean:
        lines.append("problems: none; the plan is clean")
        return lines
    what = ("the run would refuse the file and send nothing" if plan.checked
            else "the file is invalid; nothing was read from Wix")
    if plan.checked and all(problem in plan.wix_refuses for problem in plan.problems):
        what = "a run would send these rows, and Wix would refuse them"
    lines.append(f"problems: {len(plan.problems)} ({what}):")
    lines += [f"  {plan.path}: {error}" for error in plan.problems]
    return lines


def _what_would_happen(plan: Plan) -> list[str]:
    lines = []
    if plan.done_before:
        lines.append(f"done in earlier runs: {len(plan.done_before)} row(s), not sent again "
                     f"(lines {_lines(row.line for row in plan.done_before)})")
    to_do = sum(plan.to_do.values())
    per_action = ", ".join(f"{action.value} {plan.to_do[action]}" for action in Action
                           if plan.to_do[action])
    lines.append(f"to do: {to_do} row(s)" + (f": {per_action}" if per_action else ""))
    if plan.adopted:
        lines.append(f"  {len(plan.adopted)} create_site row(s) take a site that exists "
                     f"already (--if-exists adopt): lines "
                     f"{_lines(a.row.spec.line for a in plan.adopted)}")
    if plan.settled:
        lines.append(f"  {len(plan.settled)} connect_domain row(s) find their domain connected "
                     "as asked already: nothing to send; lines "
                     f"{_lines(s.row.spec.line for s in plan.settled)}")
    if plan.as_asked:
        lines.append(f"  {len(plan.as_asked)} set_dns_record row(s) find their record holding "
                     "the values asked already: nothing to send; lines "
                     f"{_lines(row.spec.line for row in plan.as_asked)}")
    sends = ", ".join(f"{action.value} {plan.calls[action]}" for action in Action
                      if plan.calls[action])
    reads = ", ".join(f"{kind.replace('_', ' ')} {n}" for kind, n in plan.reads.items() if n)
    parts = [f"{sum(plan.calls.values())} to send" + (f" ({sends})" if sends else "")]
    if reads:
        parts.append(f"{sum(plan.reads.values())} to read ({reads})")
    lines.append(f"API calls: {plan.total_calls} = " + " + ".join(parts))
    lines.append(f"time: about {format_span(plan.seconds)} at {plan.settings.rate} "
                 "(--rate)")
    return lines


def _records_text(found: list[ClientRecords]) -> list[str]:
    """The records each domain's client will set at their registrar, domain by domain."""
    if not found:
        return []
    lines = ["records the client will have to set at their registrar (Wix's DNS zone "
             "preview):"]
    for domain in found:
        how = domain.connection or "subdomain"
        lines.append(f"  {domain.domain} ({how}, line {domain.line}):")
        lines += [f"    {r.type} {r.host_name} {', '.join(r.values)}"
                  + (f" (ttl {r.ttl})" if r.ttl is not None else "") for r in domain.records]
        if not domain.records:
            lines.append("    (the preview names none)")
    return lines


def _lines(numbers: Iterable[int]) -> str:
    """`2-5, 9, 12` for line numbers in order, at most SHOWN_LINES ranges."""
    ranges: list[list[int]] = []
    for number in numbers:
        if ranges and number == ranges[-1][1] + 1:
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    shown = [f"{a}-{b}" if b > a else str(a) for a, b in ranges[:SHOWN_LINES]]
    return ", ".join(shown) + (", …" if len(ranges) > SHOWN_LINES else "")

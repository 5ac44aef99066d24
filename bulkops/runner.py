"""Wires one command's run together: store, Wix client, budget, engine and progress display."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import TextIO

import anyio

from bulkops.breaker import BreakerSettings, FailureBreaker
from bulkops.engine import Engine, EngineConfig, RunResult
from bulkops.errors import ConfigError
from bulkops.model import JobInfo, JobSource, OpSpec, OpState
from bulkops.progress import show_progress
from bulkops.ratelimit import AdaptiveBudget
from bulkops.report import write_csv, write_json
from bulkops.settings import Settings
from bulkops.store import open_store
from bulkops.store.base import Store
from bulkops.store.urls import normalise_url, sqlite_path
from bulkops.wix import WixClient


@dataclass(frozen=True)
class RunSummary:
    job: JobInfo
    counts: Mapping[OpState, int]
    outcome: str  # RunOutcome value
    reason: str | None


@asynccontextmanager
async def opened_store(db_url: str) -> AsyncIterator[Store]:
    store = await open_store(db_url)
    try:
        yield store
    finally:
        # Shielded: a run aborted by a second signal still closes its database cleanly,
        # instead of the pool logging the cancelled close as an error.
        with anyio.CancelScope(shield=True):
            await store.close()


async def run_job(
    *,
    stop: anyio.Event,
    source: JobSource | None,
    specs: Callable[[], Iterator[OpSpec]] | None,
    settings: Settings,
    sandbox: bool,
    progress: tuple[TextIO, float, bool],
    resume_job: str = "",
) -> RunSummary:
    """`run` (source and specs given) or `resume` (resume_job, "" = latest unfinished)."""
    if sandbox:
        from bulkops.sandbox import SandboxConfig, running_sandbox

        async with running_sandbox(SandboxConfig(), port=0) as fake:
            settings = replace(
                settings,
                base_url=fake.base_url,
                api_key=fake.sandbox.config.api_key,
                account_id=fake.sandbox.config.account_id,
            )
            return await run_job(
                stop=stop, source=source, specs=specs, settings=settings,
                sandbox=False, progress=progress, resume_job=resume_job,
            )
    async with opened_store(settings.db_url) as store:
        if source is not None and specs is not None:
            scoped = replace(
                source,
                job_id=scoped_job_id(source, settings),
                account_id=settings.account_id,
                base_url=settings.base_url,
            )
            job, _created = await store.add_job(scoped, specs())
        else:
            job = await _job_to_resume(store, resume_job)
            _check_same_target(job, settings)
        result = await _run_engine(store, job, settings, stop, progress)
        final = await store.get_job(job.job_id)
        assert final is not None
        return RunSummary(final, result.counts, result.outcome.value, result.reason)


async def _job_to_resume(store: Store, job_id: str) -> JobInfo:
    job = await store.get_job(job_id) if job_id else await store.latest_job(unfinished_only=True)
    if job is None:
        raise ConfigError(f"no job {job_id!r} in this database" if job_id
                          else "no unfinished job in this database")
    return job


def scoped_job_id(source: JobSource, settings: Settings) -> str:
    """A job is the file's content run against one account at one API: the same file sent to
    another account (or to a fresh sandbox) is another job, never a continuation."""
    scope = f"{source.job_id}|{settings.account_id}|{settings.base_url}"
    return hashlib.sha256(scope.encode()).hexdigest()[:16]


def _check_same_target(job: JobInfo, settings: Settings) -> None:
    """Refuse to resume a job against another account or API than the one it ran against."""
    for what, stored, given in (
        ("account", job.account_id, settings.account_id),
        ("base URL", job.base_url, settings.base_url),
    ):
        if stored and stored != given:
            raise ConfigError(
                f"job {job.job_id} ran against {what} {stored}, not {given}: "
                f"resume it with the same {what}"
            )


async def _run_engine(
    store: Store, job: JobInfo, settings: Settings, stop: anyio.Event,
    progress: tuple[TextIO, float, bool],
) -> RunResult:
    budget = AdaptiveBudget(settings.rate)
    async with WixClient(
        base_url=settings.base_url,
        api_key=settings.api_key,
        account_id=settings.account_id,
        budget=budget,
        timeout=settings.timeout,
    ) as client:
        engine = Engine(
            store=store,
            client=client,
            budget=budget,
            config=EngineConfig(
                account_id=settings.account_id,
                concurrency=settings.concurrency,
                max_attempts=settings.max_attempts,
                settle=settings.settle,
                backoff_base=settings.backoff_base,
            ),
            breaker=FailureBreaker(
                BreakerSettings(window=settings.breaker_window, ratio=settings.breaker_ratio)
            ),
        )
        stream, interval, live = progress

        async def display() -> None:
            await show_progress(engine.progress, stream, interval=interval, live=live)

        async with anyio.create_task_group() as tg:
            tg.start_soon(display)
            try:
                result = await engine.run(job.job_id, stop)
            finally:
                tg.cancel_scope.cancel()
        return result


async def _pick_job(store: Store, job_id: str | None) -> JobInfo:
    job = await store.get_job(job_id) if job_id else await store.latest_job()
    if job is None:
        raise ConfigError(f"no job {job_id!r} in this database" if job_id
                          else "no job in this database yet")
    return job


def _require_existing(db_url: str) -> None:
    """Reading commands never create a database: a mistyped --db should say so."""
    path = sqlite_path(normalise_url(db_url))
    if path is not None and not path.exists():
        raise ConfigError(f"no database at {path}: run a job first, or point --db at its database")


async def job_status(db_url: str, job_id: str | None) -> tuple[JobInfo, Mapping[OpState, int]]:
    _require_existing(db_url)
    async with opened_store(db_url) as store:
        job = await _pick_job(store, job_id)
        return job, await store.counts(job.job_id)


async def write_report(
    db_url: str, job_id: str | None, fmt: str, only: OpState | None, out: TextIO
) -> int:
    _require_existing(db_url)
    async with opened_store(db_url) as store:
        job = await _pick_job(store, job_id)
        if fmt == "json":
            return await write_json(store.iter_ops(job.job_id, only=only), out)
        produced = {
            op.spec.key: op.site_id or ""
            async for op in store.iter_ops(job.job_id, only=OpState.SUCCEEDED)
        }
        return await write_csv(store.iter_ops(job.job_id, only=only), produced, out)

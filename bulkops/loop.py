"""The event loop the long-running commands use: uvloop when it is installed, else asyncio's;
the garbage collector's pace while it runs; and no task left running when it ends.

uvloop (the `fast` extra: `pip install 'bulkops[fast]'`) runs the same code with about a sixth
less CPU per request on the client side, and more on the sandbox's. Nothing depends on it:
`BULKOPS_EVENT_LOOP=asyncio` turns it off, for comparisons and for bug reports.

The cyclic garbage collector, at CPython's default pace (a young collection every 700 new
container objects, an older one every 10 of those), ran about every request of a busy run and
took a tenth of its CPU: every request allocates dozens of containers (aiohttp's request and
response, the op's records), almost all freed by reference counting, so those collections
found next to nothing. While `run` runs, young collections come every `gcpace.GEN0_THRESHOLD`
allocations instead, and `freeze_heap` (called once a job is loaded) moves what is alive then
(modules, the job's rows) out of the collector's sight for good: they are never garbage, and
an old collection no longer walks them.

A run aborted by a second Ctrl-C while it was storing its job leaves a task behind that
SQLAlchemy started to close the aborted connection: aiosqlite's `close` awaits its stopped
thread again in a `finally`, so the one cancellation asyncio gives each task left at the end
was caught there, and the process waited for ever. Tasks left when the command's coroutine
returns are cancelled until they end (`_end_leftovers`).
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar, TypeVarTuple

import anyio

from bulkops.gcpace import paced_collections

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

LOOP_ENV = "BULKOPS_EVENT_LOOP"
LEFTOVER_SECONDS = 2.0  # how long tasks left at the end are cancelled again and waited for
_paced = False  # inside `run`


def uvloop_wanted() -> bool:
    """Whether `run` uses uvloop: installed, and not turned off with BULKOPS_EVENT_LOOP."""
    if os.environ.get(LOOP_ENV, "").strip().lower() == "asyncio":
        return False
    return importlib.util.find_spec("uvloop") is not None


def loop_name() -> str:
    """"uvloop" or "asyncio": the loop `run` gives (for logs and benchmarks)."""
    return "uvloop" if uvloop_wanted() else "asyncio"


def run(fn: Callable[[*Ts], Awaitable[T]], *args: *Ts) -> T:
    """`anyio.run(fn, *args)` on the asyncio backend, with uvloop when `uvloop_wanted`, the
    garbage collector paced (`gcpace`) meanwhile (restored after), and SIGTERM's handler as
    it found it when it returns: asyncio sets SIG_DFL when it stops watching a signal, not
    the handler it found (the console's, which makes SIGTERM an interrupt)."""
    global _paced
    sigterm = signal.getsignal(signal.SIGTERM)
    with paced_collections():
        _paced = True
        try:
            return anyio.run(_leaving_no_task, fn, *args, backend="asyncio",
                             backend_options={"use_uvloop": uvloop_wanted()})
        finally:
            _paced = False
            gc.unfreeze()
            if sigterm is not None and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, sigterm)


async def _leaving_no_task(fn: Callable[[*Ts], Awaitable[T]], *args: *Ts) -> T:
    try:
        return await fn(*args)
    finally:
        await _end_leftovers()


async def _end_leftovers() -> None:
    """Cancel the tasks still running besides this one, again each time one catches it, until
    all have ended or LEFTOVER_SECONDS have passed (then asyncio's own end takes over).
    Normally there are none: every task of the project runs in a task group."""
    this = asyncio.current_task()
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + LEFTOVER_SECONDS
    while left := [task for task in asyncio.all_tasks() if task is not this and not task.done()]:
        if loop.time() >= give_up_at:
            return
        for task in left:
            task.cancel()
        await asyncio.wait(left, timeout=0.05)


def freeze_heap() -> None:
    """Inside `run` only: collect, then keep every object alive now out of later collections
    (`gc.freeze`, undone when `run` returns), for a command whose lasting state is built (a
    run: the job loaded). Elsewhere (a test driving the engine on its own loop) it does
    nothing: objects frozen there would never be collected."""
    if _paced:
        gc.collect()
        gc.freeze()

"""The event loop the long-running commands use: uvloop when it is installed, else asyncio's.

uvloop (the `fast` extra: `pip install 'bulkops[fast]'`) runs the same code with about a sixth
less CPU per request on the client side, and more on the sandbox's. Nothing depends on it:
`BULKOPS_EVENT_LOOP=asyncio` turns it off, for comparisons and for bug reports.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar, TypeVarTuple

import anyio

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

LOOP_ENV = "BULKOPS_EVENT_LOOP"


def uvloop_wanted() -> bool:
    """Whether `run` uses uvloop: installed, and not turned off with BULKOPS_EVENT_LOOP."""
    if os.environ.get(LOOP_ENV, "").strip().lower() == "asyncio":
        return False
    return importlib.util.find_spec("uvloop") is not None


def loop_name() -> str:
    """"uvloop" or "asyncio": the loop `run` gives (for logs and benchmarks)."""
    return "uvloop" if uvloop_wanted() else "asyncio"


def run(fn: Callable[[*Ts], Awaitable[T]], *args: *Ts) -> T:
    """`anyio.run(fn, *args)` on the asyncio backend, with uvloop when `uvloop_wanted`."""
    return anyio.run(fn, *args, backend="asyncio",
                     backend_options={"use_uvloop": uvloop_wanted()})

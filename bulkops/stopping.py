"""Waiting on Wix without holding a stop back: a call cut short by a signal or a time limit."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

T = TypeVar("T")


class Cut:
    """What `bounded` returns when its call was cut short (stop set, or time up)."""


CUT = Cut()


async def bounded(
    fn: Callable[[], Awaitable[T]], stop: anyio.Event, seconds: float = math.inf
) -> T | Cut:
    """`fn()`'s result, or CUT when `stop` is set or `seconds` pass first (`fn` is then
    cancelled: a slow read must not hold a SIGTERM back). Errors `fn` raises are raised as they
    are, not as an ExceptionGroup."""
    result: list[T] = []
    failure: list[Exception] = []
    with anyio.move_on_after(max(seconds, 0.0)):
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                await stop.wait()
                group.cancel_scope.cancel()

            group.start_soon(watch)
            try:
                result.append(await fn())
            except Exception as exc:  # raised below, outside the group
                failure.append(exc)
            group.cancel_scope.cancel()
    if failure:
        raise failure[0]
    return result[0] if result else CUT

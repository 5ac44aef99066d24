"""How every Wix API request is served: key, rate limit, validation, fault, effect, and the
answer once the latency is over.

An endpoint is split in two. `prepare` reads and validates the request (raising the 4xx
that Wix would answer) and returns the `effect`: a synchronous function that changes the
world and returns the 200 body, or raises a state-dependent error (e.g. SITE_NOT_FOUND).
The fault drawn for the request decides whether the effect runs and whether its answer
reaches the client; only authenticated, well-formed requests get a fault.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from bulkops.sandbox.config import Endpoint
from bulkops.sandbox.core import Sandbox
from bulkops.sandbox.faults import Fault, retry_after_header
from bulkops.sandbox.inbound import authenticate
from bulkops.sandbox.wire import ApiError, JsonObject, application_error

Effect = Callable[[], JsonObject]
Prepare = Callable[[web.Request, Sandbox], Awaitable[Effect]]

_SERVER_ERROR_CODES = {500: "INTERNAL", 502: "BAD_GATEWAY", 503: "UNAVAILABLE",
                       504: "DEADLINE_EXCEEDED"}


@dataclass(frozen=True)
class Route:
    endpoint: Endpoint
    method: str
    path: str
    prepare: Prepare


class DroppedResponse(web.Response):
    """Stands for "no answer": its connection is already closed, so it is never written."""


def error_response(error: ApiError) -> web.Response:
    return web.json_response(error.body, status=error.status, headers=error.headers)


def drop_connection() -> DroppedResponse:
    """No answer: `serve` closes the connection (when the answer would have left); the client
    sees a disconnect.

    aiohttp then fails to write the returned response to the closed transport and treats it
    as a client that went away (a debug log line, no traceback).
    """
    return DroppedResponse(status=500)


def too_many_requests(wait: float | None, with_retry_after: bool) -> ApiError:
    """429 RESOURCE_EXHAUSTED; `Retry-After` only when the sandbox is set to send it."""
    error = application_error(429, "RESOURCE_EXHAUSTED", "too many requests, slow down")
    if with_retry_after and wait is not None:
        error.headers.update(retry_after_header(wait))
    return error


def _apply(effect: Effect, sandbox: Sandbox) -> web.Response:
    try:
        return web.json_response(effect())
    except ApiError as error:
        return error_response(error)
    finally:
        # Saved before the answer leaves (or the connection drops): whatever a client may
        # have seen happen survives a restart of the sandbox on the same state file.
        sandbox.persist()


async def _answer(fault: Fault | None, effect: Effect, request: web.Request,
                  sandbox: Sandbox) -> web.Response:
    if fault is Fault.SERVER_ERROR:
        status = sandbox.faults.server_error_status()
        raise application_error(status, _SERVER_ERROR_CODES[status], "temporary server error")
    if fault is Fault.THROTTLE:
        # No real window to measure: one second is the honest smallest Retry-After.
        raise too_many_requests(1.0, sandbox.config.retry_after)
    if fault is Fault.DROP_BEFORE:
        return drop_connection()
    response = _apply(effect, sandbox)
    if fault is Fault.DROP_AFTER:
        return drop_connection()
    if fault is Fault.SLOW:
        await sandbox.sleep(sandbox.config.slow_delay)
    return response


async def serve(route: Route, sandbox: Sandbox, request: web.Request) -> web.Response:
    """Serve one Wix API request. ApiErrors raised here become Wix error bodies upstream.

    With latency, the answer (an error or a dropped connection too) leaves that long after
    the request came, its handling included, as a server that takes that long to answer. The
    request is handled first: a sandbox that waited first and handled after would handle a
    burst of requests one after the other once their waits ended together, each answer later
    than the one before by the handling of the others (a few milliseconds for 64 at once).
    """
    answer_at = sandbox.clock() + sandbox.faults.latency()
    try:
        response = await _handle(route, sandbox, request)
    except Exception:
        await _wait_until(sandbox, answer_at)
        raise
    await _wait_until(sandbox, answer_at)
    if isinstance(response, DroppedResponse) and request.transport is not None:
        request.transport.close()
    return response


async def _wait_until(sandbox: Sandbox, at: float) -> None:
    """Until `at` on the sandbox's clock (at once when it has passed)."""
    left = at - sandbox.clock()
    if left > 0:
        await sandbox.sleep(left)


async def _handle(route: Route, sandbox: Sandbox, request: web.Request) -> web.Response:
    authenticate(request.headers, sandbox.config)
    wait = sandbox.faults.over_limit(sandbox.clock())
    if wait is not None:
        raise too_many_requests(wait, sandbox.config.retry_after)
    effect = await route.prepare(request, sandbox)
    return await _answer(sandbox.faults.draw(route.endpoint), effect, request, sandbox)

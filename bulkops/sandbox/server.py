"""Serving a sandbox on the loopback interface: in-process for tests, forever for the CLI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from bulkops.errors import ConfigError
from bulkops.sandbox.app import build_app
from bulkops.sandbox.config import SandboxConfig
from bulkops.sandbox.core import Sandbox

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Slow answers may still be sleeping when the server stops; a fake need not wait long for them.
SHUTDOWN_TIMEOUT = 1.0


@dataclass(frozen=True)
class RunningSandbox:
    """A sandbox being served: where it listens and its state."""

    sandbox: Sandbox
    port: int
    host: str = "127.0.0.1"

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def _check_loopback(host: str) -> None:
    if host not in LOOPBACK_HOSTS:
        raise ConfigError(f"the sandbox serves loopback addresses only, not {host!r}")


@asynccontextmanager
async def serve_sandbox(
    sandbox: Sandbox, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSandbox]:
    """Serve an existing `sandbox` on host:port (0 = any free port) for the block's duration.

    On the way out the sandbox's world is written to its state file, if it has one.
    """
    _check_loopback(host)
    # A fresh application per serving: an aiohttp application is frozen once it has run.
    runner = web.AppRunner(build_app(sandbox), shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = port
        for address in runner.addresses:  # the port the OS picked when port == 0
            bound_port = int(address[1])
            break
        yield RunningSandbox(sandbox=sandbox, port=bound_port, host=host)
    finally:
        try:
            await runner.cleanup()
        finally:
            # Every change was saved when made; this write covers changes made directly in
            # Python (e.g. Sandbox.add_site) and leaves a file even for an untouched world.
            sandbox.persist(force=True)


@asynccontextmanager
async def running_sandbox(
    config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSandbox]:
    """A new sandbox with `config`, served on host:port (0 = any free port)."""
    async with serve_sandbox(Sandbox(config), host=host, port=port) as running:
        yield running


async def serve_forever(
    world: SandboxConfig | Sandbox, host: str, port: int, on_ready: Callable[[str], None]
) -> None:
    """Serve a sandbox (a new one with this config, or this one) until cancelled; `on_ready`
    gets the base URL once it listens."""
    sandbox = world if isinstance(world, Sandbox) else Sandbox(world)
    async with serve_sandbox(sandbox, host=host, port=port) as running:
        on_ready(running.base_url)
        await asyncio.Event().wait()  # never set: only cancellation ends the service

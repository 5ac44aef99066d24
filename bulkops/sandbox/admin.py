"""The /_sandbox/ endpoints: inspect, reconfigure, reset and seed the sandbox.

They are not part of the Wix API: no key, no faults, no request statistics. They answer only
clients on the loopback interface.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from bulkops.errors import ConfigError
from bulkops.sandbox.config import apply_changes, public_view
from bulkops.sandbox.core import Sandbox
from bulkops.sandbox.state import Site
from bulkops.sandbox.wire import JsonObject, is_guid, parse_instant

ADMIN_PREFIX = "/_sandbox/"
_LOOPBACK = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AdminError(Exception):
    """A bad /_sandbox/ request; answered 400 with its message."""


def _loopback_only(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        if request.remote not in _LOOPBACK:
            return web.json_response({"message": "loopback clients only"}, status=403)
        try:
            return await handler(request)
        except (AdminError, ConfigError) as exc:
            return web.json_response({"message": str(exc)}, status=400)

    return guarded


async def _body(request: web.Request) -> JsonObject:
    raw = await request.read()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdminError("body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise AdminError("body must be a JSON object")
    return body


def _typed(spec: JsonObject, key: str, kind: type, default: Any) -> Any:
    value = spec.get(key, default)
    if value is not default and not isinstance(value, kind):
        raise AdminError(f"sites[].{key} must be a {kind.__name__}")
    return value


def _seeder(sandbox: Sandbox, spec: Any) -> Callable[[], Site]:
    """Check one seeded site's spec; the returned function adds the site."""
    if not isinstance(spec, dict) or not isinstance(spec.get("displayName"), str):
        raise AdminError("each seeded site needs a displayName")
    owner = _typed(spec, "ownerAccountId", str, sandbox.config.account_id)
    template_id = _typed(spec, "templateId", str, None)
    if not is_guid(owner) or (template_id is not None and not is_guid(template_id)):
        raise AdminError("ownerAccountId and templateId must be GUIDs")
    created: datetime | None = None
    if "createdDate" in spec:
        try:
            created = parse_instant(str(spec["createdDate"]))
        except ValueError as exc:
            raise AdminError("createdDate must be an ISO-8601 instant") from exc
    return functools.partial(
        sandbox.add_site, spec["displayName"], owner, template_id=template_id,
        folder_id=_typed(spec, "folderId", str, None),
        premium=_typed(spec, "premium", bool, False),
        created_date=created,
        namespace=_typed(spec, "namespace", str, "WIX"),
        published=_typed(spec, "published", bool, False),
        seeded=True,
    )


def admin_routes(sandbox: Sandbox) -> list[web.RouteDef]:
    """The /_sandbox/ routes, bound to `sandbox`."""

    async def state(_: web.Request) -> web.StreamResponse:
        return web.json_response(sandbox.snapshot())

    async def stats(request: web.Request) -> web.StreamResponse:
        # The request counts alone (with ?times=1, the recent arrival times too): /_sandbox/state
        # of a world of 100,000 sites is megabytes.
        times = request.query.get("times") == "1"
        return web.json_response(sandbox.stats.snapshot(times=times))

    async def configure(request: web.Request) -> web.StreamResponse:
        sandbox.reconfigure(apply_changes(sandbox.config, await _body(request)))
        return web.json_response(public_view(sandbox.config))

    async def reset(_: web.Request) -> web.StreamResponse:
        sandbox.reset()
        sandbox.persist()
        return web.json_response({})

    async def seed(request: web.Request) -> web.StreamResponse:
        specs = (await _body(request)).get("sites")
        if not isinstance(specs, list):
            raise AdminError('body must be {"sites": [...]}')
        # Every spec is checked before any site is added: a bad body seeds nothing.
        seeders = [_seeder(sandbox, spec) for spec in specs]
        sites = [add() for add in seeders]
        sandbox.persist()
        return web.json_response({"sites": [site.to_state() for site in sites]})

    return [
        web.get(ADMIN_PREFIX + "state", _loopback_only(state)),
        web.get(ADMIN_PREFIX + "stats", _loopback_only(stats)),
        web.post(ADMIN_PREFIX + "config", _loopback_only(configure)),
        web.post(ADMIN_PREFIX + "reset", _loopback_only(reset)),
        web.post(ADMIN_PREFIX + "sites", _loopback_only(seed)),
    ]

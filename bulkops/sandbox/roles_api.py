"""The roles endpoint: GET /roles-management/roles?locale=..&filter.roleLevel=.. (wix-api.md)."""

from __future__ import annotations

from aiohttp import web

from bulkops.sandbox.core import Sandbox
from bulkops.sandbox.inbound import acting_account
from bulkops.sandbox.pipeline import Effect
from bulkops.sandbox.roles import RoleLevel, roles_body
from bulkops.sandbox.wire import JsonObject, validation_error

LEVEL_PARAM = "filter.roleLevel"


async def prepare_roles(request: web.Request, sandbox: Sandbox) -> Effect:
    """Predefined and custom roles, titled in `locale`, limited to those valid at the level."""
    acting_account(request.headers, sandbox.config)
    locale = request.query.get("locale")
    if not locale:
        raise validation_error("locale", "is required (e.g. locale=en)")
    try:
        level = RoleLevel(request.query.get(LEVEL_PARAM, RoleLevel.ALL.value))
    except ValueError as exc:
        levels = ", ".join(level.value for level in RoleLevel)
        raise validation_error(LEVEL_PARAM, f"one of {levels}") from exc

    def roles() -> JsonObject:
        return roles_body(locale, level)

    return roles

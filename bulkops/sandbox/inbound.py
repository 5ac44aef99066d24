"""Checks on an incoming Wix API request: the key, the account/site headers, the JSON body.

Each check raises the ApiError that Wix would answer (400, 401 or 403). Messages never
repeat the Authorization value.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from bulkops.sandbox.config import SandboxConfig
from bulkops.sandbox.wire import JsonObject, application_error, is_guid, validation_error

ACCOUNT_HEADER = "wix-account-id"
SITE_HEADER = "wix-site-id"

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


def authenticate(headers: Mapping[str, str], config: SandboxConfig) -> None:
    """401 unless `Authorization` is exactly the API key (raw: Wix takes no `Bearer`)."""
    given = headers.get("Authorization")
    if given is None:
        raise application_error(401, "UNAUTHENTICATED", "missing Authorization header")
    # Constant-time comparison, as for any secret.
    if not hmac.compare_digest(given.encode(), config.api_key.encode()):
        hint = " (send the raw key, without 'Bearer')" if given.startswith("Bearer ") else ""
        raise application_error(401, "UNAUTHENTICATED", f"invalid API key{hint}")


def account_header(headers: Mapping[str, str]) -> str:
    """The `wix-account-id` header, present and GUID-shaped, else 400."""
    return _guid_header(headers, ACCOUNT_HEADER, "account-level calls", "an account id")


def acting_account(headers: Mapping[str, str], config: SandboxConfig) -> str:
    """The account the call acts for: 400 if absent, 403 unless the key may act for it."""
    account = account_header(headers)
    if account not in config.actable_accounts():
        raise application_error(
            403, "PERMISSION_DENIED", "the API key may not act for this account",
            {"accountId": account},
        )
    return account


def site_header(headers: Mapping[str, str]) -> str:
    """The `wix-site-id` header of site-level calls, present and GUID-shaped, else 400."""
    return _guid_header(headers, SITE_HEADER, "site-level calls", "a site id")


def _guid_header(headers: Mapping[str, str], name: str, needed_by: str, noun: str) -> str:
    value = headers.get(name)
    if not value:
        raise validation_error(name, f"header is required for {needed_by}")
    if not is_guid(value):
        raise validation_error(name, f"must be {noun} (GUID)")
    return value


async def read_object(request: web.Request) -> JsonObject:
    """The JSON object body (an empty body counts as `{}`), else 400."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:  # not UTF-8, not JSON, or a number of over 4,300 digits
        raise validation_error("body", "not valid JSON") from exc
    except RecursionError as exc:  # deeper than the parser goes: a 400, not a 500
        raise validation_error("body", "nested too deeply") from exc
    if not isinstance(body, dict):
        raise validation_error("body", "must be a JSON object")
    return body


def string_list(value: Any, field: str, *, max_items: int | None = None) -> list[str]:
    """A non-empty list of strings (at most `max_items`), else 400."""
    if not isinstance(value, list) or not value:
        raise validation_error(field, "must be a non-empty list")
    if not all(isinstance(item, str) for item in value):
        raise validation_error(field, "must hold strings only")
    if max_items is not None and len(value) > max_items:
        raise validation_error(field, f"at most {max_items} items per call")
    return value


def optional_text(body: JsonObject, field: str) -> str | None:
    """An optional non-empty string field, else 400."""
    value = body.get(field)
    if value is not None and (not isinstance(value, str) or not value):
        raise validation_error(field, "must be a non-empty string")
    return value


def email_problem(email: str, reject_domains: tuple[str, ...]) -> str | None:
    """Why an invitation cannot go to `email` (a per-invitee failure), or None."""
    if not _EMAIL_RE.match(email):
        return "invalid email address"
    domain = email.rsplit("@", 1)[1].lower()
    if domain in {d.lower() for d in reject_domains}:
        return "this email address cannot receive invitations"
    return None

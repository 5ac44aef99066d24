"""Wix's wire conventions: error bodies, GUIDs and timestamps, as wix-api.md shows them."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

JsonObject = dict[str, Any]

_GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


class ApiError(Exception):
    """A non-200 answer: its status, JSON body and any extra headers (e.g. Retry-After)."""

    def __init__(
        self, status: int, body: JsonObject, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"HTTP {status}: {body.get('message', '')}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def application_error(
    status: int, code: str, message: str, data: JsonObject | None = None
) -> ApiError:
    """`{"message", "details": {"applicationError": {"code", "description", "data"}}}`."""
    details = {"applicationError": {"code": code, "description": message, "data": data or {}}}
    return ApiError(status, {"message": message, "details": details})


def validation_error(field: str, description: str) -> ApiError:
    """A 400 `{"message", "details": {"validationError": {"fieldViolations": [...]}}}`."""
    violation = {"field": field, "description": description}
    details = {"validationError": {"fieldViolations": [violation]}}
    return ApiError(400, {"message": f"{field}: {description}", "details": details})


def is_guid(value: object) -> bool:
    """GUID-shaped (8-4-4-4-12 hex), the form of every Wix site, account and template id."""
    return isinstance(value, str) and bool(_GUID_RE.match(value))


def new_guid() -> str:
    """A random (version 4, RFC 4122 variant) GUID, as `str(uuid.uuid4())` gives it, at a
    fifth of its cost: the sandbox makes two for every site it creates."""
    digits = os.urandom(16).hex()
    variant = "89ab"[int(digits[16], 16) & 3]  # the top two bits of byte 8 are 10
    return (f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-"
            f"{digits[20:]}")


def format_instant(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and `Z`, e.g. 2024-05-01T12:00:00.123Z.

    A fixed width, so that comparing two of these strings compares the instants.
    """
    # isoformat truncates to milliseconds as the format did, at half strftime's cost; the
    # UTC offset it ends with ("+00:00") becomes the Z.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_instant(text: str) -> datetime:
    """Read an ISO-8601 instant (`Z` or an offset; naive means UTC). ValueError if malformed."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

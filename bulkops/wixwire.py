"""The Wix wire format without the wire: request bodies, response parsing, error bodies.

Pure functions over JSON values (no I/O, no aiohttp), so every rule of the wire contract in
wix-api.md is unit-tested on its own. `bulkops.wix` sends what this module builds and hands back
what it parses.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from bulkops.errors import ConfigError, WixApiError
from bulkops.jsonvalues import items as _list
from bulkops.jsonvalues import mapping as _mapping
from bulkops.jsonvalues import text as _text

INVALID_RESPONSE = "INVALID_RESPONSE"
MAX_ACCOUNT_INVITEES = 50
MAX_PAGE_SIZE = 100
# Enough of an unexpected (HTML, proxy) body to recognise it in a report, not a whole page.
_SNIPPET_CHARS = 200
# A validation error can list many fields; the first few are what a user needs to fix the row.
_MAX_VIOLATIONS = 3


@dataclass(frozen=True)
class CreatedSite:
    site_id: str  # metaSiteId: the id every other call takes
    component_id: str | None  # the project's siteId: an internal id, never the site id


@dataclass(frozen=True)
class Site:
    id: str
    name: str
    display_name: str
    created_at: float  # unix seconds
    owner_account_id: str | None
    folder_id: str | None
    namespace: str | None
    premium: bool


@dataclass(frozen=True)
class AccountInvitee:
    email: str
    policy_ids: tuple[str, ...]
    site_ids: tuple[str, ...] = ()  # empty: the roles apply to the whole account


@dataclass(frozen=True)
class InviteResult:
    """One requested email's outcome. Both ids None: the 200 answer did not mention it."""

    email: str
    invite_id: str | None
    error: str | None
    request_id: str | None = None  # X-Wix-Request-Id of the call's answer


@dataclass(frozen=True)
class Role:
    id: str  # a long numeric string; never an int
    title: str
    restrict_from_level: str | None  # "Site" | "Account" | None


def invalid_response(reason: str) -> WixApiError:
    """A 200 whose body breaks the contract: the effect may have happened, its result is lost."""
    return WixApiError(200, reason, code=INVALID_RESPONSE)


# ---------------------------------------------------------------------------------------------
# Where requests go


def checked_base_url(url: str) -> str:
    """The base URL without its trailing slash, if it is safe to send the API key to.

    Plain http would put the key on the wire in clear, so it is allowed only to this machine
    (the sandbox, a local proxy): a loopback address or `localhost`.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        raise ConfigError(f"invalid base URL {url!r}") from None
    if not host or parts.scheme not in ("http", "https") or parts.query or parts.fragment:
        raise ConfigError(f"invalid base URL {url!r}: expected https://host[:port][/path]")
    if parts.scheme == "http" and not _is_loopback(host):
        raise ConfigError(
            f"refusing plain http to {host}: the API key would travel unencrypted; "
            "use https (http is allowed only for 127.0.0.1, ::1 or localhost)"
        )
    return url.strip().rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------
# Request bodies


def create_site_body(name: str, template_id: str | None, folder_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "WIX", "name": name}
    if template_id:
        body["templateId"] = template_id
    if folder_id:
        body["folderId"] = folder_id
    return body


def first_query_body(filter: Mapping[str, Any] | None, page_size: int) -> dict[str, Any]:
    """The first page carries the filter and sort; later pages only the cursor."""
    query: dict[str, Any] = {
        "sort": [{"fieldName": "createdDate", "order": "DESC"}],
        "cursorPaging": {"limit": _checked_page_size(page_size)},
    }
    if filter:
        query["filter"] = dict(filter)
    return {"query": query}


def next_query_body(cursor: str, page_size: int) -> dict[str, Any]:
    return {"query": {"cursorPaging": {"limit": _checked_page_size(page_size), "cursor": cursor}}}


def _checked_page_size(page_size: int) -> int:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, got {page_size}")
    return page_size


def account_invite_body(invitees: Sequence[AccountInvitee], language: str) -> dict[str, Any]:
    if len(invitees) > MAX_ACCOUNT_INVITEES:
        raise ValueError(f"at most {MAX_ACCOUNT_INVITEES} account invitees per call")
    return {
        "subjectsAssignments": [_subject_assignment(i) for i in invitees],
        "defaultEmailLanguage": language,
    }


def _subject_assignment(invitee: AccountInvitee) -> dict[str, Any]:
    # Wix spells it `metasiteId` here (lower-case s), unlike `metaSiteId` elsewhere.
    scopes = [{"fullNameResource": {"siteContext": {"metasiteId": s}}} for s in invitee.site_ids]
    return {
        "subjectEmail": invitee.email,
        "assignments": [{"policyId": p, "assignments": scopes} for p in invitee.policy_ids],
    }


def site_invite_body(
    policy_ids: Sequence[str], emails: Sequence[str], language: str
) -> dict[str, Any]:
    return {"policyIds": list(policy_ids), "emails": list(emails), "defaultEmailLanguage": language}


# ---------------------------------------------------------------------------------------------
# Success bodies


def decode_json_body(text: str) -> dict[str, Any]:
    """A 200 body as a JSON object. Empty counts as `{}`; anything else is INVALID_RESPONSE."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise invalid_response(f"response is not JSON: {_snippet(text)!r}") from None
    if not isinstance(value, dict):
        raise invalid_response(f"response is not a JSON object: {_snippet(text)!r}")
    return value


def parse_created_site(body: Mapping[str, Any]) -> CreatedSite:
    project = _mapping(body.get("project"))
    site_id = _text(project.get("metaSiteId"))
    if not site_id:
        raise invalid_response("create answered 200 without project.metaSiteId")
    return CreatedSite(site_id=site_id, component_id=_text(project.get("siteId")))


@dataclass(frozen=True)
class SitesPage:
    sites: list[Site]
    next_cursor: str | None  # None: this was the last page


def parse_sites_page(body: Mapping[str, Any]) -> SitesPage:
    sites = [parse_site(s) for s in _list(body.get("sites"))]
    return SitesPage(sites, next_cursor(_mapping(body.get("metadata")), "sites"))


def next_cursor(metadata: Mapping[str, Any], listing: str) -> str | None:
    """The cursor of a listing's next page from its paging metadata (`{"cursors": {"next"},
    "hasNext"}`), None after the last page. Raises INVALID_RESPONSE for `hasNext` without a
    cursor: stopping there would hide the rest of the listing, and a reconciler that misses a
    site (or a plan that misses a connection) acts on a wrong picture; better to fail loudly."""
    cursor = _text(_mapping(metadata.get("cursors")).get("next"))
    has_next = metadata.get("hasNext")
    if has_next is False:
        return None
    if has_next is True and not cursor:
        raise invalid_response(f"{listing} page says hasNext but gives no cursor")
    return cursor


def parse_site(raw: Any) -> Site:
    data = _mapping(raw)
    site_id = _text(data.get("id"))
    if not site_id:
        raise invalid_response("a listed site has no id")
    created = _text(data.get("createdDate"))
    created_at = parse_timestamp(created) if created else None
    if created_at is None:
        # Reconciling a create compares this date with the first attempt: a made-up value
        # would make a fresh site look old (duplicate) or an old one look fresh (wrong id).
        raise invalid_response(f"site {site_id} has no valid createdDate")
    return Site(
        id=site_id,
        name=_text(data.get("name")) or "",
        display_name=_text(data.get("displayName")) or "",
        created_at=created_at,
        owner_account_id=_text(data.get("ownerAccountId")),
        folder_id=_text(data.get("folderId")),
        namespace=_text(data.get("namespace")),
        premium=data.get("premium") is True,
    )


def parse_timestamp(text: str) -> float | None:
    """ISO-8601 to unix seconds; a time without an offset is UTC. None if unparsable."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_account_invites(
    body: Mapping[str, Any], emails: Sequence[str]
) -> list[InviteResult]:
    invited = {
        _email_key(i.get("email")): _text(i.get("id"))
        for i in map(_mapping, _list(body.get("successfulInvites")))
    }
    refused = {
        _email_key(f.get("subjectEmail")): _text(f.get("errorMessage")) or "invite refused"
        for f in map(_mapping, _list(body.get("failedInvites")))
    }
    return _match_emails(emails, invited, refused)


def parse_site_invites(body: Mapping[str, Any], emails: Sequence[str]) -> list[InviteResult]:
    invited = {
        _email_key(i.get("email")): _text(i.get("id"))
        for i in map(_mapping, _list(body.get("invites")))
    }
    # The site-invite answer gives no reason for a refusal, only the address.
    refused = {_email_key(e): "invite refused by Wix" for e in _list(body.get("failedEmails"))}
    return _match_emails(emails, invited, refused)


def _match_emails(
    emails: Sequence[str], invited: Mapping[str, str | None], refused: Mapping[str, str]
) -> list[InviteResult]:
    """One result per requested email, in request order, matched case-insensitively.

    An email listed as invited counts as invited even if also listed as refused: the invite
    exists, and sending it again would mail the person twice.
    """
    results = []
    for email in emails:
        key = _email_key(email)
        invite_id = invited.get(key)
        if invite_id:
            results.append(InviteResult(email, invite_id, None))
        else:
            results.append(InviteResult(email, None, refused.get(key)))
    return results


def _email_key(value: Any) -> str:
    return value.strip().casefold() if isinstance(value, str) else ""


def parse_roles(body: Mapping[str, Any]) -> list[Role]:
    """Predefined roles first, then custom ones; entries without id or title are skipped."""
    roles = []
    for raw in _list(body.get("predefinedRoles")) + _list(body.get("customRoles")):
        data = _mapping(raw)
        role_id = _role_id(data.get("id"))
        title = _text(data.get("title"))
        if role_id and title:
            roles.append(Role(role_id, title, _text(data.get("restrictFromLevel"))))
    return roles


def _role_id(value: Any) -> str | None:
    # Ids are numeric strings. Should one arrive as a JSON integer, its exact digits are kept
    # (Python ints are exact); a float or bool is not an id.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(value)


# ---------------------------------------------------------------------------------------------
# Inferred, unverified against the live service (see wix-api.md) and kept in this one place.
#
# Transfer: the request is documented; the answer is not. 200 means the move is done, and the
# body is believed to echo `{"siteTransfer": {...}}`. Nothing reads it: any JSON object, or an
# empty body, is a success, so a different echo (or none) changes nothing.
#
# Team search (`POST /roles-management/v3/team/search`): its answer shape is unverified, so the
# client does not call it; pending account invites are not listable by any public call.


def transfer_body(site_id: str, source_account_id: str) -> dict[str, Any]:
    # Notifications off: a bulk move must not mail the site owners once per site.
    return {
        "siteTransfer": {
            "siteId": site_id,
            "sourceAccountId": source_account_id,
            "enableNotifications": False,
        }
    }


# ---------------------------------------------------------------------------------------------
# Errors


def api_error(
    status: int,
    reason: str | None,
    text: str,
    *,
    request_id: str | None,
    retry_after: float | None,
) -> WixApiError:
    """A non-200 answer as WixApiError. Tolerates empty, non-JSON and half-formed bodies."""
    code, message = _error_code_and_message(text)
    if not message:
        message = reason or f"HTTP {status}"
    return WixApiError(
        status, message, code=code, request_id=request_id, retry_after=retry_after
    )


def _error_code_and_message(text: str) -> tuple[str | None, str]:
    try:
        body = json.loads(text) if text.strip() else None
    except ValueError:
        return None, _snippet(text)
    if not isinstance(body, dict):
        return None, _snippet(text)
    details = _mapping(body.get("details"))
    app = _mapping(details.get("applicationError"))
    message = _text(body.get("message")) or _text(app.get("description")) or ""
    violations = _violations(_mapping(details.get("validationError")))
    if violations and violations not in message:  # a message may quote them already
        message = f"{message}: {violations}" if message else violations
    return _text(app.get("code")), message


def _violations(validation: Mapping[str, Any]) -> str:
    found = []
    for raw in _list(validation.get("fieldViolations"))[:_MAX_VIOLATIONS]:
        item = _mapping(raw)
        field = _text(item.get("field"))
        description = _text(item.get("description")) or "invalid"
        found.append(f"{field}: {description}" if field else description)
    return "; ".join(found)


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """`Retry-After` as seconds from `now`: delta-seconds or an HTTP date. None if absent/bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = when.timestamp() - now
    return max(0.0, seconds) if math.isfinite(seconds) else None


def scrub(text: str, secret: str) -> str:
    """`text` with every occurrence of `secret` masked (a server may echo what it was sent)."""
    return text.replace(secret, "***") if secret else text


# ---------------------------------------------------------------------------------------------
# Tolerant accessors (more in bulkops.jsonvalues): a missing or mistyped field is absent.


def _snippet(text: str) -> str:
    return " ".join(text.split())[:_SNIPPET_CHARS]

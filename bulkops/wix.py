"""The Wix HTTP client: one method per Wix call, typed results, typed errors.

The only module that imports aiohttp's client. Every request takes one token from the request
budget first and reports its answer (or the lack of one) back to it. The wire details (bodies,
parsing, error bodies) live in `bulkops.wixwire`; this module sends, receives and translates
transport failures into `WixConnectionError` / `WixTimeout`, telling apart a request that
certainly never left from one that may have had its effect.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
from yarl import URL

from bulkops import __version__
from bulkops.errors import WixApiError, WixConnectionError, WixError, WixTimeout
from bulkops.ratelimit import RequestBudget
from bulkops.wixdomains import (
    AVAILABILITY_PATH,
    AVAILABILITY_RETRY_WITHOUT_AUTH,
    CONNECTED_DOMAINS_PATH,
    DNS_ZONES_PATH,
    MAX_CONNECTED_DOMAINS_PAGE,
    SETUP_INFO_PATH,
    AssignmentType,
    Availability,
    ConnectedDomain,
    ConnectionType,
    DnsRecord,
    DnsZone,
    SetupInfo,
    availability_query,
    create_connected_domain_body,
    domain_path,
    list_connected_domains_query,
    means_not_connected,
    parse_availability,
    parse_connected_domain,
    parse_connected_domains_page,
    parse_dns_zone,
    parse_setup_info,
    update_dns_zone_body,
)
from bulkops.wixwire import (
    AccountInvitee,
    CreatedSite,
    InviteResult,
    Role,
    Site,
    account_invite_body,
    api_error,
    checked_base_url,
    create_site_body,
    decode_json_body,
    first_query_body,
    invalid_response,
    next_query_body,
    parse_account_invites,
    parse_created_site,
    parse_retry_after,
    parse_roles,
    parse_site_invites,
    parse_sites_page,
    scrub,
    site_invite_body,
    transfer_body,
)

__all__ = [
    "AccountInvitee",
    "AssignmentType",
    "Availability",
    "ConnectedDomain",
    "ConnectionType",
    "CreatedSite",
    "DnsRecord",
    "DnsZone",
    "InviteResult",
    "Role",
    "SetupInfo",
    "Site",
    "WixClient",
    "transport_error",
]

log = logging.getLogger(__name__)

USER_AGENT = f"bulkops/{__version__}"
T = TypeVar("T")
# A listing longer than this many pages (10 million sites at 100 a page) is a server that keeps
# handing out cursors, not an account: stop instead of looping for ever.
MAX_PAGES = 100_000
# Request URLs kept parsed, by path: the fixed paths of a run, not every invite id it names.
MAX_CACHED_URLS = 64


@dataclass(frozen=True)
class _Answer:
    status: int
    text: str
    request_id: str | None
    retry_after: float | None
    reason: str | None


class WixClient:
    """Wix's account-level REST API. Safe to share between concurrent tasks of one event loop."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        account_id: str,
        budget: RequestBudget,
        timeout: float,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._base_url = checked_base_url(base_url)
        self._api_key = api_key
        self.account_id = account_id
        self._budget = budget
        self._timeout = aiohttp.ClientTimeout(
            total=timeout,
            # A separate, shorter connect limit makes a request that never got a connection
            # fail as ConnectionTimeoutError (certainly not sent, safe to send again) instead
            # of the total timeout, which cannot tell "never left" from "left, no answer".
            connect=timeout / 2,
        )
        self._session = session
        self._owns_session = session is None
        self._by_account: dict[str, dict[str, str]] = {}
        self._urls: dict[str, URL] = {}

    def __repr__(self) -> str:
        # The key is deliberately left out: a repr ends up in logs and tracebacks.
        return f"WixClient(base_url={self._base_url!r}, account_id={self.account_id!r})"

    async def __aenter__(self) -> WixClient:
        self._open_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if this client created it; a session passed in stays open."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Created lazily: an aiohttp session binds to the running loop.
            # No cookie jar: the API needs none, and one would be consulted on every request
            # and could carry one account's cookie into another's calls.
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
            self._owns_session = True
        return self._session

    # -----------------------------------------------------------------------------------------
    # Calls

    async def create_site(
        self, *, name: str, template_id: str | None, folder_id: str | None
    ) -> CreatedSite:
        """Create a site. A 200 without `metaSiteId` raises INVALID_RESPONSE: the site may
        exist, so the caller must reconcile rather than create again."""
        body = await self._call_json(
            "POST",
            "/funnel/projects/v1/create",
            self._account_headers(self.account_id),
            create_site_body(name, template_id, folder_id),
        )
        return parse_created_site(body)

    async def iter_sites(
        self,
        *,
        account_id: str | None = None,
        filter: Mapping[str, Any] | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Site]:
        """Every site of the account (default: the configured one), newest first, page by page.

        Each page is one request under the budget. `filter` applies to the first request; the
        cursor carries it to the later ones.
        """
        headers = self._account_headers(account_id or self.account_id)

        async def page(cursor: str | None) -> tuple[list[Site], str | None]:
            request = (first_query_body(filter, page_size) if cursor is None
                       else next_query_body(cursor, page_size))
            found = parse_sites_page(
                await self._call_json("POST", "/site-list/v2/sites/query", headers, request))
            return found.sites, found.next_cursor

        async for site in _paged(page, "sites listing"):
            yield site

    async def transfer_site(
        self, *, site_id: str, source_account_id: str, target_account_id: str
    ) -> None:
        """Move a site. Returns once Wix answered 200, which means the move is done."""
        # The call is made as the TARGET account; the source travels in the body.
        await self._call_json(
            "POST",
            "/b2b-site-management/v1/transfer-site",
            self._account_headers(target_account_id),
            transfer_body(site_id, source_account_id),
        )

    async def create_account_invites(
        self, invitees: Sequence[AccountInvitee], *, language: str = "en"
    ) -> list[InviteResult]:
        """Invite up to 50 people to the account; one result per invitee, in order."""
        request = account_invite_body(invitees, language)
        body, request_id = await self._call(
            "POST",
            "/invites/account-invite/create",
            self._account_headers(self.account_id),
            request,
        )
        return _with_request_id(parse_account_invites(body, [i.email for i in invitees]),
                                request_id)

    async def create_site_invites(
        self,
        *,
        site_id: str,
        policy_ids: Sequence[str],
        emails: Sequence[str],
        language: str = "en",
    ) -> list[InviteResult]:
        """Invite people to one site with the same roles; one result per email, in order."""
        # Site-level call: the site comes from `wix-site-id`, and no account header is sent.
        headers = {**self._common_headers(), "wix-site-id": site_id}
        body, request_id = await self._call(
            "POST",
            "/invites/site-invite/bulk",
            headers,
            site_invite_body(policy_ids, emails, language),
        )
        return _with_request_id(parse_site_invites(body, emails), request_id)

    async def list_roles(self) -> list[Role]:
        """Every role the account can give, predefined and custom, with English titles."""
        body = await self._call_json(
            "GET", "/roles-management/roles?locale=en", self._account_headers(self.account_id)
        )
        return parse_roles(body)

    # -----------------------------------------------------------------------------------------
    # Domains (wix-domains.md; wire format in bulkops.wixdomains). Every call is account-level.
    # A domain argument goes through `wixdomains.domain_id`: ValueError before any request for
    # a non-ASCII or malformed name.

    async def create_connected_domain(
        self,
        *,
        site_id: str,
        domain: str,
        connection_type: ConnectionType | None,
        assignment_type: AssignmentType = AssignmentType.REDIRECT,
        notify: bool = False,
    ) -> ConnectedDomain:
        """(a) Create Connected Domain: `POST /domains/v1/connected-domains`.

        Sends `wix-account-id` and `wix-site-id` (the site header is how the site is chosen).
        `connection_type` None for a subdomain. `notify` False sends
        `suppressNotifications: true`. Errors (WixApiError): 400 label-only refusals (see
        `wixdomains.create_400_reason`), 400 DOMAINS_GUID_NOT_VALID, 403 NON_PREMIUM_SITE /
        DOMAINS_PERMISSION_DENIED / DOMAINS_DOMAIN_NOT_PERMITTED / DOMAINS_GUID_NOT_FOUND,
        409 DOMAINS_ALREADY_EXISTS. No idempotency key: reconcile with `get_connected_domain`.
        """
        request = create_connected_domain_body(domain, connection_type, assignment_type,
                                               suppress_notifications=not notify)
        headers = {**self._account_headers(self.account_id), "wix-site-id": site_id}
        body = await self._call_json("POST", CONNECTED_DOMAINS_PATH, headers, request)
        return parse_connected_domain(body)

    async def get_connected_domain(self, domain: str) -> ConnectedDomain | None:
        """(a) Get Connected Domain: `GET /domains/v1/connected-domains/{domain}`.

        None when the domain is not connected (404 NOT_FOUND is an answer, not a failure).
        Other errors: 400 DOMAINS_GUID_NOT_VALID, 403 DOMAINS_PERMISSION_DENIED /
        DOMAINS_DOMAIN_NOT_PERMITTED / DOMAINS_GUID_NOT_FOUND.
        """
        try:
            body = await self._call_json(
                "GET", domain_path(CONNECTED_DOMAINS_PATH, domain),
                self._account_headers(self.account_id))
        except WixApiError as error:
            if means_not_connected(error.status, error.code):
                return None
            raise
        return parse_connected_domain(body)

    async def iter_connected_domains(
        self, *, page_size: int = MAX_CONNECTED_DOMAINS_PAGE
    ) -> AsyncIterator[ConnectedDomain]:
        """(a) List Connected Domains: every external domain of the account, newest first.

        `GET /domains/v1/connected-domains?paging.limit=..&paging.cursor=..`, one request per
        page under the budget, until `pagingMetadata.hasNext` is false. No site filter exists:
        filter on `site_id` client-side.
        """
        headers = self._account_headers(self.account_id)

        async def page(cursor: str | None) -> tuple[list[ConnectedDomain], str | None]:
            path = CONNECTED_DOMAINS_PATH + list_connected_domains_query(page_size, cursor)
            found = parse_connected_domains_page(await self._call_json("GET", path, headers))
            return found.domains, found.next_cursor

        async for connected in _paged(page, "connected domains listing"):
            yield connected

    async def get_connected_domain_setup_info(self, domain: str) -> SetupInfo:
        """(a) Get Connected Domain Setup Info:
        `GET /domains/v1/connected-domain-setup-info/{domain}` -> the records the client must
        set at their registrar. Errors as Get Connected Domain; 404 when not connected."""
        body = await self._call_json(
            "GET", domain_path(SETUP_INFO_PATH, domain), self._account_headers(self.account_id))
        return parse_setup_info(body)

    async def get_dns_zone(self, domain: str) -> DnsZone:
        """(b) Get DNS Zone: `GET /domains/v1/dns-zones/{domain}` -> the whole zone.

        404 DNS_ZONE_NOT_FOUND (WixApiError) when Wix hosts no zone (e.g. a POINTING domain).
        """
        body = await self._call_json(
            "GET", domain_path(DNS_ZONES_PATH, domain), self._account_headers(self.account_id))
        return parse_dns_zone(body)

    async def update_dns_zone(
        self,
        domain: str,
        *,
        additions: Sequence[DnsRecord] = (),
        deletions: Sequence[DnsRecord] = (),
    ) -> DnsZone:
        """(b) Update DNS Zone: `PATCH /domains/v1/dns-zones/{domain}` -> the zone after it.

        At most 10 additions and 10 deletions, never NS/SOA (ValueError before sending). A
        change is the old object in `deletions` plus the new one in `additions`. Errors: 428
        DOMAIN_* validation codes, 404 DNS_ZONE_NOT_FOUND. Not idempotent: never resend blind;
        reconcile by reading the zone.
        """
        body = await self._call_json(
            "PATCH", domain_path(DNS_ZONES_PATH, domain),
            self._account_headers(self.account_id), update_dns_zone_body(additions, deletions))
        return parse_dns_zone(body)

    async def preview_dns_zone(self, domain: str) -> DnsZone:
        """(b) Preview DNS Zone: `GET /domains/v1/dns-zones/{domain}/preview` -> the A, CNAME,
        NS and SOA records Wix would calculate; works before the domain is connected."""
        body = await self._call_json(
            "GET", domain_path(DNS_ZONES_PATH, domain, "/preview"),
            self._account_headers(self.account_id))
        return parse_dns_zone(body)

    async def check_domain_availability(self, domain: str) -> Availability:
        """(c) Check Domain Availability: `GET /domain-search/v2/check-domain-availability
        ?domain=..`. `available: true` means nobody owns it, so it cannot be connected.

        Errors: 400 INVALID_DOMAIN, 400 DOMAINS_UNSUPPORTED_TLD. On 401/403 the call is tried
        once more without auth (inferred, see wixdomains item 5); both requests are budgeted.
        """
        path = AVAILABILITY_PATH + availability_query(domain)
        try:
            body = await self._call_json("GET", path, self._account_headers(self.account_id))
        except WixApiError as error:
            if not (AVAILABILITY_RETRY_WITHOUT_AUTH and error.status in (401, 403)):
                raise
            log.info("wix_availability_without_auth", extra={"status": error.status})
            anonymous = {k: v for k, v in self._common_headers().items()
                         if k != "Authorization"}
            body = await self._call_json("GET", path, anonymous)
        return parse_availability(body)

    # -----------------------------------------------------------------------------------------
    # Transport

    def _common_headers(self) -> dict[str, str]:
        return {
            "Authorization": self._api_key,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }

    def _account_headers(self, account_id: str) -> dict[str, str]:
        headers = self._by_account.get(account_id)
        if headers is None:  # built once per account: a run's calls name one or a few
            headers = self._by_account[account_id] = {**self._common_headers(),
                                                      "wix-account-id": account_id}
        return headers

    async def _call_json(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One request under the budget: the 200 body as a JSON object, or a WixError."""
        return (await self._call(method, path, headers, body))[0]

    async def _call(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], str | None]:
        """As `_call_json`, with the answer's X-Wix-Request-Id (None when absent)."""
        answer = await self._exchange(method, path, headers, body)
        if answer.status != 200:
            raise api_error(
                answer.status,
                answer.reason,
                answer.text,
                request_id=answer.request_id,
                retry_after=answer.retry_after,
            )
        return decode_json_body(answer.text), answer.request_id

    async def _exchange(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: Mapping[str, Any] | None,
    ) -> _Answer:
        await self._budget.acquire()
        started = time.monotonic()
        try:
            answer = await self._send(method, path, headers, body)
        except (aiohttp.ClientError, OSError) as exc:  # OSError covers TimeoutError
            self._budget.on_response(None, None)
            error = transport_error(exc, secret=self._api_key)
            log.info("wix_no_answer", extra={"method": method, "path": path, "error": str(error)})
            raise error from exc
        self._budget.on_response(answer.status, answer.retry_after)
        if log.isEnabledFor(logging.DEBUG):  # the fields cost more than the check
            log.debug("wix_answer", extra={
                "method": method, "path": path, "status": answer.status,
                "request_id": answer.request_id, "elapsed": round(time.monotonic() - started, 3),
            })
        return answer

    async def _send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: Mapping[str, Any] | None,
    ) -> _Answer:
        data = json.dumps(body).encode() if body is not None else None
        session = self._open_session()
        url = self._urls.get(path)
        if url is None:
            # Parsed once per path: aiohttp would parse the text again on every request.
            url = URL(self._base_url + path)
            if len(self._urls) < MAX_CACHED_URLS:
                self._urls[path] = url
        async with session.request(
            method,
            url,
            headers=headers,
            data=data,
            timeout=self._timeout,
            allow_redirects=False,  # a redirect would carry the key to wherever it points
        ) as response:
            raw = await response.read()
            text = scrub(raw.decode("utf-8", errors="replace"), self._api_key)
            return _Answer(
                status=response.status,
                text=text,
                request_id=response.headers.get("X-Wix-Request-Id"),
                retry_after=parse_retry_after(
                    response.headers.get("Retry-After"), now=time.time()
                ),
                reason=response.reason,
            )


async def _paged(
    page: Callable[[str | None], Awaitable[tuple[list[T], str | None]]], listing: str
) -> AsyncIterator[T]:
    """Every item of a cursor-paged listing: `page(cursor)` is one request (None: the first)
    giving (items, next cursor or None). Raises INVALID_RESPONSE for a repeated cursor or a
    listing that never ends (a server bug must not loop a run forever)."""
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        items, cursor = await page(cursor)
        for item in items:
            yield item
        if cursor is None:
            return
        if cursor in seen:
            raise invalid_response(f"{listing} repeated a cursor")
        seen.add(cursor)
    raise invalid_response(f"{listing} did not end after {MAX_PAGES} pages")


def _with_request_id(results: list[InviteResult], request_id: str | None) -> list[InviteResult]:
    """Each invitee's result with the request id of the call that carried it: what Wix
    support asks for about an invitee refused inside a 200 answer."""
    return [replace(result, request_id=request_id) for result in results]


def transport_error(exc: BaseException, *, secret: str = "") -> WixError:
    """A failure without an answer, as a WixError that says whether the request may have left.

    `sent=False` only when the request certainly never left (no connection was made); anything
    after that point may have reached Wix and had its effect.
    """
    detail = scrub(f"{type(exc).__name__}: {exc}".rstrip(": "), secret)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return WixConnectionError(f"could not connect in time ({detail})", sent=False)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return WixConnectionError(f"could not connect ({detail})", sent=False)
    if isinstance(exc, TimeoutError):  # aiohttp's read timeouts subclass it too
        return WixTimeout(f"no answer in time ({detail})")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return WixConnectionError(f"connection closed before the answer ({detail})", sent=True)
    return WixConnectionError(f"connection failed after sending ({detail})", sent=True)

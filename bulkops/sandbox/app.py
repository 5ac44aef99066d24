"""The aiohttp application: Wix's paths, the response envelope, the /_sandbox/ paths."""

from __future__ import annotations

import functools

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bulkops.sandbox.admin import ADMIN_PREFIX, admin_routes
from bulkops.sandbox.config import Endpoint
from bulkops.sandbox.core import Sandbox
from bulkops.sandbox.dns_api import (
    prepare_get_dns_zone,
    prepare_preview_dns_zone,
    prepare_update_dns_zone,
)
from bulkops.sandbox.domains_api import (
    prepare_availability,
    prepare_create_connected_domain,
    prepare_get_connected_domain,
    prepare_list_connected_domains,
    prepare_setup_info,
)
from bulkops.sandbox.invites_api import (
    prepare_account_invite,
    prepare_resend,
    prepare_revoke,
    prepare_site_invites,
)
from bulkops.sandbox.pipeline import DroppedResponse, Route, error_response, serve
from bulkops.sandbox.roles_api import prepare_roles
from bulkops.sandbox.sites_api import (
    prepare_create_site,
    prepare_query_sites,
    prepare_transfer_site,
)
from bulkops.sandbox.stats import DROPPED
from bulkops.sandbox.wire import ApiError, application_error, new_guid

REQUEST_ID_HEADER = "X-Wix-Request-Id"
UNKNOWN_ENDPOINT = "unknown"

ROUTES = (
    Route(Endpoint.CREATE_SITE, "POST", "/funnel/projects/v1/create", prepare_create_site),
    Route(Endpoint.QUERY_SITES, "POST", "/site-list/v2/sites/query", prepare_query_sites),
    Route(Endpoint.TRANSFER_SITE, "POST", "/b2b-site-management/v1/transfer-site",
          prepare_transfer_site),
    Route(Endpoint.ACCOUNT_INVITE, "POST", "/invites/account-invite/create",
          prepare_account_invite),
    Route(Endpoint.SITE_INVITE_BULK, "POST", "/invites/site-invite/bulk", prepare_site_invites),
    Route(Endpoint.SITE_INVITE_RESEND, "POST", "/invites/site-invite/{inviteId}/resend",
          prepare_resend),
    Route(Endpoint.SITE_INVITE_REVOKE, "POST", "/invites/site-invite/{inviteId}/revoke",
          prepare_revoke),
    Route(Endpoint.ROLES, "GET", "/roles-management/roles", prepare_roles),
    # wix-domains.md (a), (b), (c)
    Route(Endpoint.CREATE_CONNECTED_DOMAIN, "POST", "/domains/v1/connected-domains",
          prepare_create_connected_domain),
    Route(Endpoint.LIST_CONNECTED_DOMAINS, "GET", "/domains/v1/connected-domains",
          prepare_list_connected_domains),
    Route(Endpoint.GET_CONNECTED_DOMAIN, "GET", "/domains/v1/connected-domains/{domain}",
          prepare_get_connected_domain),
    Route(Endpoint.CONNECTED_DOMAIN_SETUP_INFO, "GET",
          "/domains/v1/connected-domain-setup-info/{domain}", prepare_setup_info),
    Route(Endpoint.GET_DNS_ZONE, "GET", "/domains/v1/dns-zones/{domain}", prepare_get_dns_zone),
    Route(Endpoint.UPDATE_DNS_ZONE, "PATCH", "/domains/v1/dns-zones/{domain}",
          prepare_update_dns_zone),
    Route(Endpoint.PREVIEW_DNS_ZONE, "GET", "/domains/v1/dns-zones/{domain}/preview",
          prepare_preview_dns_zone),
    Route(Endpoint.CHECK_DOMAIN_AVAILABILITY, "GET", "/domain-search/v2/check-domain-availability",
          prepare_availability),
)

_HTTP_ERROR_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}


def _endpoint_name(request: web.Request) -> str:
    return request.match_info.route.name or UNKNOWN_ENDPOINT


def _wix_envelope(sandbox: Sandbox) -> Middleware:
    """Give every Wix API answer its X-Wix-Request-Id and a Wix error body; count it."""

    @web.middleware
    async def envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(ADMIN_PREFIX):
            return await handler(request)
        sandbox.stats.arrived(_endpoint_name(request), sandbox.clock())
        try:
            response = await handler(request)
        except ApiError as error:
            response = error_response(error)
        except web.HTTPException as exc:  # the router's own 404 / 405
            code = _HTTP_ERROR_CODES.get(exc.status, "INVALID_REQUEST")
            response = error_response(application_error(exc.status, code, exc.reason))
        except Exception:
            sandbox.stats.answered(500)
            raise
        if isinstance(response, DroppedResponse):
            sandbox.stats.answered(DROPPED)
            return response
        response.headers[REQUEST_ID_HEADER] = new_guid()
        sandbox.stats.answered(response.status)
        return response

    return envelope


def build_app(sandbox: Sandbox) -> web.Application:
    """An aiohttp application serving `sandbox`: the Wix API paths and /_sandbox/."""
    app = web.Application(middlewares=[_wix_envelope(sandbox)])
    for route in ROUTES:
        handler = functools.partial(serve, route, sandbox)
        app.router.add_route(route.method, route.path, handler, name=route.endpoint.value)
    app.router.add_routes(admin_routes(sandbox))
    return app

"""Site endpoints: create a site, query sites, transfer a site (wix-api.md)."""

from __future__ import annotations

from aiohttp import web

from bulkops.sandbox.core import Sandbox
from bulkops.sandbox.inbound import account_header, acting_account, optional_text, read_object
from bulkops.sandbox.pipeline import Effect
from bulkops.sandbox.query import parse_query
from bulkops.sandbox.state import Transfer
from bulkops.sandbox.wire import JsonObject, application_error, is_guid, validation_error


async def prepare_create_site(request: web.Request, sandbox: Sandbox) -> Effect:
    """POST /funnel/projects/v1/create: a new site owned by the `wix-account-id` account."""
    account = acting_account(request.headers, sandbox.config)
    body = await read_object(request)
    if body.get("type") != "WIX":
        raise validation_error("type", 'must be "WIX"')
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise validation_error("name", "the site's display name is required")
    template_id = body.get("templateId")
    if template_id is not None and not is_guid(template_id):
        raise validation_error("templateId", "not a template id (GUID)")
    folder_id = optional_text(body, "folderId")

    def create() -> JsonObject:
        site = sandbox.add_site(name, account, template_id=template_id, folder_id=folder_id)
        return {"project": {"metaSiteId": site.id, "siteId": site.component_id,
                            "templateId": site.template_id}}

    return create


async def prepare_query_sites(request: web.Request, sandbox: Sandbox) -> Effect:
    """POST /site-list/v2/sites/query: the listing of the `wix-account-id` account."""
    account = acting_account(request.headers, sandbox.config)
    query = parse_query(await read_object(request))

    def listing() -> JsonObject:
        return sandbox.listings.page(sandbox.state, account, query, sandbox.clock())

    return listing


def _check_transfer(sandbox: Sandbox, site_id: str, source: str, target: str) -> None:
    """Raise the error Wix answers for this transfer, if any, in Wix's order of checks."""
    config = sandbox.config
    data = {"siteId": site_id, "sourceAccountId": source, "targetAccountId": target}
    not_allowed = application_error(
        403, "SITE_TRANSFER_NOT_ALLOWED", "this site cannot move between these accounts", data)
    if target in config.forbidden_transfer_targets:
        raise not_allowed
    if target not in sandbox.known_accounts():
        raise application_error(
            428, "TARGET_ACCOUNT_ID_NOT_FOUND", "the target account does not exist", data)
    actable = config.actable_accounts()
    if target not in actable or source not in actable or source == target:
        raise not_allowed
    site = sandbox.state.sites.get(site_id)
    if site is None or site.owner_account_id != source:
        raise application_error(400, "SITE_NOT_FOUND", "the site is not in the source account",
                                data)
    if site.premium:
        raise application_error(
            428, "SITE_TRANSFER_NOT_SUPPORTED",
            "the site has paid services; cancel them before transferring it", data)


async def prepare_transfer_site(request: web.Request, sandbox: Sandbox) -> Effect:
    """POST /b2b-site-management/v1/transfer-site; `wix-account-id` names the TARGET account."""
    target = account_header(request.headers)
    body = await read_object(request)
    transfer = body.get("siteTransfer")
    if not isinstance(transfer, dict):
        raise validation_error("siteTransfer", "is required")
    for field in ("siteId", "sourceAccountId"):
        if not is_guid(transfer.get(field)):
            raise validation_error(f"siteTransfer.{field}", "must be a GUID")
    if not isinstance(transfer.get("enableNotifications", False), bool):
        raise validation_error("siteTransfer.enableNotifications", "must be true or false")
    site_id, source = str(transfer["siteId"]), str(transfer["sourceAccountId"])

    def move() -> JsonObject:
        _check_transfer(sandbox, site_id, source, target)
        record = Transfer(site_id, source, target, sandbox.now_iso())
        sandbox.state.move_site(record, sandbox.clock(), sandbox.config.listing_lag)
        return {"siteTransfer": transfer}

    return move

"""Invite endpoints: account invites, bulk site invites, resend and revoke (wix-api.md).

Both create calls succeed partially inside a 200: an invitee whose address is invalid or on
a rejected domain fails alone. For account invites, an invitee whose site assignments name a
site that is not the account's also fails alone (a `failedInvites` entry), so one bad row
never sinks its whole batch. Whole-call problems (unknown policy id, a role given at a level
it is restricted from, malformed body) are a 400 for the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiohttp import web

from bulkops.sandbox.core import Sandbox
from bulkops.sandbox.inbound import (
    acting_account,
    email_problem,
    read_object,
    site_header,
    string_list,
)
from bulkops.sandbox.pipeline import Effect
from bulkops.sandbox.roles import RoleLevel, check_policies
from bulkops.sandbox.state import Invite, InviteKind, InviteStatus, Site
from bulkops.sandbox.wire import (
    JsonObject,
    application_error,
    format_instant,
    is_guid,
    new_guid,
    validation_error,
)

MAX_ACCOUNT_INVITEES = 50
INVITE_LIFETIME = timedelta(days=30)
ACCEPT_LINK_BASE = "https://sandbox.invalid/accept-invite/"


def invite_to_wix(invite: Invite) -> JsonObject:
    """AccountInvite or SiteInvite, as the create, resend responses show them."""
    view: JsonObject = {
        "id": invite.id, "email": invite.email, "status": invite.status.value,
        "acceptLink": ACCEPT_LINK_BASE + invite.id, "policyIds": list(invite.policy_ids),
        "dateCreated": invite.date_created, "expirationDate": invite.expiration_date,
    }
    if invite.kind is InviteKind.SITE:
        view["siteId"] = invite.site_id
    else:
        view["accountId"] = invite.account_id
    return view


def _new_invite(sandbox: Sandbox, kind: InviteKind, account_id: str, site_id: str | None,
                email: str, policy_ids: tuple[str, ...], site_ids: tuple[str, ...] = ()) -> Invite:
    now = sandbox.wall_clock()
    invite = Invite(
        id=new_guid(), kind=kind, account_id=account_id, site_id=site_id, email=email,
        policy_ids=policy_ids, site_ids=site_ids, status=InviteStatus.PENDING,
        date_created=format_instant(now), expiration_date=format_instant(now + INVITE_LIFETIME),
    )
    return sandbox.state.add_invite(invite)


@dataclass(frozen=True)
class Subject:
    """One invitee of an account invite: the roles and the sites they are limited to."""

    email: str
    policy_ids: tuple[str, ...]
    site_ids: tuple[str, ...]


def _site_ids(resources: Any, where: str) -> tuple[str, ...]:
    """`[{"fullNameResource": {"siteContext": {"metasiteId": ...}}}]` -> the site ids."""
    if resources is None:
        return ()
    if not isinstance(resources, list):
        raise validation_error(where, "must be a list")
    site_ids = []
    for index, resource in enumerate(resources):
        try:
            site_id = resource["fullNameResource"]["siteContext"]["metasiteId"]
        except (KeyError, TypeError) as exc:
            raise validation_error(f"{where}[{index}]", "expects fullNameResource.siteContext"
                                   ".metasiteId") from exc
        if not is_guid(site_id):
            raise validation_error(f"{where}[{index}]", "metasiteId must be a site id (GUID)")
        site_ids.append(site_id)
    return tuple(site_ids)


def _subject(entry: Any, where: str) -> Subject:
    if not isinstance(entry, dict) or not isinstance(entry.get("subjectEmail"), str):
        raise validation_error(f"{where}.subjectEmail", "is required")
    assignments = entry.get("assignments")
    if not isinstance(assignments, list) or not assignments:
        raise validation_error(f"{where}.assignments", "must be a non-empty list")
    policy_ids: list[str] = []
    site_ids: list[str] = []
    for index, assignment in enumerate(assignments):
        here = f"{where}.assignments[{index}]"
        if not isinstance(assignment, dict):
            raise validation_error(here, "must be an object")
        sites = _site_ids(assignment.get("assignments"), f"{here}.assignments")
        # No site resources: the role is given on the whole account.
        level = RoleLevel.SITE_LEVEL if sites else RoleLevel.ACCOUNT_LEVEL
        check_policies([assignment.get("policyId")], level, f"{here}.policyId")
        policy_ids.append(str(assignment["policyId"]))
        site_ids.extend(site for site in sites if site not in site_ids)
    return Subject(entry["subjectEmail"], tuple(policy_ids), tuple(site_ids))


def _subjects(body: JsonObject) -> list[Subject]:
    entries = body.get("subjectsAssignments")
    if not isinstance(entries, list) or not entries:
        raise validation_error("subjectsAssignments", "must be a non-empty list")
    if len(entries) > MAX_ACCOUNT_INVITEES:
        raise validation_error("subjectsAssignments",
                               f"at most {MAX_ACCOUNT_INVITEES} invitees per call")
    return [_subject(entry, f"subjectsAssignments[{i}]") for i, entry in enumerate(entries)]


def _language(body: JsonObject) -> None:
    language = body.get("defaultEmailLanguage")
    if language is not None and not isinstance(language, str):
        raise validation_error("defaultEmailLanguage", "must be a language code")


async def prepare_account_invite(request: web.Request, sandbox: Sandbox) -> Effect:
    """POST /invites/account-invite/create: invite team members to the account."""
    account = acting_account(request.headers, sandbox.config)
    body = await read_object(request)
    subjects = _subjects(body)
    _language(body)

    def problem(subject: Subject) -> str | None:
        foreign = [s for s in subject.site_ids if (site := sandbox.state.sites.get(s)) is None
                   or site.owner_account_id != account]
        if foreign:
            return f"site not found in the account: {', '.join(foreign)}"
        return email_problem(subject.email, sandbox.config.reject_domains)

    def invite_all() -> JsonObject:
        succeeded, failed = [], []
        for subject in subjects:
            reason = problem(subject)
            if reason is not None:
                failed.append({"subjectEmail": subject.email, "errorMessage": reason})
                continue
            invite = _new_invite(sandbox, InviteKind.ACCOUNT, account, None, subject.email,
                                 subject.policy_ids, subject.site_ids)
            succeeded.append(invite_to_wix(invite))
        return {"successfulInvites": succeeded, "failedInvites": failed}

    return invite_all


def _manageable_site(sandbox: Sandbox, site_id: str) -> Site:
    """The site, if the key's account or one of its sub-accounts owns it; else 404."""
    site = sandbox.state.sites.get(site_id)
    if site is None or site.owner_account_id not in sandbox.config.actable_accounts():
        raise application_error(404, "SITE_NOT_FOUND", "no such site", {"siteId": site_id})
    return site


async def prepare_site_invites(request: web.Request, sandbox: Sandbox) -> Effect:
    """POST /invites/site-invite/bulk: the same roles for every e-mail, on the header's site."""
    site_id = site_header(request.headers)
    body = await read_object(request)
    policy_ids = string_list(body.get("policyIds"), "policyIds")
    check_policies(list(policy_ids), RoleLevel.SITE_LEVEL, "policyIds")
    emails = string_list(body.get("emails"), "emails")
    _language(body)

    def invite_all() -> JsonObject:
        site = _manageable_site(sandbox, site_id)
        invites, failed = [], []
        for email in emails:
            if email_problem(email, sandbox.config.reject_domains) is not None:
                failed.append(email)
                continue
            invite = _new_invite(sandbox, InviteKind.SITE, site.owner_account_id, site.id,
                                 email, tuple(policy_ids))
            invites.append(invite_to_wix(invite))
        return {"invites": invites, "failedEmails": failed}

    return invite_all


def _pending_invite(sandbox: Sandbox, invite_id: str, site_id: str) -> Invite:
    invite = sandbox.state.pending_site_invite(invite_id, site_id)
    if invite is None:
        raise application_error(404, "INVITE_NOT_FOUND", "no pending invite with this id",
                                {"inviteId": invite_id})
    return invite


async def prepare_resend(request: web.Request, sandbox: Sandbox) -> Effect:
    """POST /invites/site-invite/{inviteId}/resend: the invitee gets the e-mail again."""
    site_id = site_header(request.headers)
    invite_id = request.match_info["inviteId"]
    await read_object(request)

    def resend() -> JsonObject:
        invite = _pending_invite(sandbox, invite_id, site_id)
        sandbox.state.count_email(invite)
        return {"invite": invite_to_wix(invite)}

    return resend


async def prepare_revoke(request: web.Request, sandbox: Sandbox) -> Effect:
    """POST /invites/site-invite/{inviteId}/revoke: the invite can no longer be accepted."""
    site_id = site_header(request.headers)
    invite_id = request.match_info["inviteId"]
    await read_object(request)

    def revoke() -> JsonObject:
        invite = _pending_invite(sandbox, invite_id, site_id)
        sandbox.state.set_invite_status(invite, InviteStatus.DELETED)
        return {}

    return revoke

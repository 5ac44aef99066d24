"""The sandbox's invites, roles and authentication rules over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bulkops.sandbox import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_API_KEY,
    DEFAULT_SUB_ACCOUNTS,
    REQUEST_ID_HEADER,
    RunningSandbox,
    running_sandbox,
)

ACCOUNT = DEFAULT_ACCOUNT_ID
KEY = {"Authorization": DEFAULT_API_KEY}
AT_ACCOUNT = {**KEY, "wix-account-id": ACCOUNT}
ACCOUNT_INVITE = "/invites/account-invite/create"
SITE_INVITES = "/invites/site-invite/bulk"
ROLES = "/roles-management/roles"


@dataclass
class Wix:
    running: RunningSandbox
    session: aiohttp.ClientSession

    async def call(self, method: str, path: str, headers: dict[str, str],
                   body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, path, json=body, headers=headers) as response:
            assert response.headers.get(REQUEST_ID_HEADER)
            return response.status, await response.json()

    async def roles(self) -> dict[str, str]:
        """Role title -> policy id, in English."""
        _, body = await self.call("GET", ROLES + "?locale=en", AT_ACCOUNT)
        return {r["title"]: r["id"] for r in body["predefinedRoles"] + body["customRoles"]}

    async def new_site(self, account: str = ACCOUNT) -> str:
        headers = {**KEY, "wix-account-id": account}
        status, body = await self.call("POST", "/funnel/projects/v1/create", headers,
                                       {"type": "WIX", "name": f"s-{uuid.uuid4()}"})
        assert status == 200
        return str(body["project"]["metaSiteId"])

    def emails_sent(self) -> dict[tuple[str, str], int]:
        snapshot = self.running.sandbox.snapshot()
        return {(e["scope"], e["email"]): e["count"] for e in snapshot["emails_sent"]}


@pytest.fixture
async def wix() -> AsyncIterator[Wix]:
    async with running_sandbox() as running, aiohttp.ClientSession(running.base_url) as session:
        yield Wix(running, session)


def code_of(body: Any) -> str:
    return str(body["details"]["applicationError"]["code"])


def subject(email: str, policy_id: str, *site_ids: str) -> dict[str, Any]:
    resources = [{"fullNameResource": {"siteContext": {"metasiteId": s}}} for s in site_ids]
    return {"subjectEmail": email, "assignments": [{"policyId": policy_id,
                                                    "assignments": resources}]}


# -- authentication -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"wix-account-id": ACCOUNT},
        {"Authorization": f"Bearer {DEFAULT_API_KEY}", "wix-account-id": ACCOUNT},
        {"Authorization": "wrong-key", "wix-account-id": ACCOUNT},
    ],
    ids=["no-key", "bearer-key", "wrong-key"],
)
async def test_requests_without_the_raw_key_get_401(wix: Wix, headers: dict[str, str]) -> None:
    status, body = await wix.call("GET", ROLES + "?locale=en", headers)
    assert (status, code_of(body)) == (401, "UNAUTHENTICATED")
    assert DEFAULT_API_KEY not in str(body)


async def test_missing_account_header_is_a_400_validation_error(wix: Wix) -> None:
    status, body = await wix.call("GET", ROLES + "?locale=en", KEY)
    assert status == 400
    assert body["details"]["validationError"]["fieldViolations"][0]["field"] == "wix-account-id"


async def test_account_the_key_may_not_act_for_gets_403(wix: Wix) -> None:
    stranger = {**KEY, "wix-account-id": str(uuid.uuid4())}
    status, body = await wix.call("POST", "/funnel/projects/v1/create", stranger,
                                  {"type": "WIX", "name": "x"})
    assert (status, code_of(body)) == (403, "PERMISSION_DENIED")
    assert wix.running.sandbox.state.sites == {}


async def test_sub_account_may_be_acted_for(wix: Wix) -> None:
    headers = {**KEY, "wix-account-id": DEFAULT_SUB_ACCOUNTS[2]}
    status, _ = await wix.call("GET", ROLES + "?locale=en", headers)
    assert status == 200


async def test_unknown_path_answers_a_wix_shaped_404(wix: Wix) -> None:
    status, body = await wix.call("POST", "/no/such/path", AT_ACCOUNT, {})
    assert (status, code_of(body)) == (404, "NOT_FOUND")


# -- roles ----------------------------------------------------------------------------------


async def test_roles_list_predefined_and_custom_with_numeric_string_ids(wix: Wix) -> None:
    status, body = await wix.call("GET", ROLES + "?locale=en", AT_ACCOUNT)
    assert status == 200
    titles = {r["title"]: r for r in body["predefinedRoles"]}
    assert {"Admin (Co-owner)", "Website Manager", "Website Designer", "Back Office Manager",
            "Blog Writer", "Billing Manager"} <= set(titles)
    assert [r["title"] for r in body["customRoles"]] == ["Client Reviewer"]
    assert titles["Billing Manager"]["restrictFromLevel"] == "Site"
    assert titles["Blog Writer"]["restrictFromLevel"] == "Account"
    for role in body["predefinedRoles"] + body["customRoles"]:
        assert isinstance(role["id"], str) and role["id"].isdigit() and len(role["id"]) >= 18


async def test_role_titles_follow_the_locale(wix: Wix) -> None:
    _, english = await wix.call("GET", ROLES + "?locale=en", AT_ACCOUNT)
    _, german = await wix.call("GET", ROLES + "?locale=de", AT_ACCOUNT)
    assert [r["id"] for r in english["predefinedRoles"]] == [
        r["id"] for r in german["predefinedRoles"]]
    assert "Website Manager" not in {r["title"] for r in german["predefinedRoles"]}


async def test_role_level_filter_drops_roles_restricted_from_that_level(wix: Wix) -> None:
    _, site_level = await wix.call("GET", ROLES + "?locale=en&filter.roleLevel=SITE_LEVEL",
                                   AT_ACCOUNT)
    _, account_level = await wix.call(
        "GET", ROLES + "?locale=en&filter.roleLevel=ACCOUNT_LEVEL", AT_ACCOUNT)
    assert "Billing Manager" not in {r["title"] for r in site_level["predefinedRoles"]}
    assert "Blog Writer" in {r["title"] for r in site_level["predefinedRoles"]}
    assert "Blog Writer" not in {r["title"] for r in account_level["predefinedRoles"]}
    status, _ = await wix.call("GET", ROLES + "?locale=en&filter.roleLevel=NOPE", AT_ACCOUNT)
    assert status == 400


# -- account invites ------------------------------------------------------------------------


async def test_account_invite_succeeds_partially_inside_a_200(wix: Wix) -> None:
    roles = await wix.roles()
    site_id = await wix.new_site()
    other_account_site = await wix.new_site(DEFAULT_SUB_ACCOUNTS[0])
    body = {"subjectsAssignments": [
        subject("ann@example.com", roles["Website Manager"]),
        subject("bob@example.com", roles["Blog Writer"], site_id),
        subject("not-an-email", roles["Website Manager"]),
        subject("cat@bounce.invalid", roles["Website Manager"]),
        subject("dan@example.com", roles["Website Designer"], other_account_site),
    ], "defaultEmailLanguage": "en"}
    status, answer = await wix.call("POST", ACCOUNT_INVITE, AT_ACCOUNT, body)
    assert status == 200
    ok = {i["email"]: i for i in answer["successfulInvites"]}
    assert set(ok) == {"ann@example.com", "bob@example.com"}
    assert {f["subjectEmail"] for f in answer["failedInvites"]} == {
        "not-an-email", "cat@bounce.invalid", "dan@example.com"}
    assert all(f["errorMessage"] for f in answer["failedInvites"])
    ann = ok["ann@example.com"]
    assert (ann["status"], ann["accountId"], ann["policyIds"]) == (
        "Pending", ACCOUNT, [roles["Website Manager"]])
    assert uuid.UUID(ann["id"]) and ann["acceptLink"] and ann["expirationDate"] > ann[
        "dateCreated"]
    assert wix.emails_sent() == {(f"account:{ACCOUNT}", "ann@example.com"): 1,
                                 (f"account:{ACCOUNT}", "bob@example.com"): 1}


@pytest.mark.parametrize(
    ("role", "on_site"),
    [("Billing Manager", True), ("Blog Writer", False), (None, False)],
    ids=["site-restricted-role-on-site", "account-restricted-role-account-wide",
         "unknown-policy"],
)
async def test_account_invite_with_unusable_role_is_a_400_for_the_call(
    wix: Wix, role: str | None, on_site: bool
) -> None:
    roles = await wix.roles()
    policy = roles[role] if role else "9999999999999999999"
    sites = [await wix.new_site()] if on_site else []
    body = {"subjectsAssignments": [subject("ann@example.com", roles["Website Manager"]),
                                    subject("bob@example.com", policy, *sites)]}
    status, answer = await wix.call("POST", ACCOUNT_INVITE, AT_ACCOUNT, body)
    assert status == 400
    assert answer["details"]["validationError"]["fieldViolations"]
    assert wix.running.sandbox.state.invites == {}


async def test_account_invite_takes_at_most_50_invitees(wix: Wix) -> None:
    roles = await wix.roles()
    body = {"subjectsAssignments": [subject(f"u{n}@example.com", roles["Website Manager"])
                                    for n in range(51)]}
    status, _ = await wix.call("POST", ACCOUNT_INVITE, AT_ACCOUNT, body)
    assert status == 400


# -- site invites ---------------------------------------------------------------------------


async def test_site_invites_succeed_partially_and_name_the_header_site(wix: Wix) -> None:
    roles = await wix.roles()
    site_id = await wix.new_site()
    headers = {**KEY, "wix-site-id": site_id}
    body = {"policyIds": [roles["Website Manager"], roles["Blog Writer"]],
            "emails": ["ann@example.com", "broken@", "x@bounce.invalid"],
            "defaultEmailLanguage": "en"}
    status, answer = await wix.call("POST", SITE_INVITES, headers, body)
    assert status == 200
    [invite] = answer["invites"]
    assert (invite["siteId"], invite["email"], invite["status"]) == (
        site_id, "ann@example.com", "Pending")
    assert invite["policyIds"] == body["policyIds"]
    assert answer["failedEmails"] == ["broken@", "x@bounce.invalid"]
    assert wix.emails_sent() == {(site_id, "ann@example.com"): 1}


async def test_site_invite_for_a_site_not_owned_is_404(wix: Wix) -> None:
    roles = await wix.roles()
    stranger_site = wix.running.sandbox.add_site(
        "Foreign", "44444444-4444-4444-8444-444444444444", seeded=True).id
    for site_id in (stranger_site, str(uuid.uuid4())):
        status, answer = await wix.call(
            "POST", SITE_INVITES, {**KEY, "wix-site-id": site_id},
            {"policyIds": [roles["Website Manager"]], "emails": ["a@example.com"]})
        assert (status, code_of(answer)) == (404, "SITE_NOT_FOUND")
    assert wix.running.sandbox.state.invites == {}


async def test_site_invite_rejects_roles_restricted_from_sites_and_missing_header(
    wix: Wix,
) -> None:
    roles = await wix.roles()
    site_id = await wix.new_site()
    body = {"policyIds": [roles["Billing Manager"]], "emails": ["a@example.com"]}
    status, _ = await wix.call("POST", SITE_INVITES, {**KEY, "wix-site-id": site_id}, body)
    assert status == 400
    status, answer = await wix.call("POST", SITE_INVITES, AT_ACCOUNT, body)
    assert status == 400
    assert answer["details"]["validationError"]["fieldViolations"][0]["field"] == "wix-site-id"


async def test_repeated_invite_and_resend_each_send_another_email(wix: Wix) -> None:
    roles = await wix.roles()
    site_id = await wix.new_site()
    headers = {**KEY, "wix-site-id": site_id}
    body = {"policyIds": [roles["Website Manager"]], "emails": ["Ann@Example.com"]}
    _, first = await wix.call("POST", SITE_INVITES, headers, body)
    await wix.call("POST", SITE_INVITES, headers, body)
    invite_id = first["invites"][0]["id"]
    status, resent = await wix.call("POST", f"/invites/site-invite/{invite_id}/resend",
                                    headers, {})
    assert status == 200 and resent["invite"]["id"] == invite_id
    assert wix.emails_sent() == {(site_id, "ann@example.com"): 3}
    assert wix.running.sandbox.snapshot()["duplicate_invite_emails"] == 2


async def test_revoked_invite_is_deleted_and_can_no_longer_be_resent(wix: Wix) -> None:
    roles = await wix.roles()
    site_id = await wix.new_site()
    headers = {**KEY, "wix-site-id": site_id}
    _, created = await wix.call("POST", SITE_INVITES, headers,
                                {"policyIds": [roles["Website Manager"]],
                                 "emails": ["ann@example.com"]})
    invite_id = created["invites"][0]["id"]
    status, answer = await wix.call("POST", f"/invites/site-invite/{invite_id}/revoke",
                                    headers, {})
    assert (status, answer) == (200, {})
    assert wix.running.sandbox.state.invites[invite_id].status.value == "Deleted"
    for action in ("resend", "revoke"):
        status, answer = await wix.call(
            "POST", f"/invites/site-invite/{invite_id}/{action}", headers, {})
        assert (status, code_of(answer)) == (404, "INVITE_NOT_FOUND")

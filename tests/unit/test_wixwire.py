"""The Wix wire contract (wix-api.md) as pure functions: bodies built, answers parsed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bulkops.errors import ConfigError, WixApiError
from bulkops.wixwire import (
    AccountInvitee,
    CreatedSite,
    InviteResult,
    Role,
    account_invite_body,
    api_error,
    checked_base_url,
    create_site_body,
    decode_json_body,
    first_query_body,
    next_query_body,
    parse_account_invites,
    parse_created_site,
    parse_retry_after,
    parse_roles,
    parse_site,
    parse_site_invites,
    parse_sites_page,
    parse_timestamp,
    scrub,
    site_invite_body,
    transfer_body,
)

# --- base URL ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.wixapis.com", "https://www.wixapis.com"),
        ("https://www.wixapis.com/", "https://www.wixapis.com"),
        ("https://proxy.example.com:8443/wix/", "https://proxy.example.com:8443/wix"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.8.9.10", "http://127.8.9.10"),
        ("http://[::1]:9000", "http://[::1]:9000"),
        ("http://localhost:5000/", "http://localhost:5000"),
        ("http://LOCALHOST", "http://LOCALHOST"),
    ],
)
def test_base_url_accepts_https_anywhere_and_http_only_to_loopback(url: str, expected: str) -> None:
    assert checked_base_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://www.wixapis.com",
        "http://10.0.0.1:8080",
        "http://127.0.0.1.example.com",
        "http://[::ffff:8.8.8.8]",
        "http://localhost.example.com",
        "ftp://127.0.0.1",
        "www.wixapis.com",
        "https://",
        "https://host/?q=1",
    ],
)
def test_base_url_refuses_plain_http_off_loopback_and_malformed_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        checked_base_url(url)


# --- request bodies -----------------------------------------------------------------------------


def test_create_body_omits_absent_template_and_folder() -> None:
    assert create_site_body("Acme", None, None) == {"type": "WIX", "name": "Acme"}


def test_create_body_carries_template_and_folder() -> None:
    assert create_site_body("Acme", "t-1", "f-1") == {
        "type": "WIX", "name": "Acme", "templateId": "t-1", "folderId": "f-1",
    }


def test_first_query_page_sorts_newest_first_with_filter_and_limit() -> None:
    assert first_query_body({"folderId": "f"}, 100) == {
        "query": {
            "filter": {"folderId": "f"},
            "sort": [{"fieldName": "createdDate", "order": "DESC"}],
            "cursorPaging": {"limit": 100},
        }
    }


def test_first_query_page_without_filter_sends_no_filter_key() -> None:
    assert "filter" not in first_query_body(None, 10)["query"]


def test_later_query_pages_send_only_the_cursor() -> None:
    assert next_query_body("abc", 50) == {"query": {"cursorPaging": {"limit": 50, "cursor": "abc"}}}


@pytest.mark.parametrize("size", [0, 101, -1])
def test_page_size_outside_1_to_100_is_a_programming_error(size: int) -> None:
    with pytest.raises(ValueError):
        first_query_body(None, size)


def test_transfer_body_names_the_source_and_turns_notifications_off() -> None:
    assert transfer_body("s-1", "acc-src") == {
        "siteTransfer": {
            "siteId": "s-1", "sourceAccountId": "acc-src", "enableNotifications": False,
        }
    }


def test_account_invite_body_scopes_roles_to_sites_with_wix_spelling_metasiteid() -> None:
    body = account_invite_body([AccountInvitee("a@x.com", ("1", "2"), ("site-a",))], "de")
    scope = [{"fullNameResource": {"siteContext": {"metasiteId": "site-a"}}}]
    assert body == {
        "subjectsAssignments": [
            {
                "subjectEmail": "a@x.com",
                "assignments": [
                    {"policyId": "1", "assignments": scope},
                    {"policyId": "2", "assignments": scope},
                ],
            }
        ],
        "defaultEmailLanguage": "de",
    }


def test_account_invite_without_sites_gives_the_role_account_wide() -> None:
    body = account_invite_body([AccountInvitee("a@x.com", ("1",))], "en")
    assert body["subjectsAssignments"][0]["assignments"] == [{"policyId": "1", "assignments": []}]


def test_account_invite_body_refuses_more_than_50_invitees() -> None:
    invitees = [AccountInvitee(f"p{i}@x.com", ("1",)) for i in range(51)]
    with pytest.raises(ValueError, match="50"):
        account_invite_body(invitees, "en")
    assert len(account_invite_body(invitees[:50], "en")["subjectsAssignments"]) == 50


def test_site_invite_body_gives_the_same_roles_to_every_email() -> None:
    assert site_invite_body(("1",), ("a@x.com", "b@x.com"), "en") == {
        "policyIds": ["1"], "emails": ["a@x.com", "b@x.com"], "defaultEmailLanguage": "en",
    }


# --- success bodies -----------------------------------------------------------------------------


def test_empty_success_body_reads_as_an_empty_object() -> None:
    assert decode_json_body("") == {}
    assert decode_json_body("  \n") == {}


@pytest.mark.parametrize("text", ["<html>Bad gateway</html>", "[1, 2]", "\"ok\"", "{"])
def test_success_body_that_is_not_a_json_object_is_invalid_response(text: str) -> None:
    with pytest.raises(WixApiError) as caught:
        decode_json_body(text)
    assert (caught.value.status, caught.value.code) == (200, "INVALID_RESPONSE")


def test_created_site_id_is_the_meta_site_id_not_the_component_id() -> None:
    body = {"project": {"metaSiteId": "meta-1", "siteId": "comp-1", "templateId": "t"}}
    assert parse_created_site(body) == CreatedSite(site_id="meta-1", component_id="comp-1")


def test_created_site_without_component_id_is_fine() -> None:
    assert parse_created_site({"project": {"metaSiteId": "m"}}) == CreatedSite("m", None)


@pytest.mark.parametrize("body", [{}, {"project": {}}, {"project": {"siteId": "c"}}])
def test_created_site_without_meta_site_id_is_invalid_response(body: dict[str, object]) -> None:
    with pytest.raises(WixApiError, match="metaSiteId") as caught:
        parse_created_site(body)
    assert caught.value.code == "INVALID_RESPONSE"


def _site(**extra: object) -> dict[str, object]:
    return {"id": "s1", "createdDate": "2024-05-01T10:00:00Z", **extra}


def test_site_fields_are_parsed() -> None:
    site = parse_site(_site(
        name="acme", displayName="Acme Inc", ownerAccountId="acc", folderId="f",
        namespace="WIX", premium=True,
    ))
    assert site.id == "s1"
    assert (site.name, site.display_name) == ("acme", "Acme Inc")
    assert site.created_at == datetime(2024, 5, 1, 10, tzinfo=UTC).timestamp()
    assert (site.owner_account_id, site.folder_id, site.namespace, site.premium) == (
        "acc", "f", "WIX", True,
    )


def test_site_missing_optional_fields_reads_them_as_absent() -> None:
    site = parse_site(_site(premium="yes", folderId=None))
    assert (site.name, site.display_name) == ("", "")
    assert (site.owner_account_id, site.folder_id, site.namespace, site.premium) == (
        None, None, None, False,
    )


@pytest.mark.parametrize("raw", [{"createdDate": "2024-05-01T10:00:00Z"}, {"id": "s"},
                                 {"id": "s", "createdDate": "yesterday"}, "not an object"])
def test_site_without_id_or_valid_created_date_is_invalid_response(raw: object) -> None:
    with pytest.raises(WixApiError) as caught:
        parse_site(raw)
    assert caught.value.code == "INVALID_RESPONSE"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=UTC).timestamp()),
        ("2024-05-01T10:00:00.250Z", datetime(2024, 5, 1, 10, tzinfo=UTC).timestamp() + 0.25),
        ("2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10, tzinfo=UTC).timestamp()),
        ("2024-05-01T10:00:00", datetime(2024, 5, 1, 10, tzinfo=UTC).timestamp()),
        ("2024-05-01T10:00:00.123456789Z", datetime(2024, 5, 1, 10, tzinfo=UTC).timestamp()
         + 0.123456),
        ("soon", None),
    ],
)
def test_timestamps_are_iso_8601_and_utc_when_no_offset_is_given(
    text: str, expected: float | None
) -> None:
    assert parse_timestamp(text) == expected


def test_sites_page_follows_metadata_cursor_while_has_next() -> None:
    metadata = {"count": 1, "cursors": {"next": "c2"}, "hasNext": True}
    body = {"sites": [_site()], "metadata": metadata}
    page = parse_sites_page(body)
    assert [s.id for s in page.sites] == ["s1"]
    assert page.next_cursor == "c2"


@pytest.mark.parametrize(
    "metadata",
    [
        {"cursors": {"next": "c2"}, "hasNext": False},
        {"cursors": {"next": None}, "hasNext": False},
        {"cursors": {"next": None}},
        {},
    ],
)
def test_sites_page_is_last_when_has_next_is_false_or_no_cursor(
    metadata: dict[str, object],
) -> None:
    assert parse_sites_page({"sites": [], "metadata": metadata}).next_cursor is None


def test_sites_page_with_has_next_but_no_cursor_is_invalid_rather_than_silently_short() -> None:
    with pytest.raises(WixApiError, match="hasNext"):
        parse_sites_page({"sites": [], "metadata": {"cursors": {}, "hasNext": True}})


def test_sites_page_without_sites_key_is_empty() -> None:
    assert parse_sites_page({}).sites == []


def test_account_invites_match_each_requested_email_case_insensitively_in_request_order() -> None:
    body = {
        "successfulInvites": [{"id": "inv-b", "email": "B@X.com", "status": "Pending"}],
        "failedInvites": [{"subjectEmail": "a@x.COM", "errorMessage": "already a member"}],
    }
    assert parse_account_invites(body, ["a@x.com", "b@x.com", "c@x.com"]) == [
        InviteResult("a@x.com", None, "already a member"),
        InviteResult("b@x.com", "inv-b", None),
        InviteResult("c@x.com", None, None),  # not mentioned: the caller decides
    ]


def test_account_invite_refusal_without_reason_still_reads_as_refused() -> None:
    body = {"failedInvites": [{"subjectEmail": "a@x.com"}]}
    [result] = parse_account_invites(body, ["a@x.com"])
    assert result.invite_id is None and result.error


def test_email_both_invited_and_refused_counts_as_invited() -> None:
    body = {
        "successfulInvites": [{"id": "inv-a", "email": "a@x.com"}],
        "failedInvites": [{"subjectEmail": "a@x.com", "errorMessage": "dup"}],
    }
    assert parse_account_invites(body, ["a@x.com"]) == [InviteResult("a@x.com", "inv-a", None)]


def test_site_invites_map_invites_and_failed_emails_per_requested_email() -> None:
    body = {
        "invites": [{"id": "i-1", "email": "A@x.com", "siteId": "s"}],
        "failedEmails": ["b@x.com"],
    }
    results = parse_site_invites(body, ["a@x.com", "B@X.COM", "c@x.com"])
    assert [(r.email, r.invite_id, r.error is not None) for r in results] == [
        ("a@x.com", "i-1", False),
        ("B@X.COM", None, True),
        ("c@x.com", None, False),
    ]


def test_invite_answers_with_missing_lists_leave_every_email_unknown() -> None:
    assert parse_site_invites({}, ["a@x.com"]) == [InviteResult("a@x.com", None, None)]
    assert parse_account_invites({"successfulInvites": None}, ["a@x.com"]) == [
        InviteResult("a@x.com", None, None)
    ]


def test_roles_list_predefined_then_custom_ids_kept_as_strings() -> None:
    body = {
        "predefinedRoles": [
            {"id": "00123456789012345678", "title": "Website Manager", "description": "d"},
            {"id": 98765432109876543210, "title": "Billing Manager", "restrictFromLevel": "Site"},
        ],
        "customRoles": [{"id": "555", "title": "Helper", "restrictFromLevel": "Account"},
                        {"id": "556"}, {"title": "no id"}],
    }
    assert parse_roles(body) == [
        Role("00123456789012345678", "Website Manager", None),
        Role("98765432109876543210", "Billing Manager", "Site"),
        Role("555", "Helper", "Account"),
    ]


def test_roles_answer_without_lists_is_empty() -> None:
    assert parse_roles({}) == []


# --- errors -------------------------------------------------------------------------------------


def test_application_error_gives_code_and_message() -> None:
    text = json.dumps({"message": "site is gone", "details": {"applicationError": {
        "code": "SITE_NOT_FOUND", "description": "d", "data": {}}}})
    error = api_error(400, "Bad Request", text, request_id="r-1", retry_after=None)
    assert (error.status, error.code, error.message, error.request_id) == (
        400, "SITE_NOT_FOUND", "site is gone", "r-1",
    )
    assert "r-1" in str(error)


def test_application_error_without_message_falls_back_to_its_description() -> None:
    text = json.dumps({"details": {"applicationError": {"code": "X", "description": "why"}}})
    assert api_error(428, None, text, request_id=None, retry_after=None).message == "why"


def test_validation_error_puts_the_first_field_violations_in_the_message() -> None:
    violations = [{"field": f"f{i}", "description": f"bad {i}"} for i in range(5)]
    text = json.dumps({"message": "invalid", "details": {"validationError": {
        "fieldViolations": violations}}})
    error = api_error(400, "Bad Request", text, request_id=None, retry_after=None)
    assert error.code is None
    assert error.message == "invalid: f0: bad 0; f1: bad 1; f2: bad 2"


def test_a_message_that_quotes_its_field_violation_is_not_doubled() -> None:
    violation = {"field": "additions[0].hostName", "description": "must be under the domain"}
    text = json.dumps({"message": "additions[0].hostName: must be under the domain",
                       "details": {"validationError": {"fieldViolations": [violation]}}})
    error = api_error(400, "Bad Request", text, request_id=None, retry_after=None)
    assert error.message == "additions[0].hostName: must be under the domain"


@pytest.mark.parametrize(
    ("text", "reason", "expected"),
    [
        ("", "Service Unavailable", "Service Unavailable"),
        ("", None, "HTTP 502"),
        ("<p>\n  <b>bad   gateway</b></p>", "Bad Gateway", "<p> <b>bad gateway</b></p>"),
        ("x" * 1000, "Bad Gateway", "x" * 200),
        ("[]", "Bad Request", "[]"),
        ("{}", "Conflict", "Conflict"),
    ],
)
def test_error_bodies_that_are_empty_or_not_json_still_give_a_short_message(
    text: str, reason: str | None, expected: str
) -> None:
    error = api_error(502, reason, text, request_id=None, retry_after=None)
    assert (error.code, error.message) == (None, expected)


def test_error_keeps_retry_after() -> None:
    assert api_error(429, None, "", request_id=None, retry_after=2.5).retry_after == 2.5


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("-3", None),
        ("soon", None),
        ("Wed, 01 May 2024 10:00:30 GMT", 30.0),
        ("Wed, 01 May 2024 09:59:00 GMT", 0.0),  # a date in the past: retry now
    ],
)
def test_retry_after_is_delta_seconds_or_http_date(
    value: str | None, expected: float | None
) -> None:
    now = datetime(2024, 5, 1, 10, tzinfo=UTC).timestamp()
    assert parse_retry_after(value, now=now) == expected


def test_scrub_masks_every_occurrence_of_the_secret() -> None:
    assert scrub("key=k3y and k3y", "k3y") == "key=*** and ***"
    assert scrub("nothing", "") == "nothing"

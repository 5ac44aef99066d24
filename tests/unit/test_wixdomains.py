"""The Domains wire format against wix-domains.md: ids, bodies, query strings, parsing."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import pytest

from bulkops.errors import WixApiError
from bulkops.wixdomains import (
    AssignmentType,
    ConnectionType,
    DnsRecord,
    availability_query,
    comparable_values,
    create_400_reason,
    create_connected_domain_body,
    domain_id,
    domain_path,
    list_connected_domains_query,
    means_not_connected,
    parse_availability,
    parse_connected_domain,
    parse_connected_domains_page,
    parse_dns_zone,
    parse_setup_info,
    query_string,
    update_dns_zone_body,
)


@pytest.mark.parametrize(("given", "sent"), [
    ("Client.COM", "client.com"),
    ("client.com.", "client.com"),
    ("  shop.client.com ", "shop.client.com"),
    ("www.client.com", "client.com"),  # inferred: ids go without www.
    ("xn--bcher-kva.de", "xn--bcher-kva.de"),
])
def test_domain_id_is_lowercase_ascii_without_trailing_dot(given: str, sent: str) -> None:
    assert domain_id(given) == sent


@pytest.mark.parametrize("bad", ["bücher.de", "client", "", "client..com", "-a.com", "a_b.com",
                                 "1.2.3.4"])
def test_domain_id_refuses_non_ascii_and_non_names_before_sending(bad: str) -> None:
    with pytest.raises(ValueError):
        domain_id(bad)


def test_non_ascii_refusal_hints_at_the_ascii_form() -> None:
    with pytest.raises(ValueError, match="xn--"):
        domain_id("bücher.de")


def test_domain_path_puts_the_bare_lowercase_domain() -> None:
    assert domain_path("/domains/v1/dns-zones", "Client.com.", "/preview") == \
        "/domains/v1/dns-zones/client.com/preview"


def test_query_string_flattens_nested_names_by_dots_and_repeats_arrays() -> None:
    text = query_string({"query": "green bakery", "paging": {"limit": 10, "cursor": None},
                         "tlds": ["com", "net"]})
    assert parse_qsl(text[1:]) == [("query", "green bakery"), ("paging.limit", "10"),
                                   ("tlds", "com"), ("tlds", "net")]
    assert query_string({"paging": {"cursor": None}}) == ""


def test_list_query_sends_limit_and_cursor() -> None:
    assert list_connected_domains_query(100, None) == "?paging.limit=100"
    assert parse_qsl(list_connected_domains_query(5, "c/1=")[1:]) == [
        ("paging.limit", "5"), ("paging.cursor", "c/1=")]
    with pytest.raises(ValueError):
        list_connected_domains_query(101, None)


def test_availability_query_carries_the_domain() -> None:
    assert availability_query("Client.com") == "?domain=client.com"


def test_create_body_for_a_root_domain() -> None:
    body = create_connected_domain_body("Client.com", ConnectionType.POINTING,
                                        AssignmentType.REDIRECT, True)
    assert body == {"connectedDomain": {"domain": "client.com", "connectionType": "POINTING",
                                        "siteInfo": {"assignmentType": "REDIRECT"},
                                        "suppressNotifications": True}}


def test_create_body_for_a_subdomain_omits_connection_type() -> None:
    body = create_connected_domain_body("shop.client.com", None, AssignmentType.PRIMARY, False)
    assert "connectionType" not in body["connectedDomain"]
    assert "connectedByEntri" not in body["connectedDomain"]


@pytest.mark.parametrize("kind", [ConnectionType.HIDDEN, ConnectionType.UNKNOWN])
def test_create_body_refuses_types_a_client_cannot_ask_for(kind: ConnectionType) -> None:
    with pytest.raises(ValueError):
        create_connected_domain_body("client.com", kind, None, True)


def record(kind: str, host: str, *values: str, ttl: int | None = 3600) -> DnsRecord:
    return DnsRecord(kind, host, values, ttl)


def test_zone_update_body_has_additions_and_deletions_and_never_dnssec() -> None:
    body = update_dns_zone_body([record("MX", "client.com", "5 mx.example.net")],
                                [record("A", "client.com", "1.2.3.4", ttl=None)])
    assert body == {
        "additions": [{"type": "MX", "hostName": "client.com", "ttl": 3600,
                       "values": ["5 mx.example.net"]}],
        "deletions": [{"type": "A", "hostName": "client.com", "values": ["1.2.3.4"]}],
    }


def test_zone_update_allows_ten_of_each_and_refuses_eleven() -> None:
    ten = [record("TXT", f"t{i}.client.com", "x") for i in range(10)]
    assert len(update_dns_zone_body(ten, ten)["additions"]) == 10
    with pytest.raises(ValueError):
        update_dns_zone_body([*ten, record("TXT", "t.client.com", "x")], [])
    with pytest.raises(ValueError):
        update_dns_zone_body([], [*ten, record("TXT", "t.client.com", "x")])


@pytest.mark.parametrize("bad", [
    record("NS", "client.com", "ns1.x.net"), record("SOA", "client.com", "x"),
    record("UNKNOWN", "client.com", "x"), record("A", "client.com"),
    record("A", "", "1.2.3.4"), DnsRecord("TXT", "client.com", tuple("x" * 51)),
])
def test_zone_update_refuses_ns_soa_unknown_and_empty_records(bad: DnsRecord) -> None:
    with pytest.raises(ValueError):
        update_dns_zone_body([bad], [])


def test_zone_update_needs_something_to_do() -> None:
    with pytest.raises(ValueError):
        update_dns_zone_body([], [])


CONNECTED = {"id": "client.com", "domain": "client.com", "connectionType": "POINTING",
             "siteInfo": {"id": "site-1", "assignmentType": "REDIRECT",
                          "redirectInfo": {"primaryDomain": "main.com"}},
             "suppressNotifications": True, "dnsPropagationStatus": "IN_PROGRESS",
             "createdDate": "2026-04-20T12:00:00.000Z", "updatedDate": "2026-04-20T12:00:00.000Z"}


def test_parse_connected_domain_reads_every_contract_field() -> None:
    got = parse_connected_domain({"connectedDomain": CONNECTED})
    assert (got.id, got.domain, got.connection_type, got.site_id, got.assignment_type,
            got.primary_domain, got.suppress_notifications, got.dns_propagation_status,
            got.created_date) == ("client.com", "client.com", "POINTING", "site-1",
                                  "REDIRECT", "main.com", True, "IN_PROGRESS",
                                  "2026-04-20T12:00:00.000Z")


def test_parse_connected_domain_tolerates_site_id_alias_and_missing_enums() -> None:
    got = parse_connected_domain({"connectedDomain": {"domain": "shop.client.com",
                                                      "siteInfo": {"siteId": "site-2"}}})
    assert got.site_id == "site-2"
    assert got.id == "shop.client.com"
    assert got.connection_type == "UNKNOWN_CONNECTION_TYPE"
    assert got.assignment_type == "UNKNOWN_ASSIGNMENT_TYPE"
    assert got.dns_propagation_status is None


def test_parse_connected_domain_without_a_name_is_invalid_response() -> None:
    with pytest.raises(WixApiError) as caught:
        parse_connected_domain({"connectedDomain": {}})
    assert caught.value.code == "INVALID_RESPONSE"


def test_parse_list_page_uses_paging_metadata_and_tolerates_metadata() -> None:
    body: dict[str, Any] = {"connectedDomains": [CONNECTED],
                            "pagingMetadata": {"count": 1, "cursors": {"next": "c2"},
                                               "hasNext": True}}
    page = parse_connected_domains_page(body)
    assert [d.domain for d in page.domains] == ["client.com"]
    assert page.next_cursor == "c2"
    alias = {"connectedDomains": [], "metadata": {"cursors": {"next": None}, "hasNext": False}}
    assert parse_connected_domains_page(alias).next_cursor is None


def test_parse_list_page_with_has_next_and_no_cursor_is_invalid() -> None:
    with pytest.raises(WixApiError):
        parse_connected_domains_page({"connectedDomains": [],
                                      "pagingMetadata": {"hasNext": True, "cursors": {}}})


def test_parse_setup_info_pointing_reads_singular_cname_value() -> None:
    info = parse_setup_info({"connectedDomainSetupInfo": {
        "connectedDomainId": "client.com",
        "registrar": {"name": "GoDaddy", "nameServers": ["ns01.domaincontrol.com"]},
        "pointingRecords": {
            "aRecord": {"hostName": "client.com", "ttl": 3600, "values": ["185.230.63.107"]},
            "cnameRecord": {"hostName": "www.client.com", "ttl": 3600,
                            "value": "pointing.wixdns.net"}}}})
    assert info.kind == "POINTING"
    assert info.records == (DnsRecord("A", "client.com", ("185.230.63.107",), 3600),
                            DnsRecord("CNAME", "www.client.com", ("pointing.wixdns.net",), 3600))
    assert (info.registrar_name, info.registrar_name_servers) == (
        "GoDaddy", ("ns01.domaincontrol.com",))


def test_parse_setup_info_nameservers_and_subdomain() -> None:
    ns = parse_setup_info({"connectedDomainSetupInfo": {
        "connectedDomainId": "client.com",
        "nameserverRecord": {"nsRecord": {"hostName": "client.com", "ttl": "3600",
                                          "values": ["ns0.wixdns.net", "ns1.wixdns.net"]}}}})
    assert ns.kind == "NAMESERVERS"
    assert ns.records == (DnsRecord("NS", "client.com", ("ns0.wixdns.net", "ns1.wixdns.net"),
                                    3600),)
    sub = parse_setup_info({"connectedDomainSetupInfo": {
        "connectedDomainId": "shop.client.com",
        "subdomainRecords": {"cnameRecords": [{"hostName": "shop.client.com", "ttl": 3600,
                                               "value": "cdn1.wixdns.net"}]}}})
    assert sub.kind == "SUBDOMAIN"
    assert sub.records[0].values == ("cdn1.wixdns.net",)


def test_parse_setup_info_without_records_is_invalid_response() -> None:
    with pytest.raises(WixApiError):
        parse_setup_info({"connectedDomainSetupInfo": {"connectedDomainId": "client.com"}})


def test_parse_dns_zone_reads_full_names_and_tolerates_at_and_relative_hosts() -> None:
    zone = parse_dns_zone({"dnsZone": {
        "id": "client.com", "domainName": "client.com", "dnssecEnabled": False,
        "dnssecInfo": {"keyTag": 0, "digest": "x"},
        "records": [{"type": "A", "hostName": "@", "ttl": 3600, "values": ["1.2.3.4"]},
                    {"type": "cname", "hostName": "www", "ttl": 3600, "values": ["x.net"]},
                    {"type": "MX", "hostName": "client.com", "values": ["5 mx.x.net"]}]}})
    assert [r.key for r in zone.records] == [("A", "client.com"), ("CNAME", "www.client.com"),
                                              ("MX", "client.com")]
    assert zone.record("mx", "client.com") is not None
    assert zone.records[2].ttl is None


def test_parse_availability_wrapped_and_flat() -> None:
    wrapped = parse_availability({"availability": {"domain": "client.com", "available": False,
                                                   "premium": False,
                                                   "premiumType": "UNKNOWN_PREMIUM_TYPE"}})
    assert (wrapped.available, wrapped.premium, wrapped.premium_type) == (
        False, False, "UNKNOWN_PREMIUM_TYPE")
    assert parse_availability({"domain": "x.com", "available": True}).available is True
    with pytest.raises(WixApiError):
        parse_availability({"availability": {"domain": "x.com"}})


@pytest.mark.parametrize(("message", "reason"), [
    ("Invalid domain: x.com is still available for purchase", "FOR_SALE"),
    ("Invalid domain: the TLD is restricted", "RESTRICTED_TLD"),
    ("Invalid connection type: omit it for a subdomain", "INVALID_CONNECTION_TYPE"),
    ("something else", None),
])
def test_create_400_labels_are_told_apart_by_message(message: str, reason: str | None) -> None:
    assert create_400_reason(400, message) == reason
    assert create_400_reason(403, message) is None


def test_a_404_means_not_connected_unless_it_names_a_bad_key_or_account() -> None:
    assert means_not_connected(404, "NOT_FOUND")
    assert means_not_connected(404, None)
    assert not means_not_connected(404, "TARGET_ACCOUNT_NOT_FOUND")
    assert not means_not_connected(403, "NOT_FOUND")


def test_comparable_values_ignore_txt_quotes_and_host_trailing_dots() -> None:
    assert comparable_values(record("TXT", "c.com", '"v=spf1 -all"')) == {"v=spf1 -all"}
    assert comparable_values(record("MX", "c.com", "5 MX.X.net.")) == {"5 mx.x.net"}
    assert comparable_values(record("A", "c.com", "1.2.3.4", "1.2.3.4")) == {"1.2.3.4"}

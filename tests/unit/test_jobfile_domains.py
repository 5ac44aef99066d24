"""Domain rows (`connect_domain`, `set_dns_record`) through the job file's public entry points:
one row on its own (`check_row`), then whole files (`load_job`, `check_job`) in CSV, JSON and
JSON Lines, for what only the file as a whole can tell (contract.md, "Job files";
wix-domains.md, "What a bulk onboarding tool should offer")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jobfiles import Problem, problems, write_file

from bulkops.jobfile import check_job, load_job
from bulkops.jobrows import check_row, derive_key
from bulkops.model import Action, OpSpec
from bulkops.report import values_cell

SITE_ID = "0f6d1e2a-3b4c-4d5e-8f60-718293a4b5c6"
LINE = 7
HEADER = "action,key,site,domain,connection,assignment,notify,record_type,host,values,ttl\n"
POINTING_REASON = ("client.com is connected with connection=pointing at line {line}: its DNS "
                   "stays with the client's provider, so Wix hosts no zone to set records in "
                   "(use nameservers)")


def connect(**fields: object) -> dict[str, object]:
    return {"action": "connect_domain", "site": SITE_ID, **fields}


def record(**fields: object) -> dict[str, object]:
    return {"action": "set_dns_record", "domain": "client.com", **fields}


def spec_of(fields: dict[str, object], **defaults: object) -> OpSpec:
    result = check_row(LINE, fields, defaults)
    assert result.errors == () and result.missing == (), result.errors
    assert result.spec is not None
    return result.spec


def row_problems(fields: dict[str, object]) -> list[Problem]:
    """Every (line, column, reason) of one row; it must be refused."""
    result = check_row(LINE, fields)
    assert result.spec is None
    return [(error.line, error.column, error.reason) for error in result.errors]


def one_problem(fields: dict[str, object]) -> tuple[str | None, str]:
    [(line, column, reason)] = row_problems(fields)
    assert line == LINE
    return column, reason


def csv_file(tmp_path: Path, *rows: str, name: str = "job.csv") -> Path:
    return write_file(tmp_path, HEADER + "".join(row + "\n" for row in rows), name)


def csv_row(action: str, key: str = "", site: str = "", domain: str = "client.com",
            connection: str = "", assignment: str = "", notify: str = "",
            record_type: str = "", host: str = "", values: str = "", ttl: str = "") -> str:
    return ",".join((action, key, site, domain, connection, assignment, notify, record_type,
                     host, values, ttl))


def connect_csv(connection: str = "nameservers", key: str = "", domain: str = "client.com",
                site: str = SITE_ID) -> str:
    return csv_row("connect_domain", key=key, site=site, domain=domain, connection=connection)


def dns_csv(record_type: str, host: str, values: str, domain: str = "client.com",
            key: str = "", ttl: str = "") -> str:
    return csv_row("set_dns_record", key=key, domain=domain, record_type=record_type,
                   host=host, values=values, ttl=ttl)


# -- connect_domain: valid rows ------------------------------------------------------------


@pytest.mark.parametrize("connection", ["pointing", "nameservers", " Pointing ", "NAMESERVERS"])
def test_a_root_domain_connects_with_either_connection_in_any_case(connection: str) -> None:
    spec = spec_of(connect(domain="client.com", connection=connection))
    assert spec == OpSpec(line=LINE, key=spec.key, action=Action.CONNECT_DOMAIN, site=SITE_ID,
                          domain="client.com", connection=connection.strip().lower(),
                          assignment="redirect", notify=False)
    assert spec.key.startswith("connect_domain-")


@pytest.mark.parametrize("domain", ["shop.client.com", "shop.client.co.uk", "a.b.client.com"])
def test_a_subdomain_connects_without_a_connection(domain: str) -> None:
    spec = spec_of(connect(domain=domain))
    assert (spec.domain, spec.connection) == (domain, None)


def test_client_co_uk_is_a_root_domain_under_a_two_label_public_suffix() -> None:
    """The Public Suffix List, not the count of dots, tells root domains from subdomains."""
    assert spec_of(connect(domain="client.co.uk", connection="pointing")).connection == "pointing"
    assert one_problem(connect(domain="client.co.uk"))[0] == "connection"
    assert one_problem(connect(domain="shop.client.co.uk", connection="pointing"))[0] == \
        "connection"


def test_assignment_defaults_to_redirect_and_takes_primary_in_any_case() -> None:
    """`primary` silently unassigns the site's current address: never the default."""
    assert spec_of(connect(domain="client.com", connection="pointing")).assignment == "redirect"
    for written in ("primary", "Primary", " PRIMARY "):
        spec = spec_of(connect(domain="client.com", connection="pointing", assignment=written))
        assert spec.assignment == "primary"
    spec = spec_of(connect(domain="client.com", connection="pointing", assignment="Redirect"))
    assert spec.assignment == "redirect"


def test_the_default_assignment_is_part_of_the_derived_key() -> None:
    """A row that leaves assignment out is the same operation as one that writes `redirect`."""
    implicit = check_row(1, connect(domain="client.com", connection="pointing")).key
    explicit = check_row(9, connect(domain="client.com", connection="pointing",
                                    assignment="REDIRECT")).key
    primary = check_row(1, connect(domain="client.com", connection="pointing",
                                   assignment="primary")).key
    assert implicit == explicit != primary


@pytest.mark.parametrize(("notify", "expected"), [
    ("yes", True), ("no", False), ("true", True), ("false", False), ("1", True), ("0", False),
    (" YES ", True), ("False", False), ("on", True), ("off", False), (True, True),
    (False, False), ("", False),
])
def test_notify_reads_yes_no_true_false_1_0_and_json_booleans(
    notify: object, expected: bool
) -> None:
    spec = spec_of(connect(domain="client.com", connection="pointing", notify=notify))
    assert spec.notify is expected


def test_notify_is_off_when_absent() -> None:
    assert spec_of(connect(domain="client.com", connection="pointing")).notify is False


@pytest.mark.parametrize(("written", "domain", "connection"), [
    ("CLIENT.COM", "client.com", "pointing"),
    ("client.com.", "client.com", "pointing"),
    ("www.client.com", "client.com", "pointing"),
    (" WWW.Client.Com. ", "client.com", "pointing"),
    ("www.client.co.uk", "client.co.uk", "pointing"),
    ("www.shop.client.com", "shop.client.com", None),
    ("www.com", "www.com", "pointing"),  # `www` is the name itself here, not a prefix to drop
    ("xn--bcher-kva.de", "xn--bcher-kva.de", "nameservers"),
])
def test_the_domain_is_normalised_to_the_id_wix_names_it_by(
    written: str, domain: str, connection: str | None
) -> None:
    fields = connect(domain=written)
    if connection is not None:
        fields["connection"] = connection
    spec = spec_of(fields)
    assert (spec.domain, spec.connection) == (domain, connection)


def test_spellings_of_one_domain_are_one_operation() -> None:
    keys = {check_row(line, connect(domain=written, connection="pointing")).key
            for line, written in enumerate(("client.com", "WWW.Client.COM.", "client.com."), 1)}
    assert len(keys) == 1


# -- connect_domain: refused rows ----------------------------------------------------------


@pytest.mark.parametrize(("domain", "reason"), [
    ("bücher.de", "'bücher.de' is not ASCII: write the domain in its ASCII form, "
                  "'xn--bcher-kva.de'"),
    ("Café.fr", "'Café.fr' is not ASCII: write the domain in its ASCII form, 'xn--caf-dma.fr'"),
    ("https://client.com/", "'https://client.com/' is an address, not a domain name: write "
                            "'client.com'"),
    ("http://www.Client.com/shop", "'http://www.Client.com/shop' is an address, not a domain "
                                   "name: write 'client.com'"),
    ("https://client.com:8443/x", "'https://client.com:8443/x' is an address, not a domain "
                                  "name: write 'client.com'"),
    ("client.com/contact", "'client.com/contact' is an address, not a domain name: write "
                           "'client.com'"),
    ("https://www.bücher.de/", "'https://www.bücher.de/' is an address, not a domain name: "
                               "write 'xn--bcher-kva.de'"),
    ("https://", "'https://' is an address, not a domain name: write the domain alone (e.g. "
                 "client.com)"),
    ("client\u3002com", "'client\u3002com' is not ASCII: write the domain in its ASCII form, "
                        "'client.com'"),
    ("client", "'client' has no top-level domain: write it in full (e.g. client.com)"),
    ("client.notatld", "'client.notatld' does not end in a known top-level domain (.notatld)"),
    ("www.client", "'www.client' does not end in a known top-level domain (.client)"),
    ("co.uk", "'co.uk' is a public suffix, not a domain: write the client's name under it"),
    ("com", "'com' is a public suffix, not a domain: write the client's name under it"),
    ("client..com", "'client..com' is not a domain name: letters, digits and hyphens between "
                    "dots (e.g. client.com)"),
    ("-client.com", "'-client.com' is not a domain name: letters, digits and hyphens between "
                    "dots (e.g. client.com)"),
    ("client_shop.com", "'client_shop.com' is not a domain name: letters, digits and hyphens "
                        "between dots (e.g. client.com)"),
    ("client shop.com", "'client shop.com' is not a domain name: letters, digits and hyphens "
                        "between dots (e.g. client.com)"),
    ("*.client.com", "'*.client.com' is not a domain name: letters, digits and hyphens between "
                     "dots (e.g. client.com)"),
])
def test_a_bad_domain_is_refused_with_what_to_write(domain: str, reason: str) -> None:
    assert one_problem(connect(domain=domain, connection="pointing")) == ("domain", reason)


def test_a_domain_that_is_too_long_is_refused() -> None:
    domain = ".".join(["a" * 63] * 4) + ".com"
    column, reason = one_problem(connect(domain=domain, connection="pointing"))
    assert column == "domain" and "is not a domain name" in reason


def test_a_connection_on_a_subdomain_is_refused() -> None:
    assert one_problem(connect(domain="shop.client.com", connection="pointing")) == (
        "connection", "shop.client.com is a subdomain: Wix connects it without a connection "
                      "type, so leave connection empty")


@pytest.mark.parametrize("connection", [None, "", "  "])
def test_a_root_domain_without_a_connection_is_refused_with_both_choices(
    connection: str | None
) -> None:
    fields = connect(domain="client.com")
    if connection is not None:
        fields["connection"] = connection
    assert one_problem(fields) == (
        "connection", "connection is required for the root domain client.com: pointing (its "
                      "DNS stays with the client's provider) or nameservers (Wix hosts its DNS "
                      "zone)")


@pytest.mark.parametrize(("connection", "reason"), [
    ("poiting", "connection must be pointing or nameservers, not 'poiting': did you mean "
                "pointing?"),
    ("Pointer", "connection must be pointing or nameservers, not 'Pointer': did you mean "
                "pointing?"),
    ("nameserver", "connection must be pointing or nameservers, not 'nameserver': did you mean "
                   "nameservers?"),
    ("name servers", "connection must be pointing or nameservers, not 'name servers': did you "
                     "mean nameservers?"),
    ("dns", "connection must be pointing or nameservers, not 'dns'"),
])
def test_a_misspelt_connection_suggests_the_right_one(connection: str, reason: str) -> None:
    assert one_problem(connect(domain="client.com", connection=connection)) == (
        "connection", reason)


@pytest.mark.parametrize(("assignment", "reason"), [
    ("main", "assignment must be redirect or primary, not 'main'"),
    ("redirection", "assignment must be redirect or primary, not 'redirection': did you mean "
                    "redirect?"),
    ("primry", "assignment must be redirect or primary, not 'primry': did you mean primary?"),
])
def test_a_bad_assignment_is_refused(assignment: str, reason: str) -> None:
    assert one_problem(connect(domain="client.com", connection="pointing",
                               assignment=assignment)) == ("assignment", reason)


@pytest.mark.parametrize(("notify", "reason"), [
    ("maybe", "notify must be yes or no, not 'maybe'"),
    ("2", "notify must be yes or no, not '2'"),
    (2, "notify must be yes or no (JSON: true or false), not 2"),
    (1, "notify must be yes or no (JSON: true or false), not 1"),
    (["yes"], "notify must be yes or no (JSON: true or false)"),
])
def test_a_bad_notify_is_refused(notify: object, reason: str) -> None:
    assert one_problem(connect(domain="client.com", connection="pointing",
                               notify=notify)) == ("notify", reason)


def test_connect_needs_a_site_and_a_domain() -> None:
    result = check_row(LINE, {"action": "connect_domain", "connection": "pointing"})
    assert result.spec is None and result.errors == ()
    assert result.missing == ("site", "domain")


def test_every_bad_column_of_a_connect_row_is_reported_together() -> None:
    columns = [column for _, column, _ in row_problems(connect(
        site="nope", domain="https://client.com", connection="dns", assignment="main",
        notify="maybe"))]
    assert columns == ["site", "domain", "connection", "assignment", "notify"]


@pytest.mark.parametrize(("fields", "column"), [
    (connect(domain="client.com", connection="pointing", ttl="3600"), "ttl"),
    (connect(domain="client.com", connection="pointing", host="www.client.com"), "host"),
    (record(record_type="A", host="@", values="1.2.3.4", connection="pointing"), "connection"),
    (record(record_type="A", host="@", values="1.2.3.4", site=SITE_ID), "site"),
])
def test_a_column_the_action_does_not_use_is_refused(
    fields: dict[str, object], column: str
) -> None:
    action = fields["action"]
    assert one_problem(fields) == (column, f"column {column} is not used by action {action}")


# -- set_dns_record: valid rows --------------------------------------------------------------


def test_an_a_record_at_the_apex_written_as_at() -> None:
    spec = spec_of(record(record_type="a", host="@", values="185.230.63.107; 185.230.63.186",
                          ttl="3600"))
    assert spec == OpSpec(line=LINE, key=spec.key, action=Action.SET_DNS_RECORD,
                          domain="client.com", record_type="A", host="client.com",
                          values=("185.230.63.107", "185.230.63.186"), ttl=3600)


def test_at_and_the_apex_written_in_full_are_the_same_operation() -> None:
    at = check_row(1, record(record_type="A", host="@", values="1.2.3.4"))
    full = check_row(2, record(record_type="A", host="Client.COM.", values="1.2.3.4"))
    assert at.spec is not None and full.spec is not None
    assert at.spec.host == full.spec.host == "client.com" and at.key == full.key


@pytest.mark.parametrize(("record_type", "host", "values", "expected"), [
    ("A", "www.client.com", "1.2.3.4;5.6.7.8", ("1.2.3.4", "5.6.7.8")),
    ("AAAA", "@", "2001:db8::1", ("2001:db8::1",)),
    ("AAAA", "@", "2001:DB8:0:0::1; 2001:db8::1", ("2001:db8::1",)),
    ("CNAME", "www.client.com", "pointing.wixdns.net", ("pointing.wixdns.net",)),
    ("CNAME", "shop.client.com", "shops.myshopify.com.", ("shops.myshopify.com.",)),
    ("MX", "@", "10 mx1.mail.com;20   mx2.mail.com", ("10 mx1.mail.com", "20 mx2.mail.com")),
    ("TXT", "_dmarc.client.com", "v=DMARC1; p=none; rua=mailto:d@client.com",
     ("v=DMARC1; p=none; rua=mailto:d@client.com",)),
    ("TXT", "@", '"v=spf1 include:_spf.google.com ~all";"google-site-verification=abc"',
     ("v=spf1 include:_spf.google.com ~all", "google-site-verification=abc")),
    ("TXT", "@", '"v=spf1 -all" ; "x=y";', ("v=spf1 -all", "x=y")),
    ("TXT", "@", '"say \\"hi\\"; twice"', ('say "hi"; twice',)),
    ("TXT", "@", 'say "hi"', ('say "hi"',)),
    ("SRV", "_sip._tcp.client.com", "10 5 5060 sip.client.com",
     ("10 5 5060 sip.client.com",)),
    ("SRV", "_sip._tcp.client.com", "0 0 0 .", ("0 0 0 .",)),
    ("TXT", "s1._domainkey.client.com", "v=DKIM1; k=rsa; p=MIGf",
     ("v=DKIM1; k=rsa; p=MIGf",)),
    ("A", "*.client.com", "1.2.3.4", ("1.2.3.4",)),
])
def test_values_are_read_for_the_records_type(
    record_type: str, host: str, values: str, expected: tuple[str, ...]
) -> None:
    spec = spec_of(record(record_type=record_type, host=host, values=values))
    assert spec.values == expected
    assert spec.host == (host if host != "@" else "client.com")


def test_a_txt_value_with_semicolons_is_one_value() -> None:
    """DMARC and DKIM values hold ';' themselves: a TXT cell is never split at them."""
    spec = spec_of(record(record_type="TXT", host="_dmarc.client.com",
                          values="v=DMARC1; p=none"))
    assert spec.values == ("v=DMARC1; p=none",)


def test_json_lists_are_the_values_as_they_are() -> None:
    txt = spec_of(record(record_type="TXT", host="@",
                         values=["v=DMARC1; p=none", "google-site-verification=abc"]))
    assert txt.values == ("v=DMARC1; p=none", "google-site-verification=abc")
    a = spec_of(record(record_type="A", host="@", values=["1.2.3.4", " 5.6.7.8 "]))
    assert a.values == ("1.2.3.4", "5.6.7.8")


@pytest.mark.parametrize(("record_type", "values", "expected"), [
    ("A", "1.2.3.4;5.6.7.8;1.2.3.4", ("1.2.3.4", "5.6.7.8")),
    ("A", ["1.2.3.4", "1.2.3.4"], ("1.2.3.4",)),
    ("MX", "10 mx.mail.com;10  mx.mail.com", ("10 mx.mail.com",)),
    ("TXT", '"a";"b";"a"', ("a", "b")),
])
def test_repeated_values_are_dropped_keeping_the_first_order(
    record_type: str, values: object, expected: tuple[str, ...]
) -> None:
    """The record holds a set: the (type, host) will hold exactly these values."""
    assert spec_of(record(record_type=record_type, host="@", values=values)).values == expected


@pytest.mark.parametrize(("record_type", "values"), [
    ("TXT", ("v=DMARC1; p=none",)),
    ("TXT", ("v=spf1 -all", "google-site-verification=abc")),
    ("TXT", ('say "hi"; twice', "x")),
    ("TXT", ('"already quoted"',)),
    ("A", ("1.2.3.4", "5.6.7.8")),
    ("MX", ("10 mx1.mail.com", "20 mx2.mail.com")),
])
def test_values_as_a_report_writes_them_read_back_the_same(
    record_type: str, values: tuple[str, ...]
) -> None:
    """`report --only failed` gives a file to submit again as it is: its values cell must
    read back as the values the row had."""
    cell = values_cell(record_type, values)
    assert spec_of(record(record_type=record_type, host="@", values=cell)).values == values


@pytest.mark.parametrize(("ttl", "seconds"), [
    ("3600", 3600), (" 300 ", 300), ("3600.0", 3600), ("3,600", 3600), ("86,400.00", 86400),
    ("0", 0), (3600, 3600), (3600.0, 3600), ("", None), (None, None),
    (2**31 - 1, 2**31 - 1),
])
def test_ttl_is_whole_seconds_as_text_a_spreadsheet_number_or_json(
    ttl: object, seconds: int | None
) -> None:
    fields = record(record_type="A", host="@", values="1.2.3.4")
    if ttl is not None:
        fields["ttl"] = ttl
    assert spec_of(fields).ttl == seconds


# -- set_dns_record: refused rows ------------------------------------------------------------


@pytest.mark.parametrize(("record_type", "host", "values", "reason"), [
    ("A", "@", "1.2.3", "'1.2.3' is not an IPv4 address (an A record's value, e.g. "
                        "185.230.63.107)"),
    ("A", "@", "2001:db8::1", "'2001:db8::1' is not an IPv4 address (an A record's value, e.g. "
                              "185.230.63.107)"),
    ("A", "@", "client.com", "'client.com' is not an IPv4 address (an A record's value, e.g. "
                             "185.230.63.107)"),
    ("A", "@", "1.2.3.4 5.6.7.8", "'1.2.3.4 5.6.7.8' is not an IPv4 address (an A record's "
                                  "value, e.g. 185.230.63.107): separate the values with ';'"),
    ("A", "@", "1.2.3.4, 5.6.7.8", "'1.2.3.4, 5.6.7.8' is not an IPv4 address (an A record's "
                                   "value, e.g. 185.230.63.107): separate the values with ';'"),
    ("A", "@", "1.2.3.4;;5.6.7.8", "empty entry in '1.2.3.4;;5.6.7.8': remove the extra ';'"),
    ("AAAA", "@", "1.2.3.4", "'1.2.3.4' is not an IPv6 address (an AAAA record's value, e.g. "
                             "2001:db8::1)"),
    ("AAAA", "@", "fe80::1%eth0", "'fe80::1%eth0' is not an IPv6 address (an AAAA record's "
                                  "value, e.g. 2001:db8::1)"),
    ("CNAME", "www.client.com", "a.example.com;b.example.com", "a CNAME holds one value, not 2"),
    ("CNAME", "www.client.com", "185.230.63.107",
     "'185.230.63.107' is an IP address, not a host name (a CNAME's value is the name it points "
     "to, e.g. pointing.wixdns.net; an address goes in an A or AAAA record)"),
    ("CNAME", "www.client.com", "https://shop.example.com",
     "'https://shop.example.com' is not a host name (a CNAME's value is the name it points to, "
     "e.g. pointing.wixdns.net)"),
    ("CNAME", "www.client.com", "localhost",
     "'localhost' is not a host name (a CNAME's value is the name it points to, e.g. "
     "pointing.wixdns.net)"),
    ("MX", "@", "mx1.mail.com",
     "MX value 'mx1.mail.com' must be 'priority server' (e.g. 10 mail.client.com)"),
    ("MX", "@", "mx1.mail.com 10",
     "MX value 'mx1.mail.com 10' must be 'priority server' (e.g. 10 mail.client.com)"),
    ("MX", "@", "70000 mx1.mail.com",
     "MX value '70000 mx1.mail.com' must be 'priority server' (e.g. 10 mail.client.com)"),
    ("MX", "@", "-1 mx1.mail.com",
     "MX value '-1 mx1.mail.com' must be 'priority server' (e.g. 10 mail.client.com)"),
    ("MX", "@", "10 185.230.63.107",
     "'185.230.63.107' is an IP address, not a host name (an MX value's server, e.g. 10 "
     "mail.client.com; an address goes in an A or AAAA record)"),
    ("SRV", "_sip._tcp.client.com", "10 5 sip.client.com",
     "SRV value '10 5 sip.client.com' must be 'priority weight port target' (e.g. 10 5 5060 "
     "sip.client.com)"),
    ("SRV", "_sip._tcp.client.com", "10 5 70000 sip.client.com",
     "SRV value '10 5 70000 sip.client.com' must be 'priority weight port target' (e.g. 10 5 "
     "5060 sip.client.com)"),
    ("TXT", "@", '"v=spf1 -all" "x=y"',
     "quoted TXT values must each be in double quotes, separated by ';': "
     "'\"v=spf1 -all\" \"x=y\"'"),
    ("TXT", "@", '"v=spf1 -all',
     "quoted TXT values must each be in double quotes, separated by ';': '\"v=spf1 -all'"),
    ("TXT", "@", '"";"v=spf1 -all"', 'a TXT value is empty (""): remove it'),
    ("PTR", "@", "x", "'x' is not a host name (a PTR's value is the name it points to)"),
])
def test_a_bad_value_is_refused_with_its_reason(
    record_type: str, host: str, values: str, reason: str
) -> None:
    assert one_problem(record(record_type=record_type, host=host, values=values)) == (
        "values", reason)


@pytest.mark.parametrize(("record_type", "values", "bad"), [
    ("A", ["1.2.3.4; 5.6.7.8"], "'1.2.3.4; 5.6.7.8' is not an IPv4 address"),
    ("MX", ["10 mx1.mail.com;20 mx2.mail.com"], "MX value '10 mx1.mail.com;20 mx2.mail.com' "
                                                 "must be 'priority server'"),
])
def test_values_joined_in_one_json_entry_are_told_to_be_entries_of_their_own(
    record_type: str, values: list[str], bad: str
) -> None:
    column, reason = one_problem(record(record_type=record_type, host="@", values=values))
    assert column == "values" and reason.startswith(bad)
    assert reason.endswith(": in a JSON list, write each value as an entry of its own")


@pytest.mark.parametrize("host", ["@", "client.com", "CLIENT.com."])
def test_a_cname_is_never_at_the_apex(host: str) -> None:
    assert one_problem(record(record_type="CNAME", host=host, values="pointing.wixdns.net")) == (
        "host", "a CNAME cannot be at the apex (client.com): use A/AAAA records there, or put "
                "the CNAME on www.client.com")


def test_a_cname_at_the_apex_with_two_values_reports_both() -> None:
    assert row_problems(record(record_type="CNAME", host="@", values="a.example.com;b.example.com")
                        ) == [
        (LINE, "host", "a CNAME cannot be at the apex (client.com): use A/AAAA records there, "
                       "or put the CNAME on www.client.com"),
        (LINE, "values", "a CNAME holds one value, not 2"),
    ]


@pytest.mark.parametrize("record_type", ["NS", "ns", "SOA", " soa "])
def test_ns_and_soa_records_are_refused(record_type: str) -> None:
    kind = record_type.strip().upper()
    assert one_problem(record(record_type=record_type, host="@", values="ns1.wixdns.net")) == (
        "record_type", f"{kind} records are Wix's own (its name servers and zone authority): "
                       "bulkops never changes them")


def test_an_unknown_record_type_names_the_types_that_can_be_set() -> None:
    assert one_problem(record(record_type="MXX", host="@", values="10 mx.mail.com")) == (
        "record_type", "record_type must be one of A, AAAA, CNAME, MX, NAPTR, PTR, SPF, SRV, "
                       "TXT, not 'MXX'")


@pytest.mark.parametrize(("host", "reason"), [
    ("www.other.com", "'www.other.com' is not in the domain client.com: write the record's full "
                      "name (e.g. www.client.com, or @ for client.com itself)"),
    ("mail.other.co.uk", "'mail.other.co.uk' is not in the domain client.com: write the "
                         "record's full name (e.g. mail.client.com, or @ for client.com "
                         "itself)"),
    ("notclient.com", "'notclient.com' is not in the domain client.com: write the record's "
                      "full name (e.g. www.client.com, or @ for client.com itself)"),
    ("www", "'www' is not a full name: write the record's full name, www.client.com (or @ for "
            "client.com itself)"),
    ("_dmarc", "'_dmarc' is not a full name: write the record's full name, _dmarc.client.com "
               "(or @ for client.com itself)"),
    ("_sip._tcp", "'_sip._tcp' is not a full name: write the record's full name, "
                  "_sip._tcp.client.com (or @ for client.com itself)"),
])
def test_a_host_outside_the_domain_is_refused_with_the_full_name_to_write(
    host: str, reason: str
) -> None:
    assert one_problem(record(record_type="A", host=host, values="1.2.3.4")) == ("host", reason)


@pytest.mark.parametrize(("host", "reason"), [
    ("www .client.com", "'www .client.com' is not a host name (e.g. www.client.com)"),
    ("a.*.client.com", "'a.*.client.com' is not a host name (e.g. www.client.com)"),
    ("bücher.client.com", "'bücher.client.com' is not ASCII: write the domain in its ASCII "
                          "form, 'xn--bcher-kva.client.com'"),
])
def test_a_host_that_is_no_host_name_is_refused(host: str, reason: str) -> None:
    assert one_problem(record(record_type="A", host=host, values="1.2.3.4")) == ("host", reason)


def test_a_host_under_a_www_domain_is_under_the_domain_without_www() -> None:
    spec = spec_of(record(domain="www.client.com", record_type="A", host="www.client.com",
                          values="1.2.3.4"))
    assert (spec.domain, spec.host) == ("client.com", "www.client.com")


@pytest.mark.parametrize(("ttl", "reason"), [
    ("1h", "ttl must be a whole number of seconds (e.g. 3600), not '1h'"),
    ("3600s", "ttl must be a whole number of seconds (e.g. 3600), not '3600s'"),
    ("-5", "ttl must be between 0 and 2147483647 seconds, not -5"),
    (-5, "ttl must be between 0 and 2147483647 seconds, not -5"),
    ("3600.5", "ttl must be a whole number of seconds (e.g. 3600), not '3600.5'"),
    (3600.5, "ttl must be a whole number of seconds (e.g. 3600), not 3600.5"),
    ("36,00", "ttl must be a whole number of seconds (e.g. 3600), not '36,00'"),
    ("2147483648", "ttl must be between 0 and 2147483647 seconds, not 2147483648"),
    (True, "ttl must be a whole number of seconds (e.g. 3600), not true"),
    ([3600], "ttl must be a whole number of seconds (e.g. 3600)"),
])
def test_a_bad_ttl_is_refused(ttl: object, reason: str) -> None:
    assert one_problem(record(record_type="A", host="@", values="1.2.3.4", ttl=ttl)) == (
        "ttl", reason)


@pytest.mark.parametrize("values", ["", "  ", [], None])
def test_a_record_without_values_is_missing_its_values(values: object) -> None:
    fields = record(record_type="A", host="@")
    if values is not None:
        fields["values"] = values
    result = check_row(LINE, fields)
    assert result.spec is None and result.errors == () and result.missing == ("values",)


def test_every_bad_column_of_a_dns_row_is_reported_together() -> None:
    columns = [column for _, column, _ in row_problems(record(
        domain="client", record_type="NS", host="a b", values="x", ttl="1h"))]
    assert columns == ["domain", "record_type", "host", "ttl"]


# -- whole files: cross-row checks -----------------------------------------------------------


def test_a_valid_csv_file_of_domain_rows_gives_specs_in_input_order(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        csv_row("connect_domain", key="conn", site=SITE_ID, domain="Client.com",
                connection="nameservers", assignment="primary", notify="yes"),
        csv_row("connect_domain", site=SITE_ID, domain="shop.client.com"),
        dns_csv("MX", "@", "10 mx1.mail.com;20 mx2.mail.com", ttl='"3,600"'),
        dns_csv("TXT", "_dmarc.client.com", '"v=DMARC1; p=none; rua=mailto:d@client.com"'),
        dns_csv("TXT", "@", '"""v=spf1 -all"";""google-site-verification=abc"""'),
        dns_csv("CNAME", "www.client.com", "pointing.wixdns.net"),
    )
    source, specs = load_job(path)
    assert source.format == "csv" and source.total == 6
    read = list(specs())
    assert [spec.line for spec in read] == [2, 3, 4, 5, 6, 7]
    conn, sub, mx, dmarc, spf, cname = read
    assert (conn.key, conn.domain, conn.connection, conn.assignment, conn.notify) == (
        "conn", "client.com", "nameservers", "primary", True)
    assert (sub.domain, sub.connection, sub.assignment, sub.notify) == (
        "shop.client.com", None, "redirect", False)
    assert (mx.host, mx.values, mx.ttl) == ("client.com", ("10 mx1.mail.com", "20 mx2.mail.com"),
                                            3600)
    assert dmarc.values == ("v=DMARC1; p=none; rua=mailto:d@client.com",)
    assert spf.values == ("v=spf1 -all", "google-site-verification=abc")
    assert cname.values == ("pointing.wixdns.net",)
    assert all(spec.implied_depends_on == ("conn",) for spec in (mx, dmarc, spf, cname))


def test_two_connect_rows_for_one_domain_are_refused(tmp_path: Path) -> None:
    path = csv_file(tmp_path, connect_csv("pointing"),
                    connect_csv("nameservers", domain="WWW.client.com"))
    assert problems(path) == [
        (3, "domain", "line 2 connects 'client.com' too: one row per domain")]


def test_two_identical_connect_rows_are_refused(tmp_path: Path) -> None:
    path = csv_file(tmp_path, connect_csv("pointing"), connect_csv("pointing"))
    found = problems(path)
    assert {line for line, _, _ in found} == {3}
    assert (3, "domain", "line 2 connects 'client.com' too: one row per domain") \
        in found


def test_two_dns_rows_for_one_type_and_host_are_refused(tmp_path: Path) -> None:
    path = csv_file(tmp_path, dns_csv("A", "@", "1.2.3.4"),
                    dns_csv("a", "Client.com.", "5.6.7.8"),
                    dns_csv("A", "www.client.com", "1.2.3.4"),
                    dns_csv("A", "@", "1.2.3.4", domain="other.com"))
    assert problems(path) == [
        (3, "host", "the A record of 'client.com' is already set at line 2: one row per record "
                    "(list every value in it)")]


def test_a_cname_beside_another_record_of_its_host_is_refused(tmp_path: Path) -> None:
    path = csv_file(tmp_path, dns_csv("CNAME", "www.client.com", "pointing.wixdns.net"),
                    dns_csv("A", "www.client.com", "1.2.3.4"),
                    dns_csv("TXT", "www.client.com", "hello"),
                    dns_csv("A", "shop.client.com", "1.2.3.4"),
                    dns_csv("CNAME", "shop.client.com", "shops.myshopify.com"))
    clash = ("'{host}' has a CNAME record and another record (lines {a} and {b}): a CNAME must "
             "be the only record of its name")
    assert problems(path) == [
        (3, "host", clash.format(host="www.client.com", a=2, b=3)),
        (4, "host", clash.format(host="www.client.com", a=2, b=4)),
        (6, "host", clash.format(host="shop.client.com", a=5, b=6)),
    ]


def test_dns_rows_of_a_domain_connected_with_pointing_are_refused(tmp_path: Path) -> None:
    path = csv_file(tmp_path, connect_csv("pointing"),
                    dns_csv("A", "@", "1.2.3.4"),
                    dns_csv("TXT", "@", "hello"),
                    dns_csv("A", "@", "1.2.3.4", domain="other.com"))
    assert problems(path) == [(3, "domain", POINTING_REASON.format(line=2)),
                              (4, "domain", POINTING_REASON.format(line=2))]


def test_dns_rows_before_a_pointing_connect_row_are_told_about_pointing_at_once(
    tmp_path: Path
) -> None:
    """Moving the connect row first would only bring the pointing refusal: say it now."""
    path = csv_file(tmp_path, dns_csv("A", "@", "1.2.3.4"),
                    dns_csv("TXT", "@", "hello"),
                    connect_csv("pointing"))
    assert problems(path) == [(2, "domain", POINTING_REASON.format(line=4)),
                              (3, "domain", POINTING_REASON.format(line=4))]


def test_dns_rows_before_the_connect_row_of_their_domain_are_refused(tmp_path: Path) -> None:
    path = csv_file(tmp_path, dns_csv("A", "@", "1.2.3.4"),
                    dns_csv("TXT", "@", "hello"),
                    connect_csv("nameservers"))
    assert problems(path) == [
        (4, "domain", "the DNS records of client.com (line 2) come before its connect_domain "
                      "row: put this row first, they wait for it")]


def test_dns_rows_after_a_nameservers_connect_row_wait_for_it(tmp_path: Path) -> None:
    path = csv_file(tmp_path, connect_csv("nameservers", key="conn"),
                    dns_csv("A", "@", "1.2.3.4"),
                    dns_csv("MX", "@", "10 mx.mail.com"),
                    dns_csv("A", "@", "1.2.3.4", domain="other.com"))
    conn, a, mx, other = load_job(path)[1]()
    assert conn.implied_depends_on == () and other.implied_depends_on == ()
    assert a.implied_depends_on == mx.implied_depends_on == ("conn",)
    assert a.depends_on == () and a.dependency_keys() == ("conn",)


def test_the_implied_wait_names_a_derived_connect_key_and_leaves_dns_keys_alone(
    tmp_path: Path
) -> None:
    """The wait is the file's doing, not the row's: the row's derived key is the same in a
    file without the connect row, so running a file grown by a connect row repeats nothing."""
    (tmp_path / "with").mkdir()
    (tmp_path / "without").mkdir()
    rows = (dns_csv("A", "@", "1.2.3.4", ttl="300"),
            dns_csv("TXT", "_dmarc.client.com", "v=DMARC1; p=none"))
    connected = list(load_job(csv_file(tmp_path / "with", connect_csv("nameservers"), *rows))[1]())
    alone = list(load_job(csv_file(tmp_path / "without", *rows))[1]())
    conn = connected[0]
    assert conn.key.startswith("connect_domain-")
    assert [spec.implied_depends_on for spec in connected[1:]] == [(conn.key,), (conn.key,)]
    assert [spec.implied_depends_on for spec in alone] == [(), ()]
    assert [spec.key for spec in connected[1:]] == [spec.key for spec in alone]
    assert all(derive_key(spec) == spec.key for spec in connected)


def test_a_dns_row_naming_its_connect_row_already_has_no_implied_wait(tmp_path: Path) -> None:
    path = write_file(tmp_path, HEADER.rstrip("\n") + ",depends_on\n"
                      f"connect_domain,conn,{SITE_ID},client.com,nameservers,,,,,,,\n"
                      "set_dns_record,,,client.com,,,,A,@,1.2.3.4,,@conn\n", "job.csv")
    _, record_spec = load_job(path)[1]()
    assert (record_spec.depends_on, record_spec.implied_depends_on) == (("conn",), ())


def test_check_job_reports_domain_problems_without_raising(tmp_path: Path) -> None:
    path = csv_file(tmp_path, connect_csv("pointing"), dns_csv("A", "@", "1.2.3.4"))
    checked = check_job(path)
    assert [(e.line, e.column, e.reason) for e in checked.errors] == [
        (3, "domain", POINTING_REASON.format(line=2))]
    assert checked.outside == [] and checked.source.total == 2


def test_check_job_specs_carry_the_implied_wait(tmp_path: Path) -> None:
    path = csv_file(tmp_path, connect_csv("nameservers", key="conn"), dns_csv("A", "@", "1.2.3.4"))
    checked = check_job(path)
    assert checked.errors == []
    assert [spec.implied_depends_on for spec in checked.specs()] == [(), ("conn",)]


def test_every_bad_row_is_reported_at_once_in_line_order(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        dns_csv("A", "@", "1.2.3.4", domain="late.com"),                       # 2: before connect
        connect_csv("pointing", domain="bücher.de"),                           # 3
        connect_csv("poiting"),                                                # 4
        dns_csv("CNAME", "@", "pointing.wixdns.net", domain="other.com"),      # 5
        dns_csv("MX", "@", "mx.mail.com", domain="other.com"),                 # 6
        dns_csv("NS", "@", "ns1.wixdns.net", domain="other.com"),              # 7
        dns_csv("A", "www.other.net", "1.2.3.4", domain="other.com"),          # 8
        dns_csv("A", "@", "1.2.3.4", domain="other.com", ttl="1h"),            # 9
        connect_csv("nameservers", domain="late.com"),                         # 10
        connect_csv("nameservers", domain="shop.client.com"),                  # 11
        dns_csv("A", "www.other.com", "1.2.3.4", domain="other.com"),          # 12: fine
        dns_csv("A", "www.other.com", "5.6.7.8", domain="other.com"),          # 13: duplicate
    )
    found = problems(path)
    assert [(line, column) for line, column, _ in found] == [
        (3, "domain"), (4, "connection"), (5, "host"), (6, "values"), (7, "record_type"),
        (8, "host"), (9, "ttl"), (10, "domain"), (11, "connection"), (13, "host")]
    assert found[0] == (3, "domain", "'bücher.de' is not ASCII: write the domain in its ASCII "
                                     "form, 'xn--bcher-kva.de'")
    assert found[1][2].endswith("did you mean pointing?")
    assert found[7] == (10, "domain", "the DNS records of late.com (line 2) come before its "
                                      "connect_domain row: put this row first, they wait for it")


def test_a_header_without_a_required_domain_column_is_reported_once(tmp_path: Path) -> None:
    path = write_file(tmp_path, "action,domain,record_type,host\n"
                                "set_dns_record,client.com,A,@\n"
                                "set_dns_record,client.com,AAAA,@\n", "job.csv")
    assert problems(path) == [(1, "values", "the header has no values column, which "
                                            "set_dns_record rows need (first at line 2)")]


# -- JSON and JSON Lines ---------------------------------------------------------------------


def test_json_defaults_fill_the_domain_of_dns_and_connect_rows(tmp_path: Path) -> None:
    document = {
        "defaults": {"domain": "Client.com", "ttl": 3600, "site": SITE_ID},
        "ops": [
            {"action": "connect_domain", "key": "conn", "connection": "nameservers"},
            {"action": "set_dns_record", "record_type": "A", "host": "@",
             "values": ["185.230.63.107", "185.230.63.186"]},
            {"action": "set_dns_record", "record_type": "TXT", "host": "_dmarc.client.com",
             "values": "v=DMARC1; p=none", "ttl": "300"},
            {"action": "set_dns_record", "domain": "other.com", "record_type": "MX",
             "host": "other.com", "values": ["10 mx.mail.com"]},
        ]}
    source, specs = load_job(write_file(tmp_path, json.dumps(document), "job.json"))
    assert source.format == "json"
    conn, a, txt, mx = specs()
    assert [spec.line for spec in (conn, a, txt, mx)] == [1, 2, 3, 4]
    assert (conn.domain, conn.site, conn.ttl) == ("client.com", SITE_ID, None)
    assert (a.domain, a.host, a.values, a.ttl, a.site) == (
        "client.com", "client.com", ("185.230.63.107", "185.230.63.186"), 3600, None)
    assert (txt.values, txt.ttl) == (("v=DMARC1; p=none",), 300)
    assert (mx.domain, mx.ttl, mx.implied_depends_on) == ("other.com", 3600, ())
    assert a.implied_depends_on == txt.implied_depends_on == ("conn",)


def test_a_bad_domain_default_is_reported_on_each_row_that_takes_it(tmp_path: Path) -> None:
    document = {"defaults": {"domain": "client"},
                "ops": [{"action": "set_dns_record", "record_type": "A", "host": "@",
                         "values": "1.2.3.4"},
                        {"action": "set_dns_record", "domain": "client.com", "record_type": "A",
                         "host": "www.client.com", "values": "1.2.3.4"}]}
    assert problems(write_file(tmp_path, json.dumps(document), "job.json")) == [
        (1, "domain", "'client' has no top-level domain: write it in full (e.g. client.com) "
                      "(from defaults)")]


def test_json_values_types_and_booleans(tmp_path: Path) -> None:
    ops = [{"action": "connect_domain", "site": SITE_ID, "domain": "client.com",
            "connection": "nameservers", "notify": True, "assignment": "PRIMARY"},
           {"action": "connect_domain", "site": SITE_ID, "domain": "shop.client.com",
            "notify": False},
           {"action": "set_dns_record", "domain": "client.com", "record_type": "txt",
            "host": "client.com", "values": ['v=spf1 include:_spf.google.com ~all',
                                             "google-site-verification=abc"], "ttl": 3600.0}]
    conn, sub, txt = load_job(write_file(tmp_path, json.dumps(ops), "job.json"))[1]()
    assert (conn.notify, conn.assignment, sub.notify) == (True, "primary", False)
    assert (txt.record_type, txt.values, txt.ttl) == (
        "TXT", ("v=spf1 include:_spf.google.com ~all", "google-site-verification=abc"), 3600)


def test_json_problems_are_on_the_element_index(tmp_path: Path) -> None:
    ops = [{"action": "connect_domain", "site": SITE_ID, "domain": "client.com",
            "connection": "pointing"},
           {"action": "set_dns_record", "domain": "client.com", "record_type": "A",
            "host": "@", "values": ["1.2.3.4"]},
           {"action": "connect_domain", "site": SITE_ID, "domain": "https://shop.client.com/",
            "notify": 1},
           {"action": "set_dns_record", "domain": "other.com", "record_type": "A",
            "host": "@", "values": ["1.2.3.4"], "ttl": -1}]
    assert problems(write_file(tmp_path, json.dumps(ops, indent=2), "job.json")) == [
        (2, "domain", POINTING_REASON.format(line=1)),
        (3, "domain", "'https://shop.client.com/' is an address, not a domain name: write "
                      "'shop.client.com'"),
        (3, "notify", "notify must be yes or no (JSON: true or false), not 1"),
        (4, "ttl", "ttl must be between 0 and 2147483647 seconds, not -1"),
    ]


def test_jsonl_domain_rows_on_physical_lines(tmp_path: Path) -> None:
    lines = [
        {"action": "connect_domain", "key": "conn", "site": SITE_ID, "domain": "client.com",
         "connection": "nameservers"},
        None,  # a blank line
        {"action": "set_dns_record", "domain": "client.com", "record_type": "CNAME",
         "host": "www.client.com", "values": "pointing.wixdns.net"},
        {"action": "set_dns_record", "domain": "client.com", "record_type": "A",
         "host": "www.client.com", "values": "1.2.3.4"},
    ]
    content = "".join((json.dumps(line) if line else "") + "\n" for line in lines)
    path = write_file(tmp_path, content, "job.jsonl")
    assert problems(path) == [
        (4, "host", "'www.client.com' has a CNAME record and another record (lines 3 and 4): a "
                    "CNAME must be the only record of its name")]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines[:3] if line))
    source, specs = load_job(path)
    assert source.format == "jsonl"
    assert [(spec.line, spec.implied_depends_on) for spec in specs()] == [(1, ()), (2, ("conn",))]


def test_records_of_a_subdomain_go_in_its_root_domains_zone() -> None:
    """Wix hosts zones for root domains: `domain` names the zone, the host the full name."""
    column, reason = one_problem(record(domain="shop.client.com", record_type="A",
                                        host="www.shop.client.com", values="10.0.0.1"))
    assert column == "domain"
    assert "write domain client.com" in reason
    spec = spec_of(record(record_type="A", host="www.shop.client.com", values="10.0.0.1"))
    assert (spec.domain, spec.host) == ("client.com", "www.shop.client.com")


def test_a_site_gets_one_primary_domain_per_file(tmp_path: Path) -> None:
    """A second primary would take the role from the first, which would be left on no site."""
    path = csv_file(tmp_path,
                    csv_row("connect_domain", site=SITE_ID, domain="one.com",
                            connection="pointing", assignment="primary"),
                    csv_row("connect_domain", site=SITE_ID.upper(), domain="two.com",
                            connection="pointing", assignment="primary"),
                    csv_row("connect_domain", site=SITE_ID, domain="three.com",
                            connection="pointing"))
    [(line, column, reason)] = problems(path)
    assert (line, column) == (3, "assignment")
    assert "line 2 makes another domain the primary" in reason and "as redirect" in reason

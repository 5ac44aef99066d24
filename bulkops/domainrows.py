"""The domain columns of a job file row: one value at a time, then the row's columns together.

Domain names are checked against the Public Suffix List (ICANN section, bundled with the
`publicsuffixlist` package, read offline), so that `client.co.uk` is a root domain and
`shop.client.com` a subdomain, as Wix tells them apart for `connectionType` (wix-domains.md,
"Create Connected Domain": a subdomain takes no connection type).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable
from functools import cache, lru_cache

from publicsuffixlist import PublicSuffixList

from bulkops.cells import show as _show
from bulkops.wixdomains import (
    INFERRED_STRIP_WWW,
    MAX_RECORD_VALUES,
    READ_ONLY_RECORD_TYPES,
    RECORD_TYPES,
)

Value = str | tuple[str, ...] | bool | int  # a row's values, as jobrows holds them

CONNECTIONS = ("pointing", "nameservers")
ASSIGNMENTS = ("redirect", "primary")
DEFAULT_ASSIGNMENT = "redirect"  # `primary` unassigns the site's current address (wix-domains.md)
WRITABLE_TYPES = tuple(sorted(RECORD_TYPES - READ_ONLY_RECORD_TYPES))
MAX_TTL = 2**31 - 1  # RFC 2181, section 8
_TRUE = frozenset({"yes", "y", "true", "t", "1", "on"})
_FALSE = frozenset({"no", "n", "false", "f", "0", "off"})
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Record host names may hold service labels (`_dmarc`, `_sip._tcp`) and a leading wildcard.
_HOST_LABEL = re.compile(r"_?[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?|_[a-z0-9]")
# Dotted names whose every label is one of the above: labels hold no dot, so a name matches
# exactly when each of its labels does, in one call instead of one a label.
_NAME = re.compile(rf"(?:{_LABEL.pattern})(?:\.(?:{_LABEL.pattern}))*")
_HOST_NAME = re.compile(rf"(?:{_HOST_LABEL.pattern})(?:\.(?:{_HOST_LABEL.pattern}))*")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_MAX_DOMAIN_CHARS = 253


@cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList(only_icann=True)


# A file names each domain on a few rows (its connect row, its DNS rows): each is looked up
# in the list once. Bounded, and a pure function of the name.
@lru_cache(maxsize=4096)
def _private_suffix(name: str) -> str | None:
    return _suffixes().privatesuffix(name)


@lru_cache(maxsize=4096)
def _public_suffix(name: str) -> str | None:
    """The name's public suffix, None when it ends in no known one."""
    return _suffixes().publicsuffix(name, accept_unknown=False)


def registrable_domain(domain: str) -> str:
    """The domain someone buys (`client.co.uk` for `shop.client.co.uk`): the question Check
    Domain Availability answers."""
    return _private_suffix(domain) or domain


def is_subdomain(domain: str) -> bool:
    """Whether a checked domain name lies under a registrable one (`shop.client.com`), rather
    than being one itself (`client.com`, `client.co.uk`)."""
    return _private_suffix(domain) != domain


def domain_value(text: str) -> tuple[str | None, str | None]:
    """A `domain` cell → (the domain id, None) or (None, reason).

    The id is what Wix names the domain by: lowercase ASCII, no trailing dot, no `www.`
    (wix-domains.md, "Common rules"; bulkops.wixdomains item 1)."""
    name = text.strip().rstrip(".").lower()
    if _URL.match(name) or "/" in name:
        return None, _address(text, name)
    if not name.isascii():
        return None, _non_ascii(text, name)
    if INFERRED_STRIP_WWW and name.startswith("www.") and name.count(".") >= 2:
        name = name[4:]
    labels = name.split(".")
    if len(name) > _MAX_DOMAIN_CHARS or not _NAME.fullmatch(name):
        return None, (f"{_show(text)} is not a domain name: letters, digits and hyphens "
                      "between dots (e.g. client.com)")
    suffix = _public_suffix(name)
    # Before the count of labels: `com` alone is a top-level domain, not a name lacking one.
    if suffix == name:
        return None, (f"{_show(text)} is a public suffix, not a domain: write the client's "
                      "name under it")
    if len(labels) < 2:
        return None, f"{_show(text)} has no top-level domain: write it in full (e.g. {name}.com)"
    if suffix is None:
        return None, f"{_show(text)} does not end in a known top-level domain (.{labels[-1]})"
    return name, None


def _address(text: str, name: str) -> str:
    """A URL (or a name with a path) in a domain cell: the hint is the domain id it holds, as
    this column would read it (`https://www.Client.com:443/shop` → client.com)."""
    bare = _URL.sub("", name).split("/")[0].rpartition("@")[2].partition(":")[0]
    bare = (_ascii_form(bare) or bare) if not bare.isascii() else bare
    domain, _ = domain_value(bare) if bare else (None, None)
    write = _show(domain or bare) if bare else "the domain alone (e.g. client.com)"
    return f"{_show(text)} is an address, not a domain name: write {write}"


def _ascii_form(name: str) -> str | None:
    """An internationalised name's ASCII (`xn--`) form, or None if it cannot have one."""
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return None


def _non_ascii(text: str, name: str) -> str:
    ascii_form = _ascii_form(name)
    if ascii_form is None:
        return f"{_show(text)} contains characters a domain name cannot hold"
    return (f"{_show(text)} is not ASCII: write the domain in its ASCII form, "
            f"{_show(ascii_form)}")


def choice_value(column: str, text: str, choices: tuple[str, ...]) -> tuple[str | None, str | None]:
    """`text` as one of `choices` (any case), or a reason naming them and the closest."""
    value = text.strip().lower()
    if value in choices:
        return value, None
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
    hint = f": did you mean {close[0]}?" if close else ""
    return None, f"{column} must be {' or '.join(choices)}, not {_show(text)}{hint}"


def connection_value(text: str) -> tuple[str | None, str | None]:
    return choice_value("connection", text, CONNECTIONS)


def assignment_value(text: str) -> tuple[str | None, str | None]:
    return choice_value("assignment", text, ASSIGNMENTS)


def flag_value(raw: object) -> tuple[bool | None, str | None]:
    """`notify`: JSON true/false, or yes/no, true/false, 1/0, on/off in any case."""
    if isinstance(raw, bool):
        return raw, None
    if isinstance(raw, str):
        text = raw.strip().lower()
        if not text:
            return None, None
        if text in _TRUE:
            return True, None
        if text in _FALSE:
            return False, None
        return None, f"notify must be yes or no, not {_show(raw)}"
    shown = f", not {raw!r}" if isinstance(raw, int | float) else ""
    return None, f"notify must be yes or no (JSON: true or false){shown}"


def ttl_value(raw: object) -> tuple[int | None, str | None]:
    """`ttl`: whole seconds, 0 to 2^31 - 1 (JSON: a number or text)."""
    whole = "ttl must be a whole number of seconds (e.g. 3600)"
    if isinstance(raw, bool):
        return None, f"{whole}, not {str(raw).lower()}"
    if isinstance(raw, int):
        seconds = raw
    elif isinstance(raw, float):
        if not raw.is_integer():
            return None, f"{whole}, not {raw!r}"
        seconds = int(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        if not text:
            return None, None
        # A spreadsheet's number column writes 3600 as "3600.0" or "3,600". The sign is read
        # so that "-5" is told it is out of range, not that it is no whole number.
        plain = re.fullmatch(r"(-?)(\d{1,3}(?:,\d{3})+|\d+)(?:\.0+)?", text)
        if plain is None:
            return None, f"{whole}, not {_show(raw)}"
        seconds = int(plain[1] + plain[2].replace(",", ""))
    else:
        return None, whole
    if not 0 <= seconds <= MAX_TTL:
        return None, f"ttl must be between 0 and {MAX_TTL} seconds, not {seconds}"
    return seconds, None


def record_type_value(text: str) -> tuple[str | None, str | None]:
    kind = text.strip().upper()
    if kind in READ_ONLY_RECORD_TYPES:
        return None, (f"{kind} records are Wix's own (its name servers and zone authority): "
                      "bulkops never changes them")
    if kind not in RECORD_TYPES:
        return None, f"record_type must be one of {', '.join(WRITABLE_TYPES)}, not {_show(text)}"
    return kind, None


def host_value(text: str) -> tuple[str | None, str | None]:
    """A record's host as written: `@` (the apex), or a full name, lowercase, no trailing dot.
    Whether it lies under the row's domain is a row check (`domain_row_problems`)."""
    name = text.strip().rstrip(".").lower()
    if name == "@":
        return name, None
    if not name.isascii():
        return None, _non_ascii(text, name)
    # A leading wildcard label, and nothing else, may stand before the name's own labels.
    rest = name[2:] if name.startswith("*.") else name
    if len(name) > _MAX_DOMAIN_CHARS or name == "*" or not _HOST_NAME.fullmatch(rest):
        return None, f"{_show(text)} is not a host name (e.g. www.client.com)"
    return name, None


def domain_row_problems(action: str, values: dict[str, Value]) -> list[tuple[str, str]]:
    """The checks between a domain row's columns, as (column, reason); may complete `values`
    (the default assignment, `@` as the domain, record values in their written form)."""
    domain = values.get("domain")
    if not isinstance(domain, str):
        return []
    if action == "connect_domain":
        values.setdefault("assignment", DEFAULT_ASSIGNMENT)
        return _connect_problems(domain, values.get("connection"))
    return _record_problems(domain, values)


def _connect_problems(domain: str, connection: Value | None) -> list[tuple[str, str]]:
    if is_subdomain(domain):
        if connection is not None:
            return [("connection", f"{domain} is a subdomain: Wix connects it without a "
                                   "connection type, so leave connection empty")]
        return []
    if connection is None:
        return [("connection", f"connection is required for the root domain {domain}: "
                               "pointing (its DNS stays with the client's provider) or "
                               "nameservers (Wix hosts its DNS zone)")]
    return []


def _record_problems(domain: str, values: dict[str, Value]) -> list[tuple[str, str]]:
    host, kind, written = values.get("host"), values.get("record_type"), values.get("values")
    problems: list[tuple[str, str]] = []
    if host == "@":
        host = values["host"] = domain
    if is_subdomain(domain):
        # Wix hosts zones for root domains; a subdomain's records live in its root's zone.
        root = _private_suffix(domain)
        problems.append(("domain", f"{domain} is a subdomain: its records are in the zone of "
                                   f"{root}; write domain {root} (host stays the full name)"))
    if isinstance(host, str) and host != domain and not host.endswith("." + domain):
        problems.append(("host", _outside_host(host, domain)))
    if not isinstance(kind, str) or not isinstance(written, str | tuple):
        return problems
    if isinstance(written, str):
        written, reason = split_values(kind, written)
        if reason is not None:
            return [*problems, ("values", reason)]
    if kind == "CNAME" and host == domain:
        problems.append(("host", f"a CNAME cannot be at the apex ({domain}): use A/AAAA "
                                 f"records there, or put the CNAME on www.{domain}"))
    normalised, reason = record_values(kind, written)
    if reason is not None:
        problems.append(("values", reason))
    else:
        values["values"] = normalised
    return problems


def _outside_host(host: str, domain: str) -> str:
    """Why `host` is not a name of `domain`, with the full name it probably means: a relative
    name (`www`, `_sip._tcp`: no known top-level domain) goes under the domain as it is; a
    name under another domain keeps its labels under that one (`mail.other.com` → `mail.`)."""
    suffix = _public_suffix(host)
    if suffix is None or suffix == host:
        return (f"{_show(host)} is not a full name: write the record's full name, "
                f"{host}.{domain} (or @ for {domain} itself)")
    registrable = _private_suffix(host) or host
    under = host[: -len(registrable) - 1] if host != registrable else "www"
    return (f"{_show(host)} is not in the domain {domain}: write the record's full name "
            f"(e.g. {under}.{domain}, or @ for {domain} itself)")


_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"\s*(?:;\s*|$)')
_ESCAPED = re.compile(r"\\(.)")  # inside quotes, \" is a quote and \\ a backslash


def split_values(kind: str, text: str) -> tuple[tuple[str, ...], str | None]:
    """A `values` cell → its values. Separated by `;`, except for TXT (and SPF), whose values
    hold `;` themselves (`v=DMARC1; p=none`): there the cell is one value, or several each in
    double quotes (`"v=spf1 -all";"google-site-verification=…"`)."""
    if kind in ("TXT", "SPF"):
        if not text.startswith('"'):
            return (text,), None
        found, at = [], 0
        while at < len(text):
            quoted = _QUOTED.match(text, at)
            if quoted is None:
                return (), (f"quoted TXT values must each be in double quotes, separated by "
                            f"';': {_show(text)}")
            found.append(_ESCAPED.sub(r"\1", quoted[1]))
            at = quoted.end()
        return tuple(found), None
    parts = tuple(part.strip() for part in text.split(";"))
    if "" in parts:
        return (), f"empty entry in {_show(text)}: remove the extra ';'"
    return parts, None


def record_values(kind: str, written: tuple[str, ...]) -> tuple[tuple[str, ...], str | None]:
    """A record's values checked for its type, white space tidied and repeats dropped (the
    record holds a set). Returns (values, None) or ((), reason)."""
    check = _VALUE_CHECKS.get(kind)
    tidy = tuple(dict.fromkeys(" ".join(v.split()) if kind != "TXT" else v for v in written))
    if check is not None:
        for value in tidy:
            reason = check(value)
            if reason is not None:
                return (), reason + _joined_hint(value, check)
    if kind == "AAAA":
        # One spelling per address (`2001:DB8:0::1` is `2001:db8::1`), as a zone read gives
        # it back: the desired-state comparison after a run and the derived key both see
        # the address, not the way it was typed.
        tidy = tuple(dict.fromkeys(str(ipaddress.IPv6Address(v)) for v in tidy))
    if kind in _HOST_VALUED:
        # `10 MX.Client.com.` and `10 mx.client.com` are one value to Wix (a name, any case,
        # with or without its root dot): keep the first spelling (`comparable_values`).
        tidy = tuple({v.rstrip(".").lower(): v for v in reversed(tidy)}.values())[::-1]
    if len(tidy) > MAX_RECORD_VALUES:
        return (), f"a record holds at most {MAX_RECORD_VALUES} values, not {len(tidy)}"
    if kind == "CNAME" and len(tidy) > 1:
        return (), f"a CNAME holds one value, not {len(tidy)}"
    return tidy, None


def _joined_hint(value: str, check: Callable[[str], str | None]) -> str:
    """A value that holds several good ones joined by ';' comes from one entry of a JSON list
    (a text cell is split at ';' already): say that each value is an entry of its own."""
    parts = [part.strip() for part in value.split(";")]
    if len(parts) > 1 and all(part and check(part) is None for part in parts):
        return ": in a JSON list, write each value as an entry of its own"
    return ""


def _is_address(text: str, version: int) -> bool:
    if "%" in text:  # an IPv6 scope (`fe80::1%eth0`) names a local interface, never a record's
        return False
    # Host names (most values asked about) are refused without the exception `ipaddress`
    # raises for them, which costs more than the rest of a DNS row's checks: an IPv4 address is
    # digits and dots only, an IPv6 one has a colon.
    if ":" not in text if version == 6 else not text.replace(".", "").isdigit():
        return False
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _address_value(value: str, version: int, what: str) -> str | None:
    if _is_address(value, version):
        return None
    reason = f"{_show(value)} is not an IPv{version} address ({what})"
    # Several addresses in one value, separated by spaces or commas (a list pasted from
    # elsewhere): name the separator this column takes.
    parts = re.split(r"[\s,]+", value.strip(" ,"))
    if len(parts) > 1 and all(_is_address(part, version) for part in parts):
        reason += ": separate the values with ';'"
    return reason


def _ipv4(value: str) -> str | None:
    return _address_value(value, 4, "an A record's value, e.g. 185.230.63.107")


def _ipv6(value: str) -> str | None:
    return _address_value(value, 6, "an AAAA record's value, e.g. 2001:db8::1")


_HOST_VALUED = frozenset({"CNAME", "MX", "SRV", "PTR"})


def _target(value: str, what: str, *, service_labels: bool = True) -> str | None:
    """A value naming another host (CNAME, MX, SRV, PTR): a name with a top-level domain, never
    an address (RFC 1034 3.6.2, RFC 2181 10.3), so a last label all digits is refused too."""
    name = value.rstrip(".").lower()
    labels = name.split(".")
    if _is_address(name, 4) or _is_address(name, 6):
        return (f"{_show(value)} is an IP address, not a host name ({what}; an address goes in "
                "an A or AAAA record)")
    if (not name.isascii() or len(labels) < 2 or labels[-1].isdigit()
            or not (_HOST_NAME if service_labels else _NAME).fullmatch(name)):
        return f"{_show(value)} is not a host name ({what})"
    return None


def _txt(value: str) -> str | None:
    if not value:
        # Only a quoted cell (`"";"v=spf1 -all"`) can hold one: Wix refuses an empty value
        # (DOMAIN_DNS_EMPTY_RECORD_VALUE), so it is refused before anything is sent.
        return "a TXT value is empty (\"\"): remove it"
    return None


def _cname(value: str) -> str | None:
    return _target(value, "a CNAME's value is the name it points to, e.g. pointing.wixdns.net")


def _mx(value: str) -> str | None:
    parts = value.split()
    example = "e.g. 10 mail.client.com"
    if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) > 65535:
        return f"MX value {_show(value)} must be 'priority server' ({example})"
    # A mail server is a host name proper (RFC 5321 2.3.5): no `_` labels, unlike a CNAME's
    # target (`s1._domainkey.mail.net`).
    return _target(parts[1], f"an MX value's server, {example}", service_labels=False)


def _srv(value: str) -> str | None:
    parts = value.split()
    example = "e.g. 10 5 5060 sip.client.com"
    if len(parts) != 4 or not all(p.isdigit() and int(p) <= 65535 for p in parts[:3]):
        return f"SRV value {_show(value)} must be 'priority weight port target' ({example})"
    return None if parts[3] == "." else _target(parts[3], f"an SRV target, {example}")


def _ptr(value: str) -> str | None:
    return _target(value, "a PTR's value is the name it points to")


_VALUE_CHECKS = {"A": _ipv4, "AAAA": _ipv6, "CNAME": _cname, "MX": _mx, "SRV": _srv,
                 "PTR": _ptr, "TXT": _txt, "SPF": _txt}


"""Checks between a file's domain rows, and the order they run in.

- one `connect_domain` row per domain, one `set_dns_record` row per (domain, type, host), and
  no CNAME beside another record on one host (a CNAME owns its name: RFC 1034, 3.6.2);
- DNS rows need a zone Wix hosts: not for a domain the file connects with `pointing` (told
  on each DNS row, whether it comes before or after the connect row);
- DNS rows of a domain the file connects with `nameservers` wait for that row (an implicit
  `depends_on`), since the zone exists only once the domain is connected.

Fed rows in file order, in both passes over a file, so both see the same dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass

from bulkops.cells import show
from bulkops.errors import RowError
from bulkops.model import Action, OpSpec, frozen_instance


@dataclass(frozen=True)
class _Connect:
    line: int
    key: str
    connection: str | None


class DomainRows:
    def __init__(self) -> None:
        self._connects: dict[str, _Connect] = {}
        self._records: dict[tuple[str, str, str], int] = {}  # (domain, type, host) -> line
        self._cname_hosts: dict[tuple[str, str], int] = {}  # (domain, host) -> line of its CNAME
        self._other_hosts: dict[tuple[str, str], int] = {}  # (domain, host) -> line of another
        self._dns_lines: dict[str, list[int]] = {}  # domain -> its DNS rows' lines so far
        self._primaries: dict[str, int] = {}  # site (id, lower case, or @key) -> line

    def take(self, spec: OpSpec) -> tuple[OpSpec, list[RowError]]:
        """The row as it runs (DNS rows with their implicit wait) and its problems with the
        rows before it."""
        if spec.action is Action.CONNECT_DOMAIN:
            return spec, self._connect(spec)
        if spec.action is Action.SET_DNS_RECORD:
            return self._record(spec)
        return spec, []

    def _connect(self, spec: OpSpec) -> list[RowError]:
        domain = spec.domain or ""
        earlier = self._connects.get(domain)
        if earlier is not None:
            return [RowError(spec.line, "domain", f"line {earlier.line} connects {show(domain)} "
                                                  "too: one row per domain")]
        self._connects[domain] = _Connect(spec.line, spec.key, spec.connection)
        if spec.assignment == "primary":
            # A site has one primary domain: a second one would take the role from the first,
            # leaving that one on no site (wix-domains.md, "Connecting as PRIMARY unassigns the
            # site's current primary domain").
            site = (spec.site or "").lower()
            first = self._primaries.setdefault(site, spec.line)
            if first != spec.line:
                return [RowError(spec.line, "assignment", (
                    f"line {first} makes another domain the primary of site {spec.site}: a "
                    "site has one primary domain; connect this one as redirect"))]
        dns_lines = self._dns_lines.get(domain)
        if not dns_lines:
            return []
        if spec.connection == "pointing":
            # Moving this row first would not help: say now what those rows would be told then,
            # so that every problem of the file is reported in one pass.
            return [self._pointing_error(line, domain, spec.line) for line in dns_lines]
        return [RowError(spec.line, "domain", f"the DNS records of {domain} (line "
                                              f"{dns_lines[0]}) come before its connect_domain "
                                              "row: put this row first, they wait for it")]

    def _record(self, spec: OpSpec) -> tuple[OpSpec, list[RowError]]:
        domain, host, kind = spec.domain or "", spec.host or "", spec.record_type or ""
        self._dns_lines.setdefault(domain, []).append(spec.line)
        errors: list[RowError] = []
        earlier = self._records.setdefault((domain, kind, host), spec.line)
        if earlier != spec.line:
            errors.append(RowError(spec.line, "host", f"the {kind} record of {show(host)} is "
                                                      f"already set at line {earlier}: one row "
                                                      "per record (list every value in it)"))
        clash = self._cname_clash(spec.line, domain, host, kind)
        if clash is not None:
            errors.append(clash)
        connect = self._connects.get(domain)
        if connect is None:
            return spec, errors
        if connect.connection == "pointing":
            errors.append(self._pointing_error(spec.line, domain, connect.line))
            return spec, errors
        if connect.key not in spec.depends_on:
            # dataclasses.replace, without the generated __init__ (one DNS row in ten).
            spec = frozen_instance(OpSpec, {**vars(spec), "implied_depends_on": (connect.key,)})
        return spec, errors

    @staticmethod
    def _pointing_error(line: int, domain: str, connect_line: int) -> RowError:
        return RowError(line, "domain", f"{domain} is connected with connection=pointing at "
                                        f"line {connect_line}: its DNS stays with the client's "
                                        "provider, so Wix hosts no zone to set records in (use "
                                        "nameservers)")

    def _cname_clash(self, line: int, domain: str, host: str, kind: str) -> RowError | None:
        where = (domain, host)
        if kind == "CNAME":
            self._cname_hosts.setdefault(where, line)
            other = self._other_hosts.get(where)
        else:
            self._other_hosts.setdefault(where, line)
            other = self._cname_hosts.get(where)
        if other is None or other == line:
            return None
        return RowError(line, "host", f"{show(host)} has a CNAME record and another record "
                                      f"(lines {min(other, line)} and {max(other, line)}): a "
                                      "CNAME must be the only record of its name")

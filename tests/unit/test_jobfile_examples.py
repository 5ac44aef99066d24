"""The example jobs under jobs/ stay valid and keep to what the sandbox knows."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bulkops.domainrows import is_subdomain
from bulkops.jobfile import load_job
from bulkops.model import Action, OpSpec
from bulkops.sandbox.config import (
    DEFAULT_DOMAINS_FOR_SALE,
    DEFAULT_RESTRICTED_TLDS,
    DEMO_SITES,
    SandboxConfig,
)

JOBS = Path(__file__).resolve().parents[2] / "jobs"
EXAMPLES = ["onboarding.csv", "onboarding.json"]
SANDBOX_ACCOUNTS = {"11111111-1111-4111-8111-111111111111"} | {
    f"22222222-2222-4222-8222-22222222222{n}" for n in range(1, 6)
}
SITE_ROLES = {"Website Manager", "Back Office Manager"}
ACCOUNT_ROLES = {"Admin (Co-owner)", "Website Manager"}
DEMO_SITE_IDS = {site.id for site in DEMO_SITES}


def specs_of(name: str) -> list[OpSpec]:
    return list(load_job(JOBS / name)[1]())


def test_the_sandbox_knows_the_accounts_the_examples_use() -> None:
    config = SandboxConfig()
    assert config.actable_accounts() == SANDBOX_ACCOUNTS


def test_onboarding_csv_mixes_every_action_with_references() -> None:
    specs = specs_of("onboarding.csv")
    counts = Counter(spec.action for spec in specs)
    assert len(specs) >= 70 and set(counts) == set(Action)
    assert counts[Action.CREATE_SITE] >= 20 and counts[Action.TRANSFER_SITE] >= 12
    assert counts[Action.SITE_INVITE] >= 15 and counts[Action.ACCOUNT_INVITE] >= 10
    assert counts[Action.CONNECT_DOMAIN] >= 4 and counts[Action.SET_DNS_RECORD] >= 5
    assert sum(1 for spec in specs if spec.depends_on) >= 10
    assert sum(1 for spec in specs if spec.sites) >= 5


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_references_name_rows_of_the_file_that_produce_what_is_needed(
    name: str,
) -> None:
    """Every `@key` names a row of the same file (no earlier run needed): a site reference a
    create_site row, a DNS row's implicit wait the row connecting its domain."""
    specs = specs_of(name)
    by_key = {spec.key: spec for spec in specs}
    assert len(by_key) == len(specs)
    for spec in specs:
        for ref in filter(None, (spec.site, *spec.sites)):
            if ref.startswith("@"):
                assert by_key[ref[1:]].action is Action.CREATE_SITE, spec.line
        for key in (*spec.depends_on, *spec.implied_depends_on):
            assert key in by_key, (spec.line, key)
            assert by_key[key].line < spec.line, spec.line


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_uses_only_accounts_and_roles_the_sandbox_knows(name: str) -> None:
    for spec in specs_of(name):
        for account in (spec.to_account, spec.from_account):
            assert account is None or account in SANDBOX_ACCOUNTS
        allowed = SITE_ROLES if spec.action is Action.SITE_INVITE else ACCOUNT_ROLES
        assert set(spec.roles) <= allowed
        assert spec.email is None or spec.email.endswith("@example.com")


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_never_invites_to_a_site_after_moving_it_away(name: str) -> None:
    """Invites on a site must be sent while the agency still owns it: every transfer of a site
    waits for the site invites on that site."""
    specs = specs_of(name)
    invites: dict[str, set[str]] = {}
    for spec in specs:
        if spec.action is Action.SITE_INVITE and spec.site:
            invites.setdefault(spec.site, set()).add(spec.key)
    transferred = set()
    for spec in specs:
        if spec.action is Action.TRANSFER_SITE and spec.site:
            assert invites.get(spec.site, set()) <= set(spec.depends_on), spec.line
            transferred.add(spec.site)
    for spec in specs:
        if spec.action is Action.ACCOUNT_INVITE:
            assert not transferred & set(spec.sites), spec.line


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_connects_domains_the_sandbox_lets_connect(name: str) -> None:
    """Domains go to the demo world's live Premium sites (new sites have no Premium), are
    owned already (not for sale) and not on a restricted TLD; DNS rows only for domains
    connected with nameservers in the same file, which they wait for."""
    specs = specs_of(name)
    connects = {spec.domain: spec for spec in specs if spec.action is Action.CONNECT_DOMAIN}
    assert connects
    for domain, spec in connects.items():
        assert spec.site in DEMO_SITE_IDS, spec.line
        assert domain is not None and domain.rsplit(".", 1)[1] not in DEFAULT_RESTRICTED_TLDS
        assert not any(domain == sold or domain.endswith("." + sold)
                       for sold in DEFAULT_DOMAINS_FOR_SALE), spec.line
        assert (spec.connection is None) == is_subdomain(domain), spec.line
    records = [spec for spec in specs if spec.action is Action.SET_DNS_RECORD]
    assert records
    for spec in records:
        connect = connects[spec.domain]
        assert connect.connection == "nameservers", spec.line
        assert connect.key in spec.dependency_keys(), spec.line
        assert spec.host is not None and spec.domain is not None
        assert spec.host == spec.domain or spec.host.endswith("." + spec.domain)


def test_onboarding_csv_shows_each_kind_of_domain_row() -> None:
    specs = specs_of("onboarding.csv")
    connects = [spec for spec in specs if spec.action is Action.CONNECT_DOMAIN]
    assert Counter(spec.connection for spec in connects) == {
        "pointing": 2, "nameservers": 1, None: 1}
    assert [spec.assignment for spec in connects].count("primary") == 1
    assert {spec.site for spec in connects} == DEMO_SITE_IDS
    records = {(spec.record_type, spec.host): spec for spec in specs
               if spec.action is Action.SET_DNS_RECORD}
    [(domain, _)] = Counter(spec.domain for spec in records.values()).items()
    assert len(records[("MX", domain)].values) == 2
    assert records[("TXT", domain)].values[0].startswith("v=spf1 ")
    # The DMARC value holds `;` and stays one value (a TXT cell is one value unless quoted).
    assert records[("TXT", f"_dmarc.{domain}")].values == (
        "v=DMARC1; p=quarantine; rua=mailto:dmarc@bluefingrill.com",)
    assert any(kind == "CNAME" and host != domain for kind, host in records)
    assert any(kind == "A" for kind, _ in records)


def test_onboarding_json_uses_defaults() -> None:
    specs = specs_of("onboarding.json")
    assert Counter(spec.action for spec in specs).keys() == set(Action)
    site_invite = next(spec for spec in specs if spec.action is Action.SITE_INVITE)
    assert site_invite.roles == ("Website Manager",)  # from defaults
    ttls = [spec.ttl for spec in specs if spec.action is Action.SET_DNS_RECORD]
    assert 3600 in ttls and 600 in ttls  # from defaults, and a row's own
    assert all(spec.ttl is None for spec in specs if spec.action is not Action.SET_DNS_RECORD)

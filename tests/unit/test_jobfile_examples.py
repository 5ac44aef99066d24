"""The example jobs under jobs/ stay valid and keep to what the sandbox knows."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bulkops.jobfile import load_job
from bulkops.model import Action, OpSpec

JOBS = Path(__file__).resolve().parents[2] / "jobs"
SANDBOX_ACCOUNTS = {"11111111-1111-4111-8111-111111111111"} | {
    f"22222222-2222-4222-8222-22222222222{n}" for n in range(1, 6)
}
SITE_ROLES = {"Website Manager", "Back Office Manager"}
ACCOUNT_ROLES = {"Admin (Co-owner)", "Website Manager"}


def specs_of(name: str) -> list[OpSpec]:
    return list(load_job(JOBS / name)[1]())


def test_onboarding_csv_mixes_every_action_with_references() -> None:
    specs = specs_of("onboarding.csv")
    counts = Counter(spec.action for spec in specs)
    assert len(specs) >= 60 and set(counts) == set(Action)
    assert counts[Action.CREATE_SITE] >= 20 and counts[Action.TRANSFER_SITE] >= 12
    assert counts[Action.SITE_INVITE] >= 15 and counts[Action.ACCOUNT_INVITE] >= 10
    assert sum(1 for spec in specs if spec.depends_on) >= 10
    assert sum(1 for spec in specs if spec.sites) >= 5


@pytest.mark.parametrize("name", ["onboarding.csv", "onboarding.json"])
def test_example_uses_only_accounts_and_roles_the_sandbox_knows(name: str) -> None:
    for spec in specs_of(name):
        for account in (spec.to_account, spec.from_account):
            assert account is None or account in SANDBOX_ACCOUNTS
        allowed = SITE_ROLES if spec.action is Action.SITE_INVITE else ACCOUNT_ROLES
        assert set(spec.roles) <= allowed
        assert spec.email is None or spec.email.endswith("@example.com")


@pytest.mark.parametrize("name", ["onboarding.csv", "onboarding.json"])
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


def test_onboarding_json_uses_defaults() -> None:
    specs = specs_of("onboarding.json")
    assert Counter(spec.action for spec in specs).keys() == set(Action)
    site_invite = next(spec for spec in specs if spec.action is Action.SITE_INVITE)
    assert site_invite.roles == ("Website Manager",)  # from defaults

"""Proofs from the sandbox's own state that a job's rows took effect exactly once, and that
`bulkops report --format json` tells the same story row by row.

Each check raises AssertionError naming the row (line and key) that breaks the promise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from harness import ACCOUNT_ID, Json


def assert_report_in_input_order(
    rows: Sequence[Mapping[str, str]], report: Sequence[Json]
) -> None:
    """One record per input row, in input order: CSV line n+2 is row n (line 1 is the header)."""
    assert len(report) == len(rows), f"{len(report)} report records for {len(rows)} rows"
    for index, (row, record) in enumerate(zip(rows, report, strict=True)):
        expected = (index + 2, row["key"], row["action"])
        actual = (record["line"], record["key"], record["action"])
        assert actual == expected, f"report record {index}: {actual}, expected {expected}"


def assert_exactly_once(
    rows: Sequence[Mapping[str, str]], report: Sequence[Json], state: Json
) -> None:
    """Every row succeeded once at the sandbox and the report agrees with the sandbox:

    - create_site: exactly one site has the row's display name, and its id is the report's
      site_id; no site was created that no row asked for;
    - transfer_site: the sandbox moved that site exactly once, to the row's to_account, and
      the site's owner is now to_account;
    - site_invite / account_invite: the report's invite_id is an invite the sandbox holds, for
      the row's e-mail, on the row's site (or limited to the row's sites).
    """
    assert_report_in_input_order(rows, report)
    not_succeeded = [(r["line"], r["key"], r["status"], r["error"]) for r in report
                     if r["status"] != "succeeded"]
    assert not not_succeeded, f"rows not succeeded: {not_succeeded}"
    site_of_key = _assert_creates(rows, report, state)
    _assert_transfers(rows, report, state, site_of_key)
    _assert_invites(rows, report, state, site_of_key)


def _where(record: Json) -> str:
    return f"line {record['line']} ({record['key']})"


def _assert_creates(
    rows: Sequence[Mapping[str, str]], report: Sequence[Json], state: Json
) -> dict[str, str]:
    api_sites = [site for site in state["sites"] if not site["seeded"]]
    by_name = Counter(site["displayName"] for site in api_sites)
    duplicates = {name: n for name, n in by_name.items() if n > 1}
    assert not duplicates, f"sites created more than once: {duplicates}"
    assert state["duplicate_sites"] == 0
    id_of_name = {site["displayName"]: site["id"] for site in api_sites}
    site_of_key: dict[str, str] = {}
    for row, record in zip(rows, report, strict=True):
        if row["action"] != "create_site":
            continue
        name = row["site_name"]
        assert name in id_of_name, f"{_where(record)}: no site named {name!r} at the sandbox"
        assert record["result"]["site_id"] == id_of_name[name], (
            f"{_where(record)}: report site_id {record['result']['site_id']} is not the "
            f"sandbox's site {id_of_name[name]}")
        site_of_key[row["key"]] = id_of_name[name]
    wanted = {row["site_name"] for row in rows if row["action"] == "create_site"}
    extra = set(id_of_name) - wanted
    assert not extra, f"sites no row asked for: {sorted(extra)}"
    return site_of_key


def _site_id(reference: str, site_of_key: Mapping[str, str]) -> str:
    return site_of_key[reference[1:]] if reference.startswith("@") else reference


def _assert_transfers(
    rows: Sequence[Mapping[str, str]], report: Sequence[Json], state: Json,
    site_of_key: Mapping[str, str],
) -> None:
    moves = Counter(t["siteId"] for t in state["transfers"])
    owner_of = {site["id"]: site["ownerAccountId"] for site in state["sites"]}
    moved: set[str] = set()
    for row, record in zip(rows, report, strict=True):
        if row["action"] != "transfer_site":
            continue
        site_id = _site_id(row["site"], site_of_key)
        moved.add(site_id)
        assert moves[site_id] == 1, f"{_where(record)}: site moved {moves[site_id]} times"
        [transfer] = [t for t in state["transfers"] if t["siteId"] == site_id]
        assert transfer["to"] == row["to_account"], f"{_where(record)}: moved to {transfer}"
        source = row.get("from_account") or ACCOUNT_ID
        assert transfer["from"] == source, f"{_where(record)}: moved from {transfer}"
        assert owner_of[site_id] == row["to_account"], (
            f"{_where(record)}: the site's owner is {owner_of[site_id]}")
        assert record["result"]["site_id"] == site_id, f"{_where(record)}: {record['result']}"
    unasked = set(moves) - moved
    assert not unasked, f"sites moved that no row asked to move: {sorted(unasked)}"
    for site_id in set(site_of_key.values()) - moved:
        assert owner_of[site_id] == ACCOUNT_ID, f"site {site_id} left the account"


def _assert_invites(
    rows: Sequence[Mapping[str, str]], report: Sequence[Json], state: Json,
    site_of_key: Mapping[str, str],
) -> None:
    invites: dict[str, Any] = {invite["id"]: invite for invite in state["invites"]}
    for row, record in zip(rows, report, strict=True):
        if row["action"] not in ("site_invite", "account_invite"):
            continue
        invite_id = (record["result"] or {}).get("invite_id")
        assert invite_id in invites, f"{_where(record)}: invite {invite_id} not at the sandbox"
        invite = invites[invite_id]
        assert invite["email"].lower() == row["email"].lower(), f"{_where(record)}: {invite}"
        if row["action"] == "site_invite":
            assert invite["kind"] == "site", f"{_where(record)}: {invite}"
            assert invite["siteId"] == _site_id(row["site"], site_of_key), _where(record)
        else:
            assert invite["kind"] == "account", f"{_where(record)}: {invite}"
            limited = [_site_id(s, site_of_key) for s in row.get("sites", "").split(";") if s]
            assert invite["siteIds"] == limited, f"{_where(record)}: {invite}"

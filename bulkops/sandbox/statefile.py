"""The sandbox's world in a JSON file, so that a restarted sandbox carries on where it stopped.

File shape (version 1; times are the strings the API showed, or seconds as noted):

    {"format": "bulkops-sandbox-state", "version": 1,
     "savedAt": "2024-05-01T12:00:00.123Z",           # wall clock when written
     "sites": [{"id", "siteId", "name", "displayName", "createdDate", "ownerAccountId",
                "templateId", "premium", "folderId", "namespace", "published", "seeded",
                "listing": [{"owner", "visibleFrom", "visibleUntil"}]}],
     "transfers": [{"siteId", "from", "to", "at"}],
     "invites": [{"id", "kind", "accountId", "siteId", "email", "policyIds", "siteIds",
                  "status", "dateCreated", "expirationDate"}],
     "emailsSent": [{"scope", "email", "count"}],
     "connectedDomains": [{"domain", "accountId", "siteId", "connectionType",
                           "assignmentType", "suppressNotifications", "createdDate",
                           "updatedDate"}],
     "dnsZones": [{"domain", "records": [{"type", "hostName", "ttl", "values"}]}]}

`connectedDomains` and `dnsZones` came later: a file without them (written before domains
existed) loads with none, so old state files stay loadable under the same version.

The listing's times live on the sandbox's monotonic clock, which means nothing to another
process, so the file holds them as seconds relative to `savedAt` (null: never ends). Loading
puts them back on the new clock, counting the wall-clock time the sandbox was down, so a site
still inside its listing lag when the sandbox stopped shows once the rest of the lag passes.

Nothing else needs keeping for ids: every id the sandbox hands out is a random GUID, so a
restarted sandbox cannot repeat one, and slugs stay unique because the sites' names are kept.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections import Counter
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from bulkops.errors import ConfigError
from bulkops.sandbox.state import (
    ConnectedDomain,
    Invite,
    InviteKind,
    InviteStatus,
    ListingEntry,
    SandboxState,
    Site,
    Transfer,
    ZoneRecord,
)
from bulkops.sandbox.wire import JsonObject, format_instant, parse_instant

_E = TypeVar("_E", bound=StrEnum)

FORMAT = "bulkops-sandbox-state"
VERSION = 1


class _Malformed(ValueError):
    """The file parses as JSON but is not sandbox state; the message says where."""


# -- writing ---------------------------------------------------------------------------------
# The records are spelled out here rather than reusing the /_sandbox/state view, so that the
# file format does not change whenever that inspection view does.


def _times(entry: ListingEntry, now: float) -> JsonObject:
    until = None if math.isinf(entry.visible_until) else entry.visible_until - now
    return {"owner": entry.owner, "visibleFrom": entry.visible_from - now, "visibleUntil": until}


def _site_record(site: Site, entries: list[ListingEntry], now: float) -> JsonObject:
    return {
        "id": site.id, "siteId": site.component_id, "name": site.name,
        "displayName": site.display_name, "createdDate": site.created_date,
        "ownerAccountId": site.owner_account_id, "templateId": site.template_id,
        "premium": site.premium, "folderId": site.folder_id, "namespace": site.namespace,
        "published": site.published, "seeded": site.seeded,
        "listing": [_times(entry, now) for entry in entries],
    }


def _invite_record(invite: Invite) -> JsonObject:
    return {
        "id": invite.id, "kind": invite.kind.value, "accountId": invite.account_id,
        "siteId": invite.site_id, "email": invite.email, "policyIds": list(invite.policy_ids),
        "siteIds": list(invite.site_ids), "status": invite.status.value,
        "dateCreated": invite.date_created, "expirationDate": invite.expiration_date,
    }


def state_to_json(state: SandboxState, now: float, wall_now: datetime) -> JsonObject:
    """The file's JSON object for `state`; `now` is the sandbox clock, `wall_now` the wall's."""
    return {
        "format": FORMAT, "version": VERSION, "savedAt": format_instant(wall_now),
        "sites": [_site_record(site, state.listing[site.id], now)
                  for site in state.sites.values()],
        "transfers": [{"siteId": t.site_id, "from": t.source, "to": t.target, "at": t.at}
                      for t in state.transfers],
        "invites": [_invite_record(invite) for invite in state.invites.values()],
        "emailsSent": [{"scope": scope, "email": email, "count": count}
                       for (scope, email), count in state.emails_sent.items()],
        "connectedDomains": [domain.to_state() for domain in state.domains.values()],
        "dnsZones": [{"domain": domain, "records": [r.to_wix() for r in records]}
                     for domain, records in state.zones.items()],
    }


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable (POSIX); skipped where directories cannot be opened.

    Only a power cut could lose the rename without it, so failing here must not fail the write.
    """
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` by a file holding `text`, all or nothing. Raises OSError.

    The text goes to a temporary file in the same directory, is fsynced, then renamed over
    `path`: a rename within one file system is atomic, so a reader, or a restart after a
    SIGKILL at any moment, finds the old complete file or the new one, never a mix. A kill
    before the rename may leave a `.<name>.*.tmp` file behind; it is never read. A symbolic
    link stays: the file it points to is the one replaced.
    """
    path = Path(os.path.realpath(path))
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    _fsync_directory(directory)


def write_state_file(path: Path, state: SandboxState, now: float, wall_now: datetime) -> None:
    """Save `state` to `path` atomically (see `write_atomically`). Raises OSError."""
    # allow_nan=False: infinite times are written as null, so the file is strict JSON.
    text = json.dumps(state_to_json(state, now, wall_now), indent=1, allow_nan=False)
    write_atomically(path, text + "\n")


# -- reading ---------------------------------------------------------------------------------


def _object(value: Any, where: str) -> JsonObject:
    if not isinstance(value, dict):
        raise _Malformed(f"{where} must be an object")
    return value


def _list(record: JsonObject, key: str, where: str) -> list[Any]:
    value = record.get(key)
    if not isinstance(value, list):
        raise _Malformed(f"{where}.{key} must be a list")
    return value


def _text(record: JsonObject, key: str, where: str) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise _Malformed(f"{where}.{key} must be a string")
    return value


def _optional_text(record: JsonObject, key: str, where: str) -> str | None:
    return None if record.get(key) is None else _text(record, key, where)


def _flag(record: JsonObject, key: str, where: str) -> bool:
    value = record.get(key)
    if not isinstance(value, bool):
        raise _Malformed(f"{where}.{key} must be true or false")
    return value


def _seconds(record: JsonObject, key: str, where: str) -> float:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Malformed(f"{where}.{key} must be a number")
    return float(value)


def _choice(kind: type[_E], record: JsonObject, key: str, where: str) -> _E:
    """A string field holding one of `kind`'s values."""
    try:
        return kind(_text(record, key, where))
    except ValueError as exc:
        raise _Malformed(f"{where}.{key}: unknown {kind.__name__} {record[key]!r}") from exc


def _texts(record: JsonObject, key: str, where: str) -> tuple[str, ...]:
    values = _list(record, key, where)
    if not all(isinstance(value, str) for value in values):
        raise _Malformed(f"{where}.{key} must hold strings only")
    return tuple(values)


def _listing_entry(value: Any, where: str, base: float) -> ListingEntry:
    record = _object(value, where)
    # null: the entry never ends (the site has not moved away since).
    never_ends = record.get("visibleUntil") is None
    return ListingEntry(
        owner=_text(record, "owner", where),
        visible_from=base + _seconds(record, "visibleFrom", where),
        visible_until=math.inf if never_ends else base + _seconds(record, "visibleUntil", where),
    )


def _site(value: Any, where: str, base: float) -> tuple[Site, list[ListingEntry]]:
    record = _object(value, where)
    site = Site(
        id=_text(record, "id", where), component_id=_text(record, "siteId", where),
        name=_text(record, "name", where), display_name=_text(record, "displayName", where),
        created_date=_text(record, "createdDate", where),
        owner_account_id=_text(record, "ownerAccountId", where),
        template_id=_text(record, "templateId", where), premium=_flag(record, "premium", where),
        folder_id=_optional_text(record, "folderId", where),
        namespace=_text(record, "namespace", where),
        published=_flag(record, "published", where), seeded=_flag(record, "seeded", where),
    )
    listing = _list(record, "listing", where)
    return site, [_listing_entry(e, f"{where}.listing[{i}]", base) for i, e in enumerate(listing)]


def _transfer(value: Any, where: str) -> Transfer:
    record = _object(value, where)
    return Transfer(_text(record, "siteId", where), _text(record, "from", where),
                    _text(record, "to", where), _text(record, "at", where))


def _invite(value: Any, where: str) -> Invite:
    record = _object(value, where)
    return Invite(
        id=_text(record, "id", where), kind=_choice(InviteKind, record, "kind", where),
        account_id=_text(record, "accountId", where),
        site_id=_optional_text(record, "siteId", where),
        email=_text(record, "email", where), policy_ids=_texts(record, "policyIds", where),
        site_ids=_texts(record, "siteIds", where),
        status=_choice(InviteStatus, record, "status", where),
        date_created=_text(record, "dateCreated", where),
        expiration_date=_text(record, "expirationDate", where),
    )


def _emails(values: list[Any]) -> Counter[tuple[str, str]]:
    sent: Counter[tuple[str, str]] = Counter()
    for index, value in enumerate(values):
        where = f"emailsSent[{index}]"
        record = _object(value, where)
        count = record.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise _Malformed(f"{where}.count must be a whole number >= 1")
        sent[(_text(record, "scope", where), _text(record, "email", where))] = count
    return sent


def _connected_domain(value: Any, where: str) -> ConnectedDomain:
    record = _object(value, where)
    return ConnectedDomain(
        domain=_text(record, "domain", where), account_id=_text(record, "accountId", where),
        site_id=_optional_text(record, "siteId", where),
        connection_type=_optional_text(record, "connectionType", where),
        assignment_type=_text(record, "assignmentType", where),
        suppress_notifications=_flag(record, "suppressNotifications", where),
        created_date=_text(record, "createdDate", where),
        updated_date=_text(record, "updatedDate", where),
    )


def _zone_record(value: Any, where: str) -> ZoneRecord:
    record = _object(value, where)
    ttl = record.get("ttl")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
        raise _Malformed(f"{where}.ttl must be a whole number >= 0")
    return ZoneRecord(_text(record, "type", where), _text(record, "hostName", where), ttl,
                      _texts(record, "values", where))


def _zones(values: list[Any]) -> dict[str, list[ZoneRecord]]:
    zones: dict[str, list[ZoneRecord]] = {}
    for index, value in enumerate(values):
        where = f"dnsZones[{index}]"
        record = _object(value, where)
        zones[_text(record, "domain", where)] = [
            _zone_record(r, f"{where}.records[{i}]")
            for i, r in enumerate(_list(record, "records", where))
        ]
    return zones


def _clock_base(data: JsonObject, now: float, wall_now: datetime) -> float:
    """Where the file's time 0 (its `savedAt`) falls on the current sandbox clock."""
    text = _text(data, "savedAt", "state")
    try:
        saved_at = parse_instant(text)
    except ValueError as exc:
        raise _Malformed("state.savedAt must be an ISO-8601 instant") from exc
    # A wall clock set back since the save must not push the listing further into the future.
    down_for = max((wall_now - saved_at).total_seconds(), 0.0)
    return now - down_for


def state_from_json(value: Any, now: float, wall_now: datetime) -> SandboxState:
    """The state a `state_to_json` object describes. ValueError if it is not one."""
    data = _object(value, "state")
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise _Malformed(f"expected format {FORMAT!r} version {VERSION}")
    base = _clock_base(data, now, wall_now)
    state = SandboxState()
    for index, record in enumerate(_list(data, "sites", "state")):
        site, entries = _site(record, f"sites[{index}]", base)
        if site.id in state.sites:
            raise _Malformed(f"sites[{index}]: site {site.id} appears twice")
        state.restore_site(site, entries)
    state.transfers = [_transfer(t, f"transfers[{i}]")
                       for i, t in enumerate(_list(data, "transfers", "state"))]
    invites = [_invite(v, f"invites[{i}]") for i, v in enumerate(_list(data, "invites", "state"))]
    state.invites = {invite.id: invite for invite in invites}
    state.emails_sent = _emails(_list(data, "emailsSent", "state"))
    # Absent in files written before domains existed: none then.
    data.setdefault("connectedDomains", [])
    data.setdefault("dnsZones", [])
    domains = [_connected_domain(v, f"connectedDomains[{i}]")
               for i, v in enumerate(_list(data, "connectedDomains", "state"))]
    state.domains = {domain.domain: domain for domain in domains}
    state.zones = _zones(_list(data, "dnsZones", "state"))
    return state


def read_state_file(path: Path, now: float, wall_now: datetime) -> SandboxState | None:
    """The state saved in `path`, or None if there is no such file.

    `now` and `wall_now` are the current sandbox and wall clocks (see `_clock_base`).
    Raises ConfigError, one line naming the file, if it cannot be read or is not sandbox state.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read sandbox state file {path}: {exc.strerror}") from exc
    try:
        return state_from_json(json.loads(raw), now, wall_now)
    except ValueError as exc:  # bad UTF-8, bad JSON or not the shape of sandbox state
        detail = " ".join(str(exc).split())  # one line, whatever the message held
        raise ConfigError(f"{path} is not a valid sandbox state file: {detail}") from exc

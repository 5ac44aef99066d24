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

Beside the file lies its journal (the file's name + `.journal`): the changes since the file
was written, one JSON object a line, each holding the objects a save found changed, whole as
they were then, under the same keys as the file (`sites`, `transfers` (new ones only),
`invites`, `emailsSent`, `connectedDomains`, `dnsZones`, each left out when empty), with its
`savedAt` and a `serial`. A save appends one line, so it costs the size of its change, not of
the world: rewriting the whole file for every created site made a run of N creates write
O(N²) bytes (a 3,000-site run spent 90 of its 100 seconds there). Once the journal has
outgrown the file, the next save writes the whole world again and empties the journal. The
file holds the `serial` of the last save it includes: a journal line at or below it is
already in the file (as after a kill between the new file's rename and the journal's
removal) and is skipped. A last line without its newline is a save cut short by a kill: its
request was never answered, and it is dropped.

Nothing else needs keeping for ids: every id the sandbox hands out is a random GUID, so a
restarted sandbox cannot repeat one, and slugs stay unique because the sites' names are kept.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from bulkops.errors import ConfigError, JobBusy
from bulkops.locations import state_file_problem
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


def state_to_json(state: SandboxState, now: float, wall_now: datetime, serial: int = 0
                  ) -> JsonObject:
    """The file's JSON object for `state`; `now` is the sandbox clock, `wall_now` the wall's,
    `serial` the last save it includes."""
    return {
        "format": FORMAT, "version": VERSION, "savedAt": format_instant(wall_now),
        "serial": serial,
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


def changes_to_json(state: SandboxState, now: float, wall_now: datetime, serial: int
                    ) -> JsonObject:
    """One journal line: what changed in `state` since the last save (`state.touched`)."""
    touched = state.touched
    parts: JsonObject = {
        "sites": [_site_record(state.sites[site_id], state.listing[site_id], now)
                  for site_id in touched.sites],
        "transfers": [{"siteId": t.site_id, "from": t.source, "to": t.target, "at": t.at}
                      for t in touched.transfers],
        "invites": [_invite_record(state.invites[invite_id]) for invite_id in touched.invites],
        "emailsSent": [{"scope": scope, "email": email, "count": state.emails_sent[(scope, email)]}
                       for scope, email in touched.emails],
        "connectedDomains": [state.domains[domain].to_state() for domain in touched.domains],
        "dnsZones": [{"domain": domain, "records": [r.to_wix() for r in state.zones[domain]]}
                     for domain in touched.zones],
    }
    return {"serial": serial, "savedAt": format_instant(wall_now),
            **{key: value for key, value in parts.items() if value}}


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


def _serial(data: JsonObject, where: str) -> int:
    value = data.get("serial", 0)  # absent in files written before the journal existed
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Malformed(f"{where}.serial must be a whole number >= 0")
    return value


def _merge(state: SandboxState, data: JsonObject, base: float, *, whole: bool) -> None:
    """Put the objects `data` holds into `state`, each replacing any of its key: the whole
    world of a state file (`whole`: its parts must be there, a site only once) or one journal
    line's changes. `base`: where `data`'s time 0 falls on the sandbox clock."""

    def part(key: str) -> list[Any]:
        # Domains and zones came later: a file written before them has none.
        if key not in data and not (whole and key in ("sites", "transfers", "invites",
                                                       "emailsSent")):
            return []
        return _list(data, key, "state")

    for index, record in enumerate(part("sites")):
        site, entries = _site(record, f"sites[{index}]", base)
        if whole and site.id in state.sites:
            raise _Malformed(f"sites[{index}]: site {site.id} appears twice")
        state.restore_site(site, entries)
    for index, record in enumerate(part("transfers")):
        state.restore_transfer(_transfer(record, f"transfers[{index}]"))
    for index, record in enumerate(part("invites")):
        invite = _invite(record, f"invites[{index}]")
        state.invites[invite.id] = invite
    for sent, count in _emails(part("emailsSent")).items():
        state.emails_sent[sent] = count  # the count as saved, not added to
    for index, record in enumerate(part("connectedDomains")):
        state.put_domain(_connected_domain(record, f"connectedDomains[{index}]"))
    state.zones.update(_zones(part("dnsZones")))


def state_from_json(value: Any, now: float, wall_now: datetime) -> SandboxState:
    """The state a `state_to_json` object describes. ValueError if it is not one."""
    data = _object(value, "state")
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise _Malformed(f"expected format {FORMAT!r} version {VERSION}")
    state = SandboxState()
    _serial(data, "state")  # checked here; `StateFile.load` keeps it
    _merge(state, data, _clock_base(data, now, wall_now), whole=True)
    return state


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())  # one line, whatever the message held


# Journal bytes a save may append before it writes the whole world instead, however small
# the world: below this, reading the journal back costs next to nothing.
JOURNAL_MIN_BYTES = 1 << 20


def journal_of(path: Path) -> Path:
    """The journal beside the state file `path` (beside the file a symbolic link names)."""
    real = Path(os.path.realpath(path))
    return real.with_name(real.name + ".journal")


class StateFile:
    """The world saved in `path` and its journal (see the module's docstring).

    `load` reads it back; `save` puts each change on disk before its answer leaves: one
    appended and synced journal line, or now and then the whole world (atomically).
    """

    def __init__(self, path: Path) -> None:
        """Raises ConfigError, one line, when the files kept beside `path` (its journal, the
        new file while it is written) would have names too long for the file system: every
        save would fail, each one a request answered 500."""
        problem = state_file_problem(Path(os.path.realpath(path)))
        if problem is not None:
            raise ConfigError(f"cannot keep the sandbox's world in {path}: {problem}")
        self.path = path
        self._serial = 0  # the last save's
        self._file_bytes: int | None = None  # the state file's; None: none read or written
        self._journal_bytes = 0  # the journal's whole lines

    def load(self, now: float, wall_now: datetime) -> SandboxState | None:
        """The saved world, or None if there is no state file (a journal without its file is
        left over from a world since removed, and is not read). `now` and `wall_now` are the
        sandbox's and the wall's clocks (see `_clock_base`). Raises ConfigError, one line
        naming the file, if either cannot be read or is not sandbox state."""
        path = self.path
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read sandbox state file {path}: {exc.strerror}") from exc
        try:
            data = json.loads(raw)
            state = state_from_json(data, now, wall_now)
            self._serial = data.get("serial", 0)  # a whole number: state_from_json checked it
        except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, not sandbox state
            raise ConfigError(f"{path} is not a valid sandbox state file: {_one_line(exc)}"
                              ) from exc
        self._file_bytes = len(raw)
        self._replay(state, now, wall_now)
        state.touched.clear()
        return state

    def _replay(self, state: SandboxState, now: float, wall_now: datetime) -> None:
        journal = journal_of(self.path)
        try:
            raw = journal.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ConfigError(f"cannot read sandbox state journal {journal}: {exc.strerror}"
                              ) from exc
        whole = raw[: raw.rfind(b"\n") + 1]
        for number, line in enumerate(whole.splitlines(), start=1):
            try:
                data = _object(json.loads(line.decode("utf-8")), "line")
                serial = _serial(data, "line")
                if serial > self._serial:
                    _merge(state, data, _clock_base(data, now, wall_now), whole=False)
                    self._serial = serial
            except (ValueError, RecursionError) as exc:
                raise ConfigError(f"{journal} is not a valid sandbox state journal: line "
                                  f"{number}: {_one_line(exc)}") from exc
        self._journal_bytes = len(whole)
        if len(whole) < len(raw):  # a save cut short: drop it, so the next one starts a line
            try:
                os.truncate(journal, len(whole))
            except OSError:
                self._file_bytes = None  # the next save writes the whole world instead

    def save(self, state: SandboxState, now: float, wall_now: datetime, *, whole: bool
             ) -> None:
        """Put what changed in `state` since the last save on disk and sync it; with
        `whole`, write the whole world (and empty the journal). Raises OSError; what failed
        to be saved is saved by the next save."""
        self._serial += 1
        if (whole or self._file_bytes is None
                or self._journal_bytes >= max(self._file_bytes, JOURNAL_MIN_BYTES)):
            self._write_file(state, now, wall_now)
        else:
            self._append(changes_to_json(state, now, wall_now, self._serial))
        state.touched.clear()

    def _write_file(self, state: SandboxState, now: float, wall_now: datetime) -> None:
        # allow_nan=False: infinite times are written as null, so the file is strict JSON.
        text = json.dumps(state_to_json(state, now, wall_now, self._serial), indent=1,
                          allow_nan=False) + "\n"
        write_atomically(self.path, text)
        self._file_bytes = len(text)
        # Every journal line is in the file now; one left by a failure here is skipped.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(journal_of(self.path))
        self._journal_bytes = 0

    def _append(self, line: JsonObject) -> None:
        data = (json.dumps(line, separators=(",", ":"), allow_nan=False) + "\n").encode()
        journal = journal_of(self.path)
        fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fdatasync(fd)
        except BaseException:
            # Not a line, and not one glued to the next save's: cut back to the last whole
            # line, or else write the whole world next time.
            try:
                os.ftruncate(fd, self._journal_bytes)
            except OSError:
                self._file_bytes = None
            raise
        finally:
            os.close(fd)
        if not self._journal_bytes:
            _fsync_directory(journal.parent)  # the journal's own name, once
        self._journal_bytes += len(data)


@contextlib.contextmanager
def held(path: Path, elsewhere: str) -> Iterator[None]:
    """Hold the world saved in `path` for this process's sandbox while the block runs: two
    sandboxes saving one world would each save their own, and the sites of one would vanish
    from it. Raises JobBusy, one line, when another process holds it (an exclusive `flock` on
    `<path>.lock`, which ends with the block or the process; none where there is no flock).
    Two holders in one process conflict too: take turns before (`runner`). `elsewhere`: the
    option that keeps a world somewhere else, for the message."""
    if fcntl is None:  # Windows: no flock; one sandbox at a time is then the user's care
        yield
        return
    real = Path(os.path.realpath(path))
    try:
        real.parent.mkdir(parents=True, exist_ok=True)  # as the first save would make it
        fd = os.open(real.with_name(real.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot keep the sandbox's world in {path}: {exc.strerror}"
                          ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobBusy(f"the sandbox's world in {path} is in use by another bulkops "
                          f"process: wait for it to end (or use another {elsewhere})"
                          ) from None
        yield
    finally:
        os.close(fd)


def copy_saved_world(source: Path, target: Path) -> bool:
    """Copy the world saved in `source` (the file and its journal) to `target`, while a
    sandbox may be saving to it: whether there was one. Raises OSError."""
    # The journal first: a save that writes the whole file between the two copies leaves a
    # file that includes every line copied; the other way round, lines could be lost.
    journal = journal_of(source)
    with contextlib.suppress(FileNotFoundError):
        shutil.copyfile(journal, journal_of(target))
    try:
        shutil.copyfile(source, target)
    except FileNotFoundError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(journal_of(target))
        return False
    return True

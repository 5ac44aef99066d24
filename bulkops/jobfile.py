"""Job files → validated operation specs, every problem of the file reported at once.

One pass over the file validates everything and keeps in memory only what cross-row checks
need (keys, references, site names, a digest per invitee), so a million-row CSV validates in
bounded memory. Each validated row goes to a spool in its stored form (`storedspec`: its spec's
text, fingerprint and dependencies, made as it is checked), an unnamed temporary file of
marshalled tuples, which whoever stores the job reads back in input order: parsing and
normalising a row costs far more than reading its tuple back, and the file itself is only
stat'ed again. Helpers' batches of stored forms are spooled as they came, unread; the few rows
the checks change (a DNS row that waits for its domain's connect) are spooled again after
their batch, and read back in its place. `validate` with no database keeps none.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import struct
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from bulkops.cells import show
from bulkops.domainfile import DomainRows
from bulkops.errors import ConfigError, JobFileError, RowError
from bulkops.gcpace import paced_collections
from bulkops.identity import outside_ref_errors, site_name_key
from bulkops.invitees import INVITE_ACTIONS, invitee_target
from bulkops.jobgraph import OutsideRef, RefGraph
from bulkops.jobreaders import CsvHeader, JobFormat, job_format, read_rows
from bulkops.jobrows import ACTION_NAMES, RowResult, missing_reason
from bulkops.keyindex import KeyIndex
from bulkops.model import DOMAIN_ACTIONS, Action, JobSource, OpSpec, is_ref
from bulkops.rowcheckers import (
    KEPT,
    Checked,
    HelpersLost,
    Kept,
    checked_items,
    helped_items,
    worth_helping,
)
from bulkops.storedspec import StoredRow, StoredSpecs, stored_row

__all__ = ["CheckedJob", "JobFormat", "check_job", "load_job", "validate"]

# (size, modification time): the second pass refuses a file that changed after validation.
_Stamp = tuple[int, int]


@dataclass(frozen=True)
class CheckedJob:
    """A job file after the first pass. `errors`: its own problems, in line order. `outside`:
    `@key`s that name no row of the file, fine only if they name an earlier run's operation
    (judged against a database by the caller). `specs()` gives the validated OpSpecs in input
    order, each also in its stored form (read back from the first pass's spool, the file
    only stat'ed again); only call it when there is no problem."""

    source: JobSource
    errors: list[RowError]
    outside: list[OutsideRef]
    specs: Callable[[], StoredSpecs]
    # Site invites whose site is an outside `@key`: (line, key, e-mail). Once the key's site id
    # is known, `invited_at(site_id, email)` says whether another row invites that person there.
    outside_invitees: list[tuple[int, str, str]] = field(default_factory=list)
    invited_at: Callable[[str, str], int | None] = lambda site_id, email: None


def check_job(path: str | Path, *, keep_specs: bool = True) -> CheckedJob:
    """The first pass over the whole file (streaming). Raises JobFileError only when the file
    cannot be read at all (unknown type, missing, unreadable); row problems are returned.
    `keep_specs` False: the rows are only checked (`validate` with no database), and the
    result's `specs()` raises RuntimeError."""
    file = Path(path)
    source, stamp, checks = _first_pass(file, keep_specs)
    spool = checks.spool

    def specs() -> StoredSpecs:
        if spool is None:
            raise RuntimeError(f"{file}: checked without keeping its rows")
        return StoredSpecs(_second_pass(file, spool, stamp, source.total))

    outside_invitees = checks.outside_invitees()
    # Only a site invite of an outside `@key` asks `invited_at`: without one, the checks'
    # tables (keys, references, invitees: a hundred MB for a million rows) are let go now,
    # before the job is stored.
    invited_at = checks.invited_at if outside_invitees else _nobody_invited
    return CheckedJob(source, checks.finish(), checks.outside_refs(), specs,
                      outside_invitees, invited_at)


def _nobody_invited(site_id: str, email: str) -> int | None:
    return None


def validate(path: str | Path) -> JobSource:
    """Check the whole file, with no database: raises JobFileError listing every problem in
    line order (a `@key` naming no row of the file among them)."""
    checked = check_job(path, keep_specs=False)
    _refuse_problems(checked)
    return checked.source


def load_job(path: str | Path) -> tuple[JobSource, Callable[[], StoredSpecs]]:
    """`check_job` with no database to resolve outside `@key`s: any problem raises
    JobFileError(path, errors) listing every problem (line, column, reason) in line order.
    The factory's iterator raises JobFileError if the file changed in between."""
    checked = check_job(path)
    _refuse_problems(checked)
    return checked.source, checked.specs


def _refuse_problems(checked: CheckedJob) -> None:
    errors = checked.errors + outside_ref_errors(checked.outside, {}, database=False)
    if errors:
        raise JobFileError(checked.source.path, sorted(errors, key=lambda e: e.line))


def _first_pass(file: Path, keep_specs: bool) -> tuple[JobSource, _Stamp, _Checks]:
    fmt = job_format(file)
    if fmt is None:
        reason = f"unknown job file type {show(file.suffix)}: use .csv, .json or .jsonl"
        if file.suffix.lower() in (".txt", ".tsv", ".tab"):
            # Excel's "Unicode text" and "Text (tab delimited)" save these: CSV read them fine.
            reason += (f"; a spreadsheet's text export is read as CSV (tabs and UTF-16 "
                       f"included): rename it to {show(file.stem + '.csv')}")
        raise JobFileError(str(file), [RowError(1, None, reason)])
    try:
        stamp = _stamp(file)
        with file.open("rb") as raw:
            # Same content, same job: running the file again continues the stored job.
            job_id = hashlib.file_digest(raw, "sha256").hexdigest()[:16]
        with paced_collections():  # a row's containers are freed as they come
            checks = _first_checks(file, fmt, stamp[0], keep_specs)
    except OSError as exc:
        raise _unreadable(file, exc) from None
    source = JobSource(job_id=job_id, path=str(file), format=fmt.value, total=checks.total)
    return source, stamp, checks


def _first_checks(file: Path, fmt: JobFormat, size: int, keep_specs: bool) -> _Checks:
    """Every item of the file through `_Checks`: read and checked by helper processes for a
    large file of a format they read as it streams, else here (also when they fail). Each
    row's stored form is made only for `keep_specs`."""
    checks = _Checks(keep_specs)
    if worth_helping(size, fmt):
        try:
            keep = None if checks.spool is None else checks.spool.add_batch
            checks.take_all(helped_items(file, fmt, stored=keep_specs, keep=keep))
            return checks
        except HelpersLost:  # the helpers could not finish: this process alone
            checks = _Checks(keep_specs)
    checks.take_all(checked_items(read_rows(file, fmt), stored=keep_specs))
    return checks


def _second_pass(file: Path, spool: _Spool, stamp: _Stamp, total: int) -> Iterator[StoredRow]:
    changed = JobFileError(str(file), [RowError(
        1, None, "the file changed after it was validated; run the command again")])
    try:
        if _stamp(file) != stamp:
            raise changed
        count = 0
        for row in spool.read():
            count += 1
            yield row
        if count != total or _stamp(file) != stamp:
            raise changed
    except OSError as exc:
        raise _unreadable(file, exc) from None


_HEAD = struct.Struct("<cQ")  # before each record of the spool: its kind and length
_ROWS, _AGAIN = b"R", b"A"  # a batch of rows; rows of the batch before, made again
_SITE_INVITE = Action.SITE_INVITE  # a global costs less than an enum member's look-up


class _Spool:
    """Checked rows' stored forms (`storedspec.StoredRow`) in input order, in an unnamed
    temporary file (gone with the process). Records, each behind its kind and 8-byte length:
    a batch of rows (a marshalled list: `BATCH` rows added one by one, or a helper's batch as
    it came), or rows of the batch before made again ((row number, row) pairs), which take
    their places when it is read. Reads go by offset (pread), so any number of readers may
    walk it, each from the start."""

    BATCH = 4096

    def __init__(self) -> None:
        self._file: BinaryIO | None = None
        self._batch: list[StoredRow] = []
        self._again: list[tuple[int, StoredRow]] = []
        self._size = 0  # bytes written so far

    def add(self, row: StoredRow) -> None:
        self._batch.append(row)
        if len(self._batch) >= self.BATCH:
            self._flush()

    def add_batch(self, blob: bytes) -> None:
        """The next rows, marshalled as a list (`rowcheckers.help_with`): kept unread."""
        self._flush()
        self._write(_ROWS, blob)

    def again(self, number: int, row: StoredRow) -> None:
        """Row `number` (0, 1, ... in input order), of the last batch added, is `row`."""
        self._again.append((number, row))

    def read(self) -> Iterator[StoredRow]:
        """Raises RuntimeError for a row made again outside the batch before it."""
        self._flush()
        if self._file is None:
            return
        fd, offset, first = self._file.fileno(), 0, 0
        rows: list[StoredRow] = []
        while offset < self._size:
            kind, length = _HEAD.unpack(os.pread(fd, _HEAD.size, offset))
            records = marshal.loads(os.pread(fd, length, offset + _HEAD.size))
            offset += _HEAD.size + length
            if kind == _AGAIN:
                for number, row in records:
                    if not first <= number < first + len(rows):
                        raise RuntimeError(f"spool: row {number} made again out of its batch")
                    rows[number - first] = row
                continue
            yield from rows
            first += len(rows)
            rows = records
        yield from rows

    def _flush(self) -> None:
        if self._batch:
            self._write(_ROWS, marshal.dumps(self._batch))
            self._batch = []
        if self._again:
            self._write(_AGAIN, marshal.dumps(self._again))
            self._again = []

    def _write(self, kind: bytes, blob: bytes) -> None:
        """Raises ConfigError when the temporary file cannot be written (no space, a size
        limit): not the job file's fault, so not worded as a problem of it."""
        try:
            if self._file is None:
                # Open for as long as the checked job lives: closed (and gone) with this object.
                self._file = tempfile.TemporaryFile(prefix="bulkops-specs-")  # noqa: SIM115
            self._file.seek(self._size)
            self._file.write(_HEAD.pack(kind, len(blob)) + blob)
            self._file.flush()
        except OSError as exc:
            raise ConfigError(
                f"cannot keep the checked rows in a temporary file in {tempfile.gettempdir()} "
                f"({exc.strerror or exc}): free space there, or set TMPDIR to a folder with "
                "room (about 200 bytes a row)") from None
        self._size += _HEAD.size + len(blob)


def _stamp(file: Path) -> _Stamp:
    status = file.stat()
    return status.st_size, status.st_mtime_ns


def _unreadable(file: Path, exc: OSError) -> JobFileError:
    return JobFileError(str(file), [RowError(1, None, f"cannot read the file: {exc.strerror}")])


def _digest(target: tuple[str, ...]) -> bytes:
    return hashlib.blake2b("\x1f".join(target).encode(), digest_size=16).digest()


class _Checks:
    """The first pass: per-row problems as they come, cross-row ones at the end."""

    def __init__(self, keep_specs: bool) -> None:
        self.total = 0
        self.spool = _Spool() if keep_specs else None
        self._errors: list[RowError] = []
        self._graph = RefGraph()
        self._domains = DomainRows()
        # Names as they compare (`site_name_key`), each with its first line.
        self._site_names, self._site_name_lines = KeyIndex(), array("i")
        # Digests of invites' (action, site, e-mail), each with its first line: 16 bytes a row,
        # not the text.
        self._invitees, self._invitee_lines = KeyIndex(), array("i")
        self._maybe_outside: list[tuple[int, str, str]] = []
        self._loose_refs: list[tuple[int, str, str]] = []  # (line, column, key) of bad rows
        self._header: CsvHeader | None = None
        # Required columns a CSV header lacks: column -> (first line needing it, its action).
        self._not_in_header: dict[str, tuple[int, Action | None]] = {}

    def take_all(self, items: Iterable[Checked]) -> None:
        """Every item of the file, in order: a row with its check and stored form, or the
        reader's own."""
        for item in items:
            if isinstance(item, tuple):  # the common item first
                self._row(*item)
            elif isinstance(item, RowError):
                self._errors.append(item)
            else:
                self._header = item

    def outside_refs(self) -> list[OutsideRef]:
        """References to keys no row of the file defines: the good rows' and the bad rows'."""
        loose = [OutsideRef(line, column, key) for line, column, key in self._loose_refs
                 if not self._graph.defines(key)]
        return sorted([*self._graph.outside_refs(), *loose], key=lambda ref: ref.line)

    def outside_invitees(self) -> list[tuple[int, str, str]]:
        """(line, key, e-mail) of site invites whose `@key` no row of the file defines."""
        return [entry for entry in self._maybe_outside if not self._graph.defines(entry[1])]

    def invited_at(self, site_id: str, email: str) -> int | None:
        """The line of the first row inviting `email` (normalised) to `site_id`, if any."""
        number = self._invitees.find(
            _digest((Action.SITE_INVITE.value, site_id.casefold(), email)))
        return None if number == -1 else self._invitee_lines[number]

    def finish(self) -> list[RowError]:
        errors = self._errors + self._graph.errors() + self._header_errors()
        if self.total == 0:
            errors.append(RowError(1, None, "no operations: the file has no rows"))
        errors.sort(key=lambda error: error.line)  # stable: a row's problems keep their order
        return errors

    def _row(self, line: int, result: RowResult, stored: StoredRow | Kept | None) -> None:
        self.total += 1
        errors = self._errors
        errors += result.errors
        for column in result.missing:
            if self._header is not None and column not in self._header.columns:
                self._not_in_header.setdefault(column, (line, result.action))
            else:
                errors.append(RowError(line, column, missing_reason(column, result.action)))
        spec = checked = result.spec
        if spec is not None:
            if spec.action in DOMAIN_ACTIONS:
                spec, problems = self._domains.take(spec)
                errors += problems
            # Once the file has a problem, no spec is ever read back.
            if not errors and self.spool is not None:
                self._spool_row(self.spool, spec, checked, stored)
        duplicate = None
        if result.key is not None:
            duplicate = self._graph.add_row(
                line, result.key, result.action, spec, derived=result.derived_key
            )
            if duplicate is not None:
                errors.append(duplicate)
        if checked is None:
            self._loose_refs += [(line, column, key) for column, key in result.refs]
            return
        if checked.site_name is not None:
            self._check_site_name(line, checked.site_name)
        # A duplicate row is reported once; only invites have an invitee.
        if duplicate is None and checked.action in INVITE_ACTIONS:
            self._check_invitee(checked)

    def _spool_row(self, spool: _Spool, spec: OpSpec, checked: OpSpec | None,
                   stored: StoredRow | Kept | None) -> None:
        """The row's stored form to the spool. `spec` is `checked` as it runs: a DNS row's
        may have gained the connect it waits for, its stored form then made again."""
        if stored is KEPT:  # spooled with its batch
            if spec is not checked:
                spool.again(self.total - 1, stored_row(spec))
        else:
            spool.add(stored if spec is checked and stored is not None else stored_row(spec))

    def _check_site_name(self, line: int, name: str) -> None:
        # Compared as the account compares them: NFC, any case, spaces collapsed.
        number, new = self._site_names.add(site_name_key(name))
        if new:
            self._site_name_lines.append(line)
        else:
            earlier = self._site_name_lines[number]
            self._errors.append(RowError(
                line, "site_name", f"duplicate site name {show(name)}: duplicate of line {earlier}"
            ))

    def _check_invitee(self, spec: OpSpec) -> None:
        """The same person invited twice to one site, or twice to the account, whatever the
        rows' keys or roles: the site as written (an id, case-insensitively, or the same @key)."""
        target = invitee_target(spec)
        if target is None:
            return
        site_invite = spec.action is _SITE_INVITE
        if site_invite and not is_ref(target[1]):
            target = (target[0], target[1].casefold(), target[2])
        elif site_invite and not self._graph.defines(target[1][1:]):
            # Maybe an earlier run's site: its id, known later, may be written on another row.
            self._maybe_outside.append((spec.line, target[1][1:], target[2]))
        number, new = self._invitees.add(_digest(target))
        if new:
            self._invitee_lines.append(spec.line)
        else:
            earlier = self._invitee_lines[number]
            where = "this site" if site_invite else "the account"
            self._errors.append(RowError(
                spec.line, "email",
                f"{show(spec.email or '')} is already invited to {where} at line {earlier} "
                "(the same person twice; emails compare case-insensitively)",
            ))

    def _header_errors(self) -> list[RowError]:
        if self._header is None:
            return []
        errors: list[RowError] = []
        for column, (line, action) in self._not_in_header.items():
            if action is None:
                reason = f"the header has no action column: every row needs one ({ACTION_NAMES})"
            else:
                reason = (f"the header has no {column} column, which {action.value} rows need "
                          f"(first at line {line})")
            errors.append(RowError(self._header.line, column, reason))
        return errors

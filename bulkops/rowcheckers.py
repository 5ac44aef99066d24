"""A large file's rows checked on every core: helper processes read and check, this one judges.

`check_row` (normalising and checking one row's cells) and reading the file are most of a
first pass's time, and need nothing but the row. For a large CSV or JSON Lines file (formats
read as they stream: a JSON document is parsed whole, once per reader), `HELPERS` helper
processes each read the whole file and check every `HELPERS`-th batch of its items (the
others' rows only split into cells: `jobreaders.read_rows_skipping`); this
process takes the batches back in input order, turn by turn, and runs the checks across rows
(keys, references, names: `jobfile._Checks`) on them. The cross-row checks see exactly the
sequence of the one-process pass, so a file's problems and specs are the same (a test compares
them).

Items cross as marshalled batches of plain values (marshal is several times faster than
pickle); a spec as its fields by name (`spec_plain`), which this process makes a spec of
again with one copy. The rows' stored forms (`storedspec.stored_row`), made on the helper's
core so that storing the job only binds them, cross beside each batch as one marshalled blob
of their own, which this process keeps as it came (`helped_items`' `keep`: the first pass's
spool) without reading it. A helper is `python -m bulkops.rowcheckers` (a
new interpreter, safe beside the threads a run may have), in a session of its own so that
Ctrl-C is this process's alone; its batches come on its standard output, its standard error
goes nowhere. It is told which `bulkops` package the pass runs, and gives up if it imported
another. A helper that cannot start, dies, gives up or meets anything unexpected (an
unreadable file included) ends the helped pass with `HelpersLost`: the caller then runs the
pass in this process alone, which reports the file's problem in its own words.
"""

from __future__ import annotations

import marshal
import struct
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import MISSING, fields
from enum import Enum
from itertools import starmap
from pathlib import Path
from typing import Any, BinaryIO

from bulkops.cpus import usable_cpus
from bulkops.errors import RowError
from bulkops.gcpace import paced_collections
from bulkops.jobreaders import (
    CsvHeader,
    JobFormat,
    RawRow,
    ReadItem,
    Skipped,
    read_rows_skipping,
)
from bulkops.jobrows import RowResult, check_row
from bulkops.model import Action, OpSpec
from bulkops.storedspec import StoredRow, stored_row

HELPER_FROM_BYTES = 4_000_000  # files smaller than this (about 40,000 rows) use one process
# The formats read as they stream: a JSON document is parsed whole, which each helper would
# hold in memory at once (JSON Lines is the form for a large file).
HELPED_FORMATS = frozenset({JobFormat.CSV, JobFormat.JSONL})
HELPERS = 2  # helper processes: each reads the whole file and checks half its batches
BATCH = 2000  # items per batch: a few milliseconds of work, so that no process waits long
_LENGTH = struct.Struct("<Q")  # before each batch: its length in bytes
_END = 0  # a helper's last length: it has no more batches (the file has ended)
_FAILED = 2**64 - 1  # a helper's last length: it could not go on
_WAIT_SECONDS = 5.0  # a helper still alive this long after the pass is killed
_PACKAGE = str(Path(__file__).resolve().parent)  # this `bulkops` package's folder
# A helper's last argument: whether each row's stored form is made too.
_STORED, _CHECKED = "stored", "checked"

_ACTIONS = {action.value: action for action in Action}
_ACTIONS_OR_NONE: dict[str | None, Action | None] = {None: None}
_ACTIONS_OR_NONE.update(_ACTIONS)
_new_tuple = tuple.__new__
# OpSpec's fields with their defaults; the required ones (no default) with `_REQUIRED`, which
# no value equals: they are always written.
_REQUIRED = object()
_DEFAULTS: dict[str, Any] = {
    field.name: _REQUIRED if field.default is MISSING else field.default
    for field in fields(OpSpec)
}
# An enum member's `.value` is looked up through Python code: a dict look-up costs less.
_ACTION_TEXT = {action: action.value for action in Action}


class Kept(Enum):
    """In place of a helped row's stored form: it went to `helped_items`' `keep`, with its
    batch's."""

    KEPT = "kept"


KEPT = Kept.KEPT

# A checked item: a row as (its line, `check_row`'s result, its spec's stored form: made by a
# helper, on its own core, where there are helpers; KEPT when it went to `keep`), else the
# reader's own item (a problem of the file's shape, the CSV header).
Checked = tuple[int, RowResult, StoredRow | Kept | None] | RowError | CsvHeader


class HelpersLost(Exception):
    """The helped pass cannot finish: run it again in this process."""


def spec_plain(spec: OpSpec) -> dict[str, Any]:
    """`spec`'s fields that differ from their defaults, by name, its action as text: plain
    values that marshal writes (`spec_of_plain` makes the same spec again). A row sets a few
    of OpSpec's twenty-odd fields: the rest would cost their reading and writing each time."""
    plain = {name: value for name, value in vars(spec).items() if _DEFAULTS[name] != value}
    plain["action"] = _ACTION_TEXT[spec.action]
    return plain


def spec_of_plain(plain: dict[str, Any]) -> OpSpec:
    """The OpSpec `spec_plain` made `plain` of; `plain` itself is left as it is."""
    # As OpSpec(**fields) would make it, without its generated __init__: every field's
    # default, then the row's own, in the record's own fields (in declaration order: the
    # defaults come first), then the action, the one field that is not plain.
    spec = object.__new__(OpSpec)
    record = spec.__dict__
    record.update(_DEFAULTS)
    record.update(plain)
    record["action"] = _ACTIONS[plain["action"]]
    return spec


def worth_helping(size: int, fmt: JobFormat) -> bool:
    """Whether a file of `size` bytes in `fmt` is checked with helpers: a large file of a
    format read as it streams, on a process allowed more than one CPU (`cpus.usable_cpus`:
    its affinity and its cgroup's CPU quota, not the machine's count: helpers sharing one CPU
    with this process only slow it down)."""
    return size >= HELPER_FROM_BYTES and fmt in HELPED_FORMATS and usable_cpus() > 1


def checked_items(items: Iterable[ReadItem], *, stored: bool = True) -> Iterator[Checked]:
    """The one-process pass: each item of a job file's reader, a row with its check (and, for
    `stored`, its spec's stored form)."""
    for item in items:
        if type(item) is RawRow:
            result = check_row(item.line, item.fields, item.defaults)
            spec = result.spec
            yield item.line, result, None if spec is None or not stored else stored_row(spec)
        else:
            yield item  # type: ignore[misc]


def helped_items(
    path: Path, fmt: JobFormat, helpers: int = HELPERS, *, stored: bool = True,
    keep: Callable[[bytes], None] | None = None,
) -> Iterator[Checked]:
    """`checked_items(read_rows(path, fmt), stored=stored)`, the file read and its rows
    checked by `helpers` helper processes. With `keep` (and `stored`), the rows' stored forms
    are not read here: each batch's, a marshalled list with one entry per row of the batch
    (None for a row without a spec), goes to `keep` before the batch's items, which carry
    KEPT instead. Raises HelpersLost when they cannot finish it (nothing else: the file's own
    problems included, which the one-process pass then reports)."""
    if not sys.executable:  # an embedded interpreter: no command to start helpers with
        raise HelpersLost("no Python interpreter to start helpers with")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for index in range(helpers):
            processes.append(subprocess.Popen(
                # -P: the current folder is not searched first, so that no module of the
                # user's (a csv.py where the command runs) is imported by a helper.
                [sys.executable, "-P", "-m", __name__, _PACKAGE, str(path), fmt.value,
                 str(index), str(helpers), _STORED if stored else _CHECKED],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                # Outside the terminal's process group: Ctrl-C is this process's alone (it
                # ends the pass, and the helpers with it), never a helper's half-started.
                start_new_session=True,
            ))
        turn = received = 0
        while (blob := _next_batch(processes[turn % helpers])) is not None:
            try:
                encoded, rows = marshal.loads(blob)
                if keep is not None and rows is not None:
                    keep(rows)
                    batch = [_decoded(item, KEPT) for item in encoded]
                else:
                    # One form per row item (None for a row without a spec), none for others.
                    forms = iter(marshal.loads(rows) if rows is not None else ())
                    batch = [_decoded(item, next(forms, None) if item[0] == "r" else None)
                             for item in encoded]
            except (EOFError, ValueError, TypeError, KeyError, IndexError) as exc:
                raise HelpersLost(f"a helper's batch could not be read: {exc}") from exc
            yield from batch
            received += len(batch)
            turn += 1
        _agree(processes, turn % helpers, received)
    except OSError as exc:  # no process to be had
        raise HelpersLost(str(exc)) from exc
    finally:
        _end(processes)


def _agree(processes: list[subprocess.Popen[bytes]], ended: int, received: int) -> None:
    """Each helper read the file to the same end: `processes[ended]` said it had no more, and
    every helper counts `received` items. A file that grew (or changed) while they read it
    could otherwise give one helper's short last batch, then another's batch read further:
    rows in between would be lost. Raises HelpersLost when they disagree."""
    for index, process in enumerate(processes):
        ends_here = index == ended or _next_batch(process) is None
        if not ends_here or _number(process) != received:  # its count follows its end
            raise HelpersLost("the helpers read the file to different ends")


def _next_batch(helper: subprocess.Popen[bytes]) -> bytes | None:
    """The helper's next batch, marshalled; None once it has none left (the file ended: the
    number of items it read follows, `_number`)."""
    length = _number(helper)
    if length == _FAILED:
        raise HelpersLost("a helper process could not go on")
    if length == _END:
        return None
    assert helper.stdout is not None  # started with a pipe
    blob = helper.stdout.read(length)
    if len(blob) < length:
        raise HelpersLost("a helper process ended early")
    return blob


def _number(helper: subprocess.Popen[bytes]) -> int:
    """The helper's next 8-byte number: a batch's length, `_END`, `_FAILED`, or a count."""
    assert helper.stdout is not None  # started with a pipe
    head = helper.stdout.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise HelpersLost("a helper process ended early")
    number: int = _LENGTH.unpack(head)[0]
    return number


def _end(processes: list[subprocess.Popen[bytes]]) -> None:
    """Every helper gone: a helper still writing stops at once (a broken pipe)."""
    for process in processes:
        if process.stdout is not None:
            process.stdout.close()
    try:
        for process in processes:
            try:
                process.wait(_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    except BaseException:  # a second Ctrl-C while they end: none is left behind
        for process in processes:
            if process.poll() is None:
                process.kill()
        raise


def help_with(
    path: str, fmt: str, index: int, helpers: int, out: BinaryIO, *, stored: bool = True,
) -> None:
    """A helper's work: read the file, check and write to `out` every `helpers`-th batch of
    its items starting with batch `index`, then `_END` and the number of items it read;
    `_FAILED` instead on any failure. A batch is marshalled, behind its 8-byte length, as
    (its items, its rows' stored forms marshalled on their own, or None unless `stored`)."""

    def wanted(number: int) -> bool:  # the items of this helper's batches
        return (number // BATCH) % helpers == index

    try:
        mine = index == 0
        batch: list[tuple[Any, ...]] = []
        rows: list[StoredRow | None] = []
        taken = turn = 0
        for item in read_rows_skipping(Path(path), JobFormat(fmt), wanted):
            if mine:
                encoded, row = _encoded(item, stored)
                batch.append(encoded)
                if stored and encoded[0] == "r":  # `validate` sends no forms
                    rows.append(row)
            taken += 1
            if taken == BATCH:
                if mine:
                    _write(out, _batch_blob(batch, rows, stored))
                    batch, rows = [], []
                taken, turn = 0, turn + 1
                mine = turn % helpers == index
        if mine and taken:
            _write(out, _batch_blob(batch, rows, stored))
        out.write(_LENGTH.pack(_END) + _LENGTH.pack(turn * BATCH + taken))
    except Exception:  # told to the pass, which goes on without helpers
        with suppress(OSError):  # unless the pass has ended already
            out.write(_LENGTH.pack(_FAILED))
    with suppress(OSError):
        out.flush()


def _batch_blob(items: list[tuple[Any, ...]], rows: list[StoredRow | None], stored: bool
                ) -> bytes:
    return marshal.dumps((items, marshal.dumps(rows) if stored else None))


def _write(out: BinaryIO, blob: bytes) -> None:
    out.write(_LENGTH.pack(len(blob)))
    out.write(blob)
    out.flush()  # the pass may be waiting for just this batch


def _encoded(
    item: ReadItem | Skipped, stored: bool = True,
) -> tuple[tuple[Any, ...], StoredRow | None]:
    """An item as plain values: ("r", line, the row's check) / ("e", line, column, reason) /
    ("h", line, columns); with a row's spec's stored form (None: no spec, or not `stored`).
    A skipped item is never a helper's own (an AssertionError: the helper fails)."""
    if type(item) is RawRow:
        result = check_row(item.line, item.fields, item.defaults)
        spec = result.spec
        plain = None if spec is None else spec_plain(spec)
        return (
            "r",
            item.line,
            plain,
            result.key,
            None if result.action is None else _ACTION_TEXT[result.action],
            [(error.line, error.column, error.reason) for error in result.errors],
            result.missing,
            result.derived_key,
            result.refs,
        ), None if spec is None or not stored else stored_row(spec, plain)
    if isinstance(item, RowError):
        return ("e", item.line, item.column, item.reason), None
    assert isinstance(item, CsvHeader)
    return ("h", item.line, item.columns), None


def _decoded(encoded: tuple[Any, ...], stored: StoredRow | Kept | None) -> Checked:
    if encoded[0] == "r":  # a row: nearly every item, a million times a pass
        _, line, plain, key, action, errors, missing, derived, refs = encoded
        # As RowResult(...) makes it, without the Python call of a named tuple's __new__.
        return line, _new_tuple(RowResult, (
            None if plain is None else spec_of_plain(plain),
            key,
            _ACTIONS_OR_NONE[action],
            tuple(starmap(RowError, errors)) if errors else (),
            missing,
            derived,
            refs,
        )), stored
    if encoded[0] == "e":
        return RowError(encoded[1], encoded[2], encoded[3])
    return CsvHeader(encoded[1], encoded[2])


def _main(args: list[str]) -> int:
    """`python -m bulkops.rowcheckers PACKAGE PATH FORMAT INDEX HELPERS KEEPS`: one helper
    (`help_with`), its batches on standard output. PACKAGE is the folder of the `bulkops`
    package the pass runs: a helper that imported another one (another version found first
    on its path) gives up at once rather than check rows by other rules."""
    out = sys.stdout.buffer
    # Started by another version's pass (its arguments differ) or of another package: no.
    if len(args) != 6 or args[0] != _PACKAGE or args[5] not in (_STORED, _CHECKED):
        out.write(_LENGTH.pack(_FAILED))
        return 0
    _, path, fmt, index, helpers, keeps = args
    with paced_collections():  # a row's containers are freed as they come
        help_with(path, fmt, int(index), int(helpers), out, stored=keeps == _STORED)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

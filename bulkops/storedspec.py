"""A row's stored form: what storing it as a new operation writes, made where the row is checked.

A job's rows are checked once (the first pass, on helper processes for a large file) and stored
once. Their stored form — the spec as the JSON text `ops.spec` keeps, a create's fingerprint,
the keys the row waits for — used to be made when they were stored, after the first pass, from
specs rebuilt out of the first pass's spool: at a million rows, about ten of the load's twenty
seconds, on one core. Made while the rows are checked instead, by the helpers where there are
any, it crosses to the store as plain values, and the load only binds them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import MISSING, fields
from json.encoder import encode_basestring_ascii
from typing import Any

from bulkops.identity import fingerprint
from bulkops.model import Action, OpSpec, frozen_instance
from bulkops.store.rows import spec_text

# (line, key, action, spec text, create fingerprint or None, dependency keys): plain values,
# which marshal writes and a fresh load binds as they are.
StoredRow = tuple[int, str, str, str, str | None, tuple[str, ...]]


def stored_row(spec: OpSpec, plain: dict[str, Any] | None = None) -> StoredRow:
    """`spec`'s stored form: its text (`stored_text`), the fingerprint a create is stored with
    (`create_fingerprint`) and its `dependency_keys()`. `plain`, when given, is the spec's
    members that differ from their defaults (`rowcheckers.spec_plain`): its text is written
    from those few."""
    text = None if plain is None else stored_text_of_plain(plain)
    return (spec.line, spec.key, _ACTION_TEXT[spec.action],
            stored_text(spec) if text is None else text, create_fingerprint(spec),
            spec.dependency_keys())


def spec_of_row(row: StoredRow) -> OpSpec:
    """The spec `stored_row` made `row` of: `OpSpec.from_json` of its text, from the few
    members the text holds (every other field takes its default; lists become tuples)."""
    values = {"line": row[0], "key": row[1], **_SPEC_DEFAULTS}
    for name, value in json.loads(row[3]).items():
        values[name] = tuple(value) if type(value) is list else value
    values["action"] = _ACTIONS[values["action"]]
    return frozen_instance(OpSpec, values)


class StoredSpecs(Iterator[OpSpec]):
    """Specs in input order, each also in its stored form: a fresh load takes `stored()`, the
    same rows as plain values, and binds them as they are; anything else iterates the specs.
    `rows`: the stored rows (the job file's checked rows, read back)."""

    def __init__(self, rows: Iterator[StoredRow]) -> None:
        self._rows = rows
        self._specs = map(spec_of_row, rows)

    def __next__(self) -> OpSpec:
        return next(self._specs)

    def stored(self) -> Iterator[StoredRow]:
        """The rows not iterated yet, in their stored form."""
        return self._rows


def stored_rows(specs: Iterable[OpSpec]) -> Iterator[StoredRow]:
    """Each spec's stored form: read as made when it comes from `StoredSpecs`, else made now."""
    if isinstance(specs, StoredSpecs):
        return specs.stored()
    return map(stored_row, specs)


def specs_and_stored(specs: Iterable[OpSpec]) -> Iterator[tuple[OpSpec, StoredRow]]:
    """Each spec with its stored form (`stored_rows`): the spec read back from that form when
    it comes from `StoredSpecs`, whose text then need not be written again."""
    if isinstance(specs, StoredSpecs):
        return ((spec_of_row(row), row) for row in specs.stored())
    return ((spec, stored_row(spec)) for spec in specs)


def create_fingerprint(spec: OpSpec) -> str | None:
    """A create's fingerprint is known before it runs (its display name): stored at once, so
    a later row with another key waits for, or takes on, the same site instead of a second."""
    if spec.action is not Action.CREATE_SITE:
        return None
    return fingerprint(spec, lambda value: value)


def _list_text(value: object) -> str | None:
    if isinstance(value, tuple | list) and all(type(item) is str for item in value):
        return "[" + ",".join(map(encode_basestring_ascii, value)) + "]"
    return None


# How `spec_text` writes each member of `OpSpec.to_json()`; None: a value of another type.
_WRITERS: dict[str, Callable[[Any], str | None]] = {
    "text": lambda value: encode_basestring_ascii(value) if type(value) is str else None,
    "list": _list_text,
    "flag": lambda value: "true" if value is True else None,
    "number": lambda value: int.__repr__(value) if type(value) is int else None,
    # An Action (a str enum, written as its value) or, from `spec_plain`, its text.
    "action": lambda value: encode_basestring_ascii(value) if isinstance(value, str) else None,
}
# The members in the order `spec_text` writes them (sorted by name), with their label there.
STORED_LAYOUT = tuple(sorted(
    (name, f'"{name}":', _WRITERS[kind]) for names, kind in (
        (("site_name", "template_id", "folder_id", "site", "to_account", "from_account", "email",
          "domain", "connection", "assignment", "record_type", "host"), "text"),
        (("roles", "sites", "depends_on", "values", "implied_depends_on"), "list"),
        (("notify",), "flag"), (("ttl",), "number"), (("action",), "action"),
    ) for name in names
))
# An enum member's `.value` is looked up through Python code: a dict look-up costs less.
_ACTION_TEXT = {action: action.value for action in Action}
_ACTIONS = {action.value: action for action in Action}
_SPEC_DEFAULTS = {field.name: field.default for field in fields(OpSpec)
                  if field.default is not MISSING}


def stored_text(spec: OpSpec) -> str:
    """`spec_text(spec)`, written directly from the spec's fields: the encoder sets up a new
    C encoder for each call and `to_json` builds a dict first, which costs more than a
    spec's few members (a million are stored at a time). A value of any unexpected type
    sends the spec through `spec_text` itself."""
    return _written(vars(spec), _STORED_NAMES) or spec_text(spec)


def stored_text_of_plain(plain: dict[str, Any]) -> str | None:
    """`stored_text` of the spec whose members that differ from their defaults are `plain`
    (`rowcheckers.spec_plain`: its action as text), from those few members alone; None for a
    value of an unexpected type (then `stored_text(spec)`)."""
    return _written(plain, sorted(plain))


_WRITER_OF = {name: (label, write) for name, label, write in STORED_LAYOUT}
_STORED_NAMES = tuple(_WRITER_OF)  # sorted, as the layout is


def _written(members: Mapping[str, Any], names: Iterable[str]) -> str | None:
    """The JSON object of `members`' stored fields among `names` (in that order: sorted),
    left out as `to_json` leaves them out (no text, an empty list, notify false, no ttl);
    None for a value of an unexpected type. Other names (the line, the key) are skipped."""
    parts: list[str] = []
    for name in names:
        writer = _WRITER_OF.get(name)
        if writer is None:
            continue
        value = members[name]
        if value is None or value is False or value == () or value == []:
            continue
        written = writer[1](value)
        if written is None:
            return None
        parts.append(writer[0] + written)
    return "{" + ",".join(parts) + "}"

"""One row of a job file → a validated `OpSpec`, or every problem the row has on its own.

Rows arrive as a mapping of column name → raw value (CSV cells are text; JSON values may be
text, numbers or lists). Checks that need other rows (references, duplicates, cycles) live in
`jobgraph`; this module only looks at one row at a time, so it is cheap and has no state.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import MISSING
from dataclasses import fields as dataclass_fields
from json.encoder import encode_basestring
from types import MappingProxyType
from typing import Any, NamedTuple

from bulkops import domainrows
from bulkops.cells import clean, show
from bulkops.domainrows import Value, domain_row_problems
from bulkops.errors import RowError
from bulkops.model import DOMAIN_ACTIONS, REF_PREFIX, Action, OpSpec, frozen_instance, is_ref

COLUMNS = (
    "action", "key", "site_name", "template_id", "folder_id", "site", "to_account",
    "from_account", "email", "role", "sites", "depends_on", "domain", "connection", "assignment",
    "notify", "record_type", "host", "values", "ttl",
)
# Columns that `bulkops report --format csv` adds: accepted and ignored, so that a report of the
# failed rows can be fixed and submitted again as it is (`error_hint`: reports written before
# the column took the contract's name, `hint`).
REPORT_COLUMNS = frozenset({
    "line", "status", "attempts", "site_id", "invite_id", "error_code", "error_message",
    "hint", "error_hint", "request_id", "note", "registrar_records",
})
LIST_COLUMNS = frozenset({"role", "sites", "depends_on", "values"})

REQUIRED: Mapping[Action, tuple[str, ...]] = MappingProxyType({
    Action.CREATE_SITE: ("site_name",),
    Action.TRANSFER_SITE: ("site", "to_account"),
    Action.SITE_INVITE: ("site", "email", "role"),
    Action.ACCOUNT_INVITE: ("email", "role"),
    # `connection` is required for a root domain only: a row check (domainrows).
    Action.CONNECT_DOMAIN: ("site", "domain"),
    Action.SET_DNS_RECORD: ("domain", "record_type", "host", "values"),
})
_OPTIONAL: Mapping[Action, tuple[str, ...]] = MappingProxyType({
    Action.CREATE_SITE: ("template_id", "folder_id"),
    Action.TRANSFER_SITE: ("from_account",),
    Action.SITE_INVITE: (),
    Action.ACCOUNT_INVITE: ("sites",),
    Action.CONNECT_DOMAIN: ("connection", "assignment", "notify"),
    Action.SET_DNS_RECORD: ("ttl",),
})
_EVERY_ACTION = ("action", "key", "depends_on")
USED: Mapping[Action, frozenset[str]] = MappingProxyType({
    a: frozenset(REQUIRED[a] + _OPTIONAL[a] + _EVERY_ACTION) for a in Action
})
ACTION_NAMES = ", ".join(a.value for a in Action)
_ACTION_BY_NAME = {a.value: a for a in Action}


class _Rules(NamedTuple):
    """What a row of one action is checked against, found with one lookup by the action's
    text: Action members hash through a Python-level __hash__ and `.value` is a property,
    both several times the cost of a plain dict lookup, once per row and table."""

    action: Action
    name: str  # the action's value
    used: frozenset[str]
    required: tuple[str, ...]
    required_set: frozenset[str]
    domain: bool


_RULES = {
    a.value: _Rules(a, a.value, USED[a], REQUIRED[a], frozenset(REQUIRED[a]),
                    a in DOMAIN_ACTIONS)
    for a in Action
}

MAX_SITE_NAME = 100
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# One @, no spaces, a dotted domain: catches "bob@", "bob@example", "a@x.com;b@y.com".
_EMAIL = re.compile(r"[^@\s<>(),;:\"\[\]\\]+@[^@\s<>(),;:\"\[\]\\.]+(?:\.[^@\s<>(),;:\"\[\]\\.]+)+")
_NO_DEFAULTS: Mapping[str, object] = MappingProxyType({})


class RowResult(NamedTuple):
    """What one row turned out to be. `spec` is set only when the row has no problem.

    `key` is the row's key whenever it is known (explicit and well-formed, or derived), so that
    cross-row checks can still resolve references to a row that is bad for other reasons.
    `missing` lists required columns the row lacks: the caller words that error, because in a
    CSV file whose header lacks the column it is reported once, on the header.

    A named tuple, not a frozen dataclass: one is made per row, and a frozen dataclass sets
    each field through object.__setattr__, at several times the cost.
    """

    spec: OpSpec | None
    key: str | None
    action: Action | None
    errors: tuple[RowError, ...] = ()
    missing: tuple[str, ...] = ()
    derived_key: bool = False
    # A bad row's `@key` references (column, key), so that a dangling one is reported in the
    # same pass as the row's own problems instead of after they are fixed.
    refs: tuple[tuple[str, str], ...] = ()


def unknown_column_reason(name: str, where: str = "") -> str:
    close = difflib.get_close_matches(name.lower(), COLUMNS, n=1)
    hint = f"did you mean {close[0]}?" if close else "the columns are " + ", ".join(COLUMNS)
    return f"unknown column {show(name)}{where}: {hint}"


def missing_reason(column: str, action: Action | None) -> str:
    if column == "action" or action is None:
        return f"action is required: one of {ACTION_NAMES}"
    return f"{column} is required for {action.value}"


def check_row(
    line: int, fields: Mapping[str, object], defaults: Mapping[str, object] = _NO_DEFAULTS
) -> RowResult:
    """Validate one row. `fields` holds known columns only (absent or null = not given);
    `defaults` (JSON files) fills the columns the row's action uses and the row leaves out."""
    errors: list[RowError] = []
    raw_action = fields.get("action", defaults.get("action"))
    # The common cell, written as the contract spells it: no call.
    rules = _RULES.get(raw_action) if type(raw_action) is str else None
    action = rules.action if rules is not None else _action(line, raw_action, errors)
    inherited = _inherited(fields, defaults, action) if defaults else _NO_DEFAULTS
    values = _values(line, fields, inherited, errors)
    explicit_key = values.get("key")
    key = explicit_key if isinstance(explicit_key, str) else None
    if action is None:
        absent = raw_action is None or _text(raw_action) == ""
        return RowResult(None, key, None, tuple(errors), ("action",) if absent else ())
    if rules is None:
        rules = _RULES[action.value]
    if not values.keys() <= rules.used:
        errors += [
            RowError(line, name, f"column {name} is not used by action {rules.name}")
            for name in values if name not in rules.used
        ]
    missing: list[str] = []
    if not values.keys() >= rules.required_set:  # the common row has them all
        missing = [name for name in rules.required if name not in values]
    if errors:
        bad = {error.column for error in errors}  # a present but bad value is not "missing"
        missing = [name for name in missing if name not in bad]
    if errors or missing:
        return RowResult(None, key, action, tuple(errors), tuple(missing), refs=_refs_of(values))
    if rules.domain:
        problems = domain_row_problems(rules.name, values)
        if problems:
            errors = [RowError(line, column, reason) for column, reason in problems]
            return RowResult(None, key, action, tuple(errors), refs=_refs_of(values))
    spec = _spec(line, rules, values, key)
    return RowResult(spec, spec.key, action, derived_key=key is None)


def _refs_of(values: Mapping[str, Value]) -> tuple[tuple[str, str], ...]:
    """(column, key) of every `@key` among a row's well-formed values."""
    refs: list[tuple[str, str]] = []
    for column in ("site", "sites"):
        value = values.get(column)
        items = (value,) if isinstance(value, str) else value if isinstance(value, tuple) else ()
        for item in items:
            if is_ref(item):
                refs.append((column, item[len(REF_PREFIX):]))
    depends_on = values.get("depends_on")
    if isinstance(depends_on, tuple):
        refs += [("depends_on", key) for key in depends_on]
    return tuple(refs)


def _inherited(
    fields: Mapping[str, object], defaults: Mapping[str, object], action: Action | None
) -> Mapping[str, object]:
    """The defaults a row takes: only columns its action uses, so one `defaults` block can
    serve rows of different actions. A column the row gives, even as "", keeps its default
    away: that is how one row opts out, e.g. a blank site among sites from a template."""
    if action is None:
        return _NO_DEFAULTS
    return {
        name: value for name, value in defaults.items()
        if name in USED[action] and name != "action" and name not in fields
    }


def _values(
    line: int, fields: Mapping[str, object], inherited: Mapping[str, object],
    errors: list[RowError],
) -> dict[str, Value]:
    """Normalised values of every given column but `action`; problems go to `errors`."""
    values: dict[str, Value] = {}
    memos, plain_cells = _MEMO, _PLAIN_CELLS
    for source, suffix in ((fields, ""), (inherited, " (from defaults)")):
        for name, raw in source.items():
            if name == "action":
                continue
            if type(raw) is not str:
                value, reason = _normalise(name, raw)
            else:
                memo = memos.get(name)
                known = None if memo is None else memo.get(raw)
                if known is None:
                    plain = plain_cells.get(name)
                    known = (plain(raw) if plain is not None else None) or _normalise(name, raw)
                    if memo is not None:
                        if len(memo) >= _MEMO_SIZE:
                            memo.clear()  # bounded: a column of all-distinct values stays cheap
                        memo[raw] = known
                value, reason = known
            if reason is not None:
                errors.append(RowError(line, name, reason + suffix))
            elif value is not None:
                values[name] = value
    return values


# Each distinct text of a column is normalised once, not once per row: `_normalise` is a pure
# function of (column, text) with immutable results, and costs a few microseconds, most of a
# row's. Values repeat throughout a file (one template, role or target account for a whole
# batch) or within a few rows (a client's site `@key`, e-mail and domain): a bounded memo per
# column, emptied when full, catches both. Keys, site names and the rest are unique in a file
# (or nearly): the lookup would only add to their cost.
_MEMO: dict[str, dict[str, tuple[Value | None, str | None]]] = {
    name: {} for name in COLUMNS if name not in ("action", "key", "site_name", "depends_on",
                                                   "values")
}
_MEMO_SIZE = 2048  # distinct texts kept per column: well under a MB each


def _action(line: int, raw: object, errors: list[RowError]) -> Action | None:
    if type(raw) is str:
        exact = _ACTION_BY_NAME.get(raw)  # the common cell, written as the contract spells it
        if exact is not None:
            return exact
    text = _text(raw)
    if not text:  # absent: reported through `missing`
        if raw is not None and text is None:
            errors.append(RowError(line, "action", f"must be text, not {_json_type(raw)}"))
        return None
    action = _ACTION_BY_NAME.get(text.lower())
    if action is None:
        errors.append(RowError(line, "action", f"unknown action {show(text)}: use {ACTION_NAMES}"))
    return action


def _normalise(name: str, raw: object) -> tuple[Value | None, str | None]:
    """(value, None) when fine (value None = empty, i.e. absent), else (None, reason)."""
    raw = _cleaned(raw)
    if name in _NOT_TEXT:
        return _NOT_TEXT[name](raw)
    if name in LIST_COLUMNS:
        return _list_value(name, raw)
    if not isinstance(raw, str):
        return None, f"must be text, not {_json_type(raw)}"
    text = raw.strip()
    if not text:
        return None, None
    if name == "site_name":
        # A name wrapped in its cell (Alt-Enter) or typed with a double space is one line with
        # single spaces, as it shows at Wix; NFC, so that "é" typed two ways is one name.
        text = " ".join(unicodedata.normalize("NFC", text).split())
    problem = _cell_problem(text)
    if problem is None and name in _NORMALISED:
        return _NORMALISED[name](text)
    return text, problem or _TEXT_CHECKS[name](text)


_REF_LISTS = frozenset({"sites", "depends_on"})


def _list_value(name: str, raw: object) -> tuple[Value | None, str | None]:
    if name == "role" and _is_number(raw):
        raw = [raw]  # one role id written as a JSON number: as in a list of one
    items = _items(raw, allow_numbers=name == "role")
    if isinstance(items, str):
        return None, items
    check_item = _ITEM_CHECKS[name]
    for item in items:
        if (item[0] == REF_PREFIX and name in _REF_LISTS and len(item) > 1 and item.isascii()
                and item.isprintable() and REF_PREFIX not in item[1:] and ";" not in item):
            # A plain `@key` (the common entry of sites and depends_on): no check below
            # can object to it (no spreadsheet debris, a well-formed key), so none is run.
            continue
        reason = _cell_problem(item) or check_item(item)
        if reason is not None:
            return None, reason
    if name == "depends_on":
        items = tuple(item[len(REF_PREFIX):] for item in items)
    return items or None, None


def _record_values(raw: object) -> tuple[Value | None, str | None]:
    """`values`: a JSON list as any list; text is split once the record type is known, since
    a TXT value may hold ';' (`domainrows.split_values`)."""
    if not isinstance(raw, str):
        return _list_value("values", raw)
    text = raw.strip()
    return (text or None), (_cell_problem(text) if text else None)


def _cleaned(raw: object) -> object:
    """Text (alone or in a list) without the invisible characters a spreadsheet or a copy from
    a web page leaves in it: a CSV reader drops them already, a JSON writer keeps them."""
    if isinstance(raw, str):
        return clean(raw)
    if isinstance(raw, list):
        return [clean(item) if isinstance(item, str) else item for item in raw]
    return raw


def _text(raw: object) -> str | None:
    """Stripped text, or None when `raw` is not text at all."""
    return raw.strip() if isinstance(raw, str) else None


def _items(raw: object, *, allow_numbers: bool) -> tuple[str, ...] | str:
    """A `;`-separated string or a JSON list → stripped entries; a str return is the reason."""
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return ()
        parts = tuple(part.strip() for part in text.split(";"))
        if "" in parts:
            return f"empty entry in {show(text)}: remove the extra ';'"
        return parts
    if not isinstance(raw, list):
        return f"must be text or a list, not {_json_type(raw)}"
    items: list[str] = []
    for entry in raw:
        # Role ids are numeric strings that JSON writers may emit as numbers; bool is an int
        # subclass and is never a role id.
        if allow_numbers and isinstance(entry, int) and not isinstance(entry, bool):
            entry = str(entry)
        elif allow_numbers and isinstance(entry, float):
            return (f"role id {entry!r} is a JSON number with a fraction or exponent: its last "
                    "digits are lost; write the id as text in quotes")
        if not isinstance(entry, str) or not entry.strip():
            return "every entry must be non-empty text"
        items.append(entry.strip())
    return tuple(items)


def _is_number(raw: object) -> bool:
    return isinstance(raw, int | float) and not isinstance(raw, bool)


def _json_type(raw: object) -> str:
    names: dict[type, str] = {bool: "true/false", int: "a number", float: "a number",
                              list: "a list", dict: "an object"}
    return names.get(type(raw), type(raw).__name__)


# Error values spreadsheets write in place of a formula's result (Excel, Google Sheets, Numbers,
# LibreOffice): the row was built by a formula that failed, e.g. a VLOOKUP that found nothing.
_SHEET_ERRORS = frozenset({
    "#N/A", "#NAME?", "#REF!", "#VALUE!", "#DIV/0!", "#NUM!", "#NULL!", "#SPILL!", "#CALC!",
    "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!", "#GETTING_DATA", "#ERROR!",
})
_LIBREOFFICE_ERROR = re.compile(r"Err:\d{3}")
# C0 and C1 controls and DEL, tabs and line breaks included: every value is one line of text
# (a name, an address, an id), and Wix would keep a line break inside a site's name.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_NAMES = {"\t": "a tab", "\n": "a line break", "\r": "a line break"}


def _cell_problem(text: str) -> str | None:
    """What no value may be, whatever its column: spreadsheet debris that must not reach Wix."""
    if text[0] in "#E" and (text in _SHEET_ERRORS or _LIBREOFFICE_ERROR.fullmatch(text)):
        return (f"{show(text)} is a spreadsheet error value, not data: the formula behind this "
                "cell failed; fix it, or paste the values you meant")
    if text.isascii() and text.isprintable():
        return None
    control = _CONTROL.search(text)
    if control is not None:
        what = _CONTROL_NAMES.get(control[0], f"the control character U+{ord(control[0]):04X}")
        return f"contains {what} at character {control.start() + 1}: remove it"
    return None if _MOJIBAKE.search(text) is None else _garbled_problem(text)


# UTF-8 read as Windows-1252 or Latin-1 turns each non-ASCII character into a lead byte's
# character (Â..ô) followed by continuation bytes' ones (U+0080..U+00BF, or what cp1252 puts
# at 0x80..0x9F): "Ã©" for "é", "â€™" for "’".
_MOJIBAKE = re.compile("[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178"
                       "\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014\u2018-\u201a"
                       "\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]")


def _garbled_problem(text: str) -> str | None:
    """UTF-8 text read once as Windows-1252 or Latin-1 ("CafÃ©" for "Café"), then saved again."""
    for codec in ("cp1252", "latin-1"):
        try:
            meant = text.encode(codec).decode("utf-8")
        except UnicodeError:
            continue
        return (f"garbled text {show(text)}: it reads {show(meant)} once decoded as UTF-8, so "
                "the file was opened with the wrong encoding at some point; correct the text and "
                "save as CSV UTF-8")
    return None


def _key_problem(text: str) -> str | None:
    if "@" in text or ";" in text:
        return f"key must not contain '@' or ';': {show(text)}"
    return None


def _site_name_problem(text: str) -> str | None:
    if len(text) > MAX_SITE_NAME:
        return f"site name is {len(text)} characters long, at most {MAX_SITE_NAME} are allowed"
    return None


def is_guid(text: str) -> bool:
    """A Wix id as Wix writes it: a GUID (8-4-4-4-12 hex digits)."""
    return _GUID.fullmatch(text) is not None


def _guid_problem(text: str) -> str | None:
    if _GUID.fullmatch(text):
        return None
    return f"not a valid id (a GUID like 0a1b2c3d-0a1b-4c2d-8e3f-0a1b2c3d4e5f): {show(text)}"


def _ref_problem(text: str) -> str | None:
    if text == REF_PREFIX:
        return "empty reference '@': write @ followed by the row's key"
    return _key_problem(text[len(REF_PREFIX):])


def _site_problem(text: str) -> str | None:
    if is_ref(text):
        return _ref_problem(text)
    if _GUID.fullmatch(text):
        return None
    return f"not a site id (GUID) or @key of a create_site row: {show(text)}"


def _email_problem(text: str) -> str | None:
    if not text.isascii():
        return _non_ascii_email(text)
    return None if _EMAIL.fullmatch(text) else f"not a valid email address: {show(text)}"


def _non_ascii_email(text: str) -> str:
    """Wix takes plain ASCII addresses: name the first other character (it may be invisible)."""
    char = next(c for c in text if not c.isascii())
    reason = (f"not a valid email address: {show(text)} contains {char!r} (U+{ord(char):04X}); "
              "email addresses must be plain ASCII")
    local, _, domain = text.rpartition("@")
    if local and local.isascii() and domain and not domain.isascii():
        try:
            ascii_domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return reason
        reason += f": write the domain as {ascii_domain}"
    return reason


# A number as a spreadsheet shows a long one, "7.08451E+18" (or "7,08451E+18" where the decimal
# mark is a comma): the id's last digits are already lost.
_SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d*)?[eE][+-]?\d+")


# A long id a number-formatted column wrote as a decimal: "7084512206941830272.0".
_DECIMAL_ID = re.compile(r"(\d{6,})[.,]0+")


def _role_problem(text: str) -> str | None:
    # A role is a numeric id or a title; titles are resolved against Wix's role list at run time.
    if _SCIENTIFIC.fullmatch(text):
        return (f"role {show(text)} is a number in scientific notation: the spreadsheet rounded "
                "this id: format the column as text and paste the id again")
    decimal = _DECIMAL_ID.fullmatch(text)
    if decimal:
        return (f"role {show(text)} is a role id written as a decimal number: write "
                f"{show(decimal[1])}, and format the column as text (a spreadsheet may also "
                "have rounded its last digits)")
    return None


def _dependency_problem(text: str) -> str | None:
    if not is_ref(text):
        return f"depends_on takes @key references: {show(text)} (write {show('@' + text)})"
    return _ref_problem(text)


_TEXT_CHECKS: Mapping[str, Callable[[str], str | None]] = MappingProxyType({
    "key": _key_problem,
    "site_name": _site_name_problem,
    "template_id": _guid_problem,
    "folder_id": _guid_problem,
    "site": _site_problem,
    "to_account": _guid_problem,
    "from_account": _guid_problem,
    "email": _email_problem,
})
_ITEM_CHECKS: Mapping[str, Callable[[str], str | None]] = MappingProxyType({
    "role": _role_problem,
    "sites": _site_problem,
    "depends_on": _dependency_problem,
    "values": lambda item: None,  # checked for the record's type (domainrows)
})
# Columns whose written form becomes another: (value, None) or (None, reason).
_NORMALISED: Mapping[str, Callable[[str], tuple[str | None, str | None]]] = MappingProxyType({
    "domain": domainrows.domain_value,
    "connection": domainrows.connection_value,
    "assignment": domainrows.assignment_value,
    "record_type": domainrows.record_type_value,
    "host": domainrows.host_value,
})
# Columns that are not text: a flag and a number, as CSV text or JSON values.
_NOT_TEXT: Mapping[str, Callable[[object], tuple[Value | None, str | None]]] = MappingProxyType({
    "notify": domainrows.flag_value,
    "ttl": domainrows.ttl_value,
    "values": _record_values,
})


# --- Plain cells: the same result as `_normalise`, with the checks that cannot object skipped --
#
# Most cells of a large file are plain: printable ASCII without spaces at either end, not
# starting with '#' or 'E' (where spreadsheet error values start). `_cleaned` leaves such text
# as it is and `_cell_problem` finds nothing in it, so only the column's own check is left to
# run: each function below gives `_normalise(column, text)` for the texts its pattern matches,
# and None for any other (which then takes the full checks).
_PLAIN = re.compile(r'[!-"$-DF-~](?:[ -~]*[!-~])?')
# A plain key: no '@' or ';' either, so `_key_problem` has nothing to say.
_PLAIN_KEY = re.compile(r'[!-"$-:<-?A-DF-~][!-:<-?A-~]*')
# A plain site name: single spaces only, so that collapsing white space changes nothing (and
# ASCII is already NFC).
_PLAIN_NAME = re.compile(r'[!-"$-DF-~](?: ?[!-~])*')
# `@key` entries separated by ';' alone, each entry the plain `@key` that `_list_value` lets
# past its per-entry checks (no spaces, controls, second '@' or non-ASCII).
_PLAIN_REFS = re.compile(r"@[!-:<-?A-~]+(?:;@[!-:<-?A-~]+)*")
_Normalised = tuple[Value | None, str | None]


def _plain_key(raw: str) -> _Normalised | None:
    return (raw, None) if _PLAIN_KEY.fullmatch(raw) else None


def _plain_site_name(raw: str) -> _Normalised | None:
    if _PLAIN_NAME.fullmatch(raw) is None:
        return None
    return raw, _site_name_problem(raw)


def _plain_sites(raw: str) -> _Normalised | None:
    return (tuple(raw.split(";")), None) if _PLAIN_REFS.fullmatch(raw) else None


def _plain_depends_on(raw: str) -> _Normalised | None:
    if _PLAIN_REFS.fullmatch(raw) is None:
        return None
    return tuple([entry[1:] for entry in raw.split(";")]), None


def _plain_record_values(raw: str) -> _Normalised | None:
    return (raw, None) if _PLAIN.fullmatch(raw) else None


def _plain_text(check: Callable[[str], str | None]) -> Callable[[str], _Normalised | None]:
    def plain(raw: str) -> _Normalised | None:
        return (raw, check(raw)) if _PLAIN.fullmatch(raw) else None
    return plain


def _plain_normalised(
    normalise: Callable[[str], tuple[str | None, str | None]],
) -> Callable[[str], _Normalised | None]:
    def plain(raw: str) -> _Normalised | None:
        return normalise(raw) if _PLAIN.fullmatch(raw) else None
    return plain


# Column -> its plain-cell shortcut (text cells only; role, notify and ttl repeat and are
# memoised instead). Empty it and every cell takes the full checks: the tests compare both.
_PLAIN_CELLS: dict[str, Callable[[str], _Normalised | None]] = {
    **{name: _plain_text(check) for name, check in _TEXT_CHECKS.items()},
    **{name: _plain_normalised(normalise) for name, normalise in _NORMALISED.items()},
    "key": _plain_key,
    "site_name": _plain_site_name,
    "sites": _plain_sites,
    "depends_on": _plain_depends_on,
    "values": _plain_record_values,
}


# Every OpSpec field at its default: a validated row's spec is these with its values over them.
_SPEC_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclass_fields(OpSpec) if f.default is not MISSING
}


def _spec(line: int, rules: _Rules, values: Mapping[str, Value], key: str | None) -> OpSpec:
    fields: dict[str, Any] = dict(values)
    fields.pop("key", None)
    if "role" in fields:  # the one column whose field has another name
        fields["roles"] = fields.pop("role")
    spec = {**_SPEC_DEFAULTS, **fields}
    spec["line"], spec["action"] = line, rules.action
    spec["key"] = key or _content_key(rules.name, fields)
    # As OpSpec(...) would make it, without its generated __init__, which sets each of the
    # 25 fields through object.__setattr__ (several microseconds a row).
    return frozen_instance(OpSpec, spec)


def derive_key(spec: OpSpec) -> str:
    """`<action>-<12 hex>` from the row's own normalised content (emails lowercased), so that
    reordering or editing other rows never changes it. The line and any key are not part of it."""
    fields = spec.to_json()
    del fields["action"]
    fields.pop("implied_depends_on", None)
    return _content_key(spec.action.value, fields)


# One encoder for every derived key (`json.dumps` with options builds one per call).
_KEY_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _content_key(action: str, fields: Mapping[str, Any]) -> str:
    """`action`: the action's value."""
    content = {"action": action, **fields}
    if "email" in content:
        content["email"] = content["email"].lower()
    canonical = compact_json(content, encode_basestring)
    if canonical is None:
        canonical = _KEY_ENCODER.encode(content)
    return f"{action}-{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"


_SEQUENCES = (tuple, list)
_ONLY_TEXT = frozenset({str})


def compact_json(content: Mapping[str, object], quote: Callable[[str], str]) -> str | None:
    """`content` as `json.JSONEncoder(sort_keys=True, separators=(",", ":"))` writes it, for
    the values a row holds (text, lists of text, true/false, whole numbers); None for any
    other value, which the caller then gives to the encoder itself. `quote` is the encoder's
    own string writer: `encode_basestring`, or `encode_basestring_ascii` for ensure_ascii.

    The encoder sets up a new C encoder on every call, which costs more than writing a
    row's few values; this writes the same text directly."""
    parts: list[str] = []
    for name, value in sorted(content.items()):  # names differ: values are never compared
        if type(value) is str:
            text = quote(value)
        elif isinstance(value, _SEQUENCES):
            if not {*map(type, value)} <= _ONLY_TEXT:
                return None
            text = "[" + ",".join(map(quote, value)) + "]"
        elif value is True:
            text = "true"
        elif value is False:
            text = "false"
        elif type(value) is int:
            text = int.__repr__(value)
        else:
            return None
        parts.append(quote(name) + ":" + text)
    return "{" + ",".join(parts) + "}"

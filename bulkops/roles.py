"""Role names as users write them (a title or a numeric id) turned into Wix policy ids."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Literal

from bulkops.errors import BulkOpsError
from bulkops.wixwire import Role

Level = Literal["site", "account"]

_WHERE = {"site": "on a site", "account": "account-wide"}
# Where a role restricted at one level can be given instead.
_INSTEAD = {
    "site": "give it account-wide instead: an account_invite without sites",
    "account": "give it on sites instead: a site_invite, or an account_invite with sites",
}
# Enough titles to recognise the right one in an error message without drowning it.
_MAX_LISTED = 12


class RoleError(BulkOpsError):
    """A role that does not exist, is ambiguous, or cannot be given at the requested level."""


class RoleBook:
    """The account's roles, looked up by title (case-insensitive) or by numeric id."""

    def __init__(self, roles: Iterable[Role]) -> None:
        self._by_id: dict[str, Role] = {}
        self._by_title: dict[str, list[Role]] = {}
        for role in roles:
            self._by_id.setdefault(role.id, role)
            self._by_title.setdefault(_title_key(role.title), []).append(role)

    def __len__(self) -> int:
        return len(self._by_id)

    def resolve(self, value: str, level: Level) -> str:
        """The policy id for `value` given at `level`; RoleError if there is none.

        `level` is "site" for a site invite or an account invite limited to sites, and
        "account" for an account invite that covers the whole account.
        """
        role = self._find(value)
        # Wix's `restrictFromLevel` names the level the role may NOT be given at.
        if (role.restrict_from_level or "").strip().lower() == level:
            raise RoleError(f"role {role.title!r} cannot be given {_WHERE[level]}: "
                            f"{_INSTEAD[level]}")
        return role.id

    def resolve_all(self, values: Iterable[str], level: Level) -> tuple[str, ...]:
        """Every value resolved, in order, without repeating a policy id."""
        return tuple(dict.fromkeys(self.resolve(v, level) for v in values))

    def _find(self, value: str) -> Role:
        text = value.strip()
        if not text:
            raise RoleError("empty role")
        by_id = self._by_id.get(text)
        if by_id is not None:
            return by_id
        matches = self._by_title.get(_title_key(text), [])
        if len(matches) == 1:
            return matches[0]
        if matches:
            ids = ", ".join(r.id for r in matches)
            raise RoleError(f"role {text!r} is ambiguous (ids {ids}); give the numeric id")
        if text.isdigit():
            rounded = ""
            if len(text) >= 16 and text.endswith("000"):
                # A spreadsheet keeps 15 significant digits: a 19-digit id comes back rounded.
                rounded = (" (it ends in zeros: a spreadsheet may have rounded it; format the "
                           "column as text and paste the id again)")
            raise RoleError(f"unknown role id {text!r}{rounded}")
        raise RoleError(f"unknown role {text!r}{self._suggestion(text)}; known: {self._known()}")

    def _suggestion(self, text: str) -> str:
        wrapped = self._unwrapped(text)
        if wrapped:
            return wrapped
        titles = {_title_key(r.title): r.title for r in self._by_id.values()}
        key = _title_key(text)
        if "," in text and all(_title_key(part) in titles for part in text.split(",")):
            return " (several roles are separated by ';', not ',')"
        # An older or shorter name of a role: "Admin" for "Admin (Co-owner)".
        longer = [title for k, title in titles.items() if k.startswith(key + " (")]
        if len(longer) == 1:
            return f" (did you mean {longer[0]!r}?)"
        close = difflib.get_close_matches(key, list(titles), n=1, cutoff=0.75)
        return f" (did you mean {titles[close[0]]!r}?)" if close else ""

    def _unwrapped(self, text: str) -> str:
        """A hint for a value a spreadsheet wrapped to keep it as text (`="708…"`, `'708…`,
        `=708…`), naming the role inside when there is one; "" for any other value."""
        if text.startswith('="') and text.endswith('"') and len(text) > 3:
            inner = text[2:-1]
        elif text[:1] in ("=", "'") and len(text) > 1:
            inner = text[1:]
        else:
            return ""
        try:
            role: Role | None = self._find(inner)
        except RoleError:
            role = None
        what = f": write {inner.strip()!r} alone" + (
            f" (the role {role.title!r})" if role is not None and role.title != inner.strip()
            else "")
        return f" ({text!r} is a spreadsheet's keep-as-text wrapper{what})"

    def _known(self) -> str:
        titles = sorted({r.title for r in self._by_id.values()}, key=str.casefold)
        if not titles:
            return "none"
        shown = ", ".join(titles[:_MAX_LISTED])
        more = len(titles) - _MAX_LISTED
        return f"{shown}, and {more} more" if more > 0 else shown


def _title_key(title: str) -> str:
    # Case-insensitive and blind to doubled or stray spaces, as a spreadsheet cell may hold.
    return " ".join(title.split()).casefold()

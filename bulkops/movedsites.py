"""What the checks before sending keep of a job's rows to tell an account invite that names a
site a transfer row moves away (`precheck`): the transfers out of the account by site, and which
rows each row waits for, directly or not.

Kept for every row still to do of a job of any size, so held in flat arrays numbered through
`KeyIndex`es: about 35 bytes a row key and 20 a transfer, where dicts of texts, lists and tuples
cost about 190 (for a million-row job, 190 MB of a run's peak).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator

from bulkops.keyindex import KeyIndex

_NONE = -1


class Waits:
    """Row keys and the keys each row waits for (`OpSpec.dependency_keys`), as a graph of key
    numbers: a row's targets lie together in one array."""

    def __init__(self) -> None:
        self._keys = KeyIndex()
        self._first = array("i")  # per key: where its row's targets start; _NONE: no row seen
        self._count = array("i")  # per key: how many targets its row has
        self._targets = array("i")

    def number(self, key: str) -> int:
        """The key's number, numbered now if it is new."""
        number, new = self._keys.add(key)
        if new:
            self._first.append(_NONE)
            self._count.append(0)
        return number

    def add(self, key: str, waits_for: Iterable[str]) -> int:
        """Record row `key` waiting for `waits_for` (each row once); the key's number."""
        number = self.number(key)
        targets = [self.number(target) for target in waits_for]
        self._first[number] = len(self._targets)
        self._count[number] = len(targets)
        self._targets.extend(targets)
        return number

    def waits_for(self, number: int, key: str) -> bool:
        """Whether row `number` waits for row `key`, directly or through other rows."""
        wanted = self._keys.find(key)
        if wanted == _NONE:
            return False
        seen = {number}
        stack = [number]
        while stack:
            node = stack.pop()
            first = self._first[node]
            if first == _NONE:
                continue
            for target in self._targets[first:first + self._count[node]]:
                if target == wanted:
                    return True
                if target not in seen:
                    seen.add(target)
                    stack.append(target)
        return False


class SiteMoves:
    """Transfer rows by the site they move (as written: an id or `@key`, lower-case), each as
    (line, its key's number in `Waits`, the account it moves the site to, lower-case)."""

    def __init__(self) -> None:
        self._sites = KeyIndex()
        self._last = array("i")  # per site: its last move; _NONE: none
        self._before = array("i")  # per move: the site's move before it; _NONE: none
        self._line = array("i")
        self._row = array("i")
        self._target = array("i")  # an index in _accounts: few accounts, many moves
        self._accounts: list[str] = []
        self._account_numbers: dict[str, int] = {}

    def __bool__(self) -> bool:
        return len(self._line) > 0

    def add(self, site: str, line: int, row: int, to_account: str) -> None:
        number, new = self._sites.add(site)
        if new:
            self._last.append(_NONE)
        target = self._account_numbers.setdefault(to_account, len(self._accounts))
        if target == len(self._accounts):
            self._accounts.append(to_account)
        self._before.append(self._last[number])
        self._last[number] = len(self._line)
        self._line.append(line)
        self._row.append(row)
        self._target.append(target)

    def of(self, site: str) -> Iterator[tuple[int, int, str]]:
        """The moves of `site` (lower-case), in file order."""
        number = self._sites.find(site)
        moves: list[int] = []
        move = self._last[number] if number != _NONE else _NONE
        while move != _NONE:
            moves.append(move)
            move = self._before[move]
        for move in reversed(moves):
            yield self._line[move], self._row[move], self._accounts[self._target[move]]

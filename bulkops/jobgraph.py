"""Checks across rows: unique keys, `@key` references that exist and fit, no dependency cycles.

Sized for a million rows: a `KeyIndex` (key → node number) and flat arrays of small ints hold
everything; no per-row objects are kept. Cycles are found with an iterative Tarjan walk, so a
chain of a million rows cannot exhaust the interpreter's recursion limit.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from bulkops.cells import show
from bulkops.errors import RowError
from bulkops.keyindex import KeyIndex
from bulkops.model import REF_PREFIX, Action, OpSpec

REF_COLUMNS = ("site", "sites", "depends_on")
_SITE, _SITES, _DEPENDS_ON = range(3)
_ACTIONS = tuple(Action)
_ACTION_CODE = {action: code for code, action in enumerate(_ACTIONS)}
_CREATE_SITE = _ACTION_CODE[Action.CREATE_SITE]
_NO_ACTION = 255  # a row whose action is missing or unknown: it already has its own error
_UNDEFINED = 0  # line of a key that was referred to but (so far) defined by no row
_MAX_LINES_SHOWN = 10


def _refs(spec: OpSpec) -> list[tuple[int, str]]:
    """(column, key) of every reference the row makes, in column order."""
    refs: list[tuple[int, str]] = []
    site = spec.site
    if site is not None and site.startswith(REF_PREFIX):
        refs.append((_SITE, site[len(REF_PREFIX):]))
    refs += [(_SITES, site[len(REF_PREFIX):]) for site in spec.sites
             if site.startswith(REF_PREFIX)]
    refs += [(_DEPENDS_ON, key) for key in spec.depends_on]
    refs += [(_DEPENDS_ON, key) for key in spec.implied_depends_on]
    return refs


@dataclass(frozen=True)
class OutsideRef:
    """A `@key` naming no row of the file: it may name an operation of an earlier run."""

    line: int
    column: str  # site, sites or depends_on
    key: str

    @property
    def needs_site(self) -> bool:
        """Whether the key must name a create_site (its site id is used)."""
        return self.column != "depends_on"


class RefGraph:
    """Rows by key and the references between them; fed row by row, judged at the end."""

    def __init__(self) -> None:
        self._keys = KeyIndex()  # a node's number is its key's
        self._line = array("i")
        self._kind = bytearray()
        self._edge_from = array("i")
        self._edge_to = array("i")
        self._edge_column = bytearray()
        # Set when some edge does not point strictly backwards in the file: without one, no
        # cycle can exist and the cycle search is skipped.
        self._maybe_cyclic = False

    def add_row(
        self, line: int, key: str, action: Action | None, spec: OpSpec | None, *, derived: bool
    ) -> RowError | None:
        """Register a row (its references too when it is valid). Returns the duplicate-key error
        if an earlier row has the same key."""
        lines, keys = self._line, self._keys
        kind = _NO_ACTION if action is None else _ACTION_CODE[action]
        node, new = keys.add(key)
        if new:  # the common row: a key not met before (as `_node_of`, defined)
            lines.append(line)
            self._kind.append(kind)
        else:
            earlier = lines[node]
            if earlier != _UNDEFINED:
                if derived:
                    return RowError(line, None, f"same operation as line {earlier} "
                                                f"(duplicate of line {earlier})")
                return RowError(line, "key",
                                f"duplicate key {show(key)}: duplicate of line {earlier}")
            lines[node] = line
            self._kind[node] = kind
        # `_refs` is only walked for a row that names another one.
        if spec is not None and (spec.site is not None or spec.sites or spec.depends_on
                                 or spec.implied_depends_on):
            for column, target_key in _refs(spec):
                target = self._node_of(target_key)
                self._edge_from.append(node)
                self._edge_to.append(target)
                self._edge_column.append(column)
                if lines[target] == _UNDEFINED or target == node:
                    self._maybe_cyclic = True
        return None

    def errors(self) -> list[RowError]:
        """Site references to rows that create no site, and cycles. References to keys that
        no row defines are not errors here: see `outside_refs`."""
        return self._reference_errors() + (self._cycle_errors() if self._maybe_cyclic else [])

    def defines(self, key: str) -> bool:
        """Whether a row read so far has this key."""
        node = self._keys.find(key)
        return node != -1 and self._line[node] != _UNDEFINED

    def outside_refs(self) -> list[OutsideRef]:
        """Every reference to a key no row of the file defines, in the order rows made them."""
        lines, keys = self._line, self._keys
        return [
            OutsideRef(lines[source], REF_COLUMNS[column], keys.key(target))
            for source, target, column in zip(
                self._edge_from, self._edge_to, self._edge_column, strict=True
            )
            if lines[target] == _UNDEFINED
        ]

    def _node_of(self, key: str) -> int:
        node, new = self._keys.add(key)
        if new:
            self._line.append(_UNDEFINED)
            self._kind.append(_NO_ACTION)
        return node

    def _reference_errors(self) -> list[RowError]:
        errors: list[RowError] = []
        lines, kinds, keys = self._line, self._kind, self._keys
        for source, target, column in zip(
            self._edge_from, self._edge_to, self._edge_column, strict=True
        ):
            if lines[target] == _UNDEFINED:
                continue  # an outside reference: judged against the database
            if column != _DEPENDS_ON and kinds[target] not in (_CREATE_SITE, _NO_ACTION):
                action = _ACTIONS[kinds[target]].value
                ref = show(REF_PREFIX + keys.key(target))
                errors.append(RowError(
                    lines[source], REF_COLUMNS[column],
                    f"{ref} is line {lines[target]} ({action}), not a create_site row",
                ))
        return errors

    def _cycle_errors(self) -> list[RowError]:
        start, targets, columns = self._adjacency()
        errors: list[RowError] = []
        for component in _Tarjan(start, targets).cycles():
            members = set(component)
            first = min(component, key=self._line.__getitem__)
            column = next(
                REF_COLUMNS[columns[i]] for i in range(start[first], start[first + 1])
                if targets[i] in members
            )
            if len(component) == 1:
                reason = f"the row refers to itself ({show(REF_PREFIX + self._keys.key(first))})"
            else:
                reason = "dependency cycle between lines " + _list_lines(
                    sorted(self._line[n] for n in component)
                )
            errors.append(RowError(self._line[first], column, reason))
        return errors

    def _adjacency(self) -> tuple[array[int], array[int], bytearray]:
        """Edges between defined rows as compressed rows: the targets of node n are
        targets[start[n]:start[n + 1]], in the order the row named them."""
        count = len(self._keys)
        start = array("i", bytes(4 * (count + 1)))
        kept = [
            i for i, target in enumerate(self._edge_to) if self._line[target] != _UNDEFINED
        ]
        for i in kept:
            start[self._edge_from[i] + 1] += 1
        for node in range(count):
            start[node + 1] += start[node]
        targets = array("i", bytes(4 * len(kept)))
        columns = bytearray(len(kept))
        fill = array("i", start)
        for i in kept:
            source = self._edge_from[i]
            targets[fill[source]] = self._edge_to[i]
            columns[fill[source]] = self._edge_column[i]
            fill[source] += 1
        return start, targets, columns


def _list_lines(lines: list[int]) -> str:
    if len(lines) > _MAX_LINES_SHOWN:
        shown = ", ".join(map(str, lines[:_MAX_LINES_SHOWN]))
        return f"{shown} and {len(lines) - _MAX_LINES_SHOWN} more"
    return ", ".join(map(str, lines[:-1])) + f" and {lines[-1]}"


class _Tarjan:
    """Strongly connected components, iteratively. Only nodes with outgoing edges can be part
    of a cycle, so nodes without any are never entered."""

    def __init__(self, start: array[int], targets: array[int]) -> None:
        self._start = start
        self._targets = targets
        count = len(start) - 1
        self._index = array("i", [-1]) * count
        self._low = array("i", bytes(4 * count))
        self._on_stack = bytearray(count)
        self._stack: list[int] = []
        self._counter = 0
        self._found: list[list[int]] = []

    def cycles(self) -> list[list[int]]:
        """Every component that is a cycle: two or more nodes, or one node naming itself."""
        for root in range(len(self._start) - 1):
            if self._index[root] == -1 and self._has_edges(root):
                self._walk(root)
        return self._found

    def _has_edges(self, node: int) -> bool:
        return self._start[node] != self._start[node + 1]

    def _enter(self, node: int) -> None:
        self._index[node] = self._low[node] = self._counter
        self._counter += 1
        self._stack.append(node)
        self._on_stack[node] = 1

    def _walk(self, root: int) -> None:
        self._enter(root)
        path, cursor = [root], [self._start[root]]
        while path:
            node = path[-1]
            child = self._next_child(node, cursor)
            if child is not None:
                self._enter(child)
                path.append(child)
                cursor.append(self._start[child])
                continue
            path.pop()
            cursor.pop()
            if path:
                self._low[path[-1]] = min(self._low[path[-1]], self._low[node])
            if self._low[node] == self._index[node]:
                self._close(node)

    def _next_child(self, node: int, cursor: list[int]) -> int | None:
        """Advance `node`'s edge cursor to the next child to enter, updating its low link on
        the way; None once its edges are exhausted."""
        position, end = cursor[-1], self._start[node + 1]
        while position < end:
            target = self._targets[position]
            position += 1
            if self._index[target] == -1:
                if self._has_edges(target):
                    cursor[-1] = position
                    return target
            elif self._on_stack[target]:
                self._low[node] = min(self._low[node], self._index[target])
        cursor[-1] = position
        return None

    def _close(self, node: int) -> None:
        component: list[int] = []
        while self._stack:  # `node` is on the stack, so this ends at it
            member = self._stack.pop()
            self._on_stack[member] = 0
            component.append(member)
            if member == node:
                break
        targets = self._targets[self._start[node]:self._start[node + 1]]
        if len(component) > 1 or node in targets:
            self._found.append(component)

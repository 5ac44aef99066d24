"""Query Sites' query language: filters, sort and cursor paging over a list of sites.

Paging is keyset paging: the cursor carries the query and the sort key of the last site
returned, and the next page starts strictly after it. Sites created while a client pages
through a `createdDate DESC` listing therefore sort before the cursor and never shift,
duplicate or skip the sites of later pages, which offset paging would do.
"""

from __future__ import annotations

import base64
import binascii
import json
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bulkops.sandbox.wire import JsonObject, validation_error

MAX_LIMIT = 100
DEFAULT_LIMIT = 50

# Filterable fields and the JSON type of their values.
FILTERABLE: dict[str, type] = {
    "id": str, "name": str, "folderId": str, "namespace": str, "published": bool, "premium": bool,
}
SORTABLE = frozenset({"createdDate", "updatedDate", "displayName", "name", "id"})
DEFAULT_SORT: tuple[tuple[str, bool], ...] = (("createdDate", True),)  # (field, descending)
DEFAULT_NAMESPACE = "WIX"

Predicate = Callable[[JsonObject], bool]

_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le,
}


def _operator(field: str, op: str, operand: Any, where: str) -> Predicate:
    """One `{field: {op: operand}}` test, its operand checked against the field's type."""
    kind = FILTERABLE[field]

    def typed(value: Any) -> bool:
        return isinstance(value, kind)  # kinds are only str and bool: no int/bool confusion

    if op == "$exists":
        if not isinstance(operand, bool):
            raise validation_error(where, "$exists takes true or false")
        return lambda site: (site.get(field) is not None) == operand
    if op == "$in":
        if not isinstance(operand, list) or not all(typed(v) for v in operand):
            raise validation_error(where, f"$in takes a list of {kind.__name__} values")
        return lambda site: site.get(field) in operand
    if not typed(operand):
        raise validation_error(where, f"{op} takes a {kind.__name__} value")
    if op == "$eq":
        return lambda site: site.get(field) == operand
    if op == "$ne":
        return lambda site: site.get(field) != operand
    if kind is not str:
        raise validation_error(where, f"{op} is not supported on {field}")
    if op == "$startsWith":
        return lambda site: isinstance(site.get(field), str) and site[field].startswith(operand)
    if op in _ORDERING:
        compare = _ORDERING[op]
        return lambda site: site.get(field) is not None and compare(site[field], operand)
    raise validation_error(where, f"unknown operator {op}")


def _field_test(field: str, condition: Any, where: str) -> Predicate:
    if field not in FILTERABLE:
        raise validation_error(where, f"{field} is not filterable")
    if not isinstance(condition, dict):  # {"field": value} means $eq
        return _operator(field, "$eq", condition, where)
    if not condition:
        raise validation_error(where, "empty condition")
    return _all_of([_operator(field, op, operand, f"{where}.{op}")
                    for op, operand in condition.items()])


def _each(filters: Any, where: str) -> list[Predicate]:
    if not isinstance(filters, list) or not filters:
        raise validation_error(where, "expects a non-empty list of filters")
    return [compile_filter(item, f"{where}[{i}]") for i, item in enumerate(filters)]


def _all_of(tests: list[Predicate]) -> Predicate:
    return lambda site: all(test(site) for test in tests)


def _any_of(tests: list[Predicate]) -> Predicate:
    return lambda site: any(test(site) for test in tests)


def _none_of(test: Predicate) -> Predicate:
    return lambda site: not test(site)


# How deep a filter may nest: far beyond any real query, well short of Python's recursion
# limit (compiling and testing a filter recurse a few frames a level).
MAX_FILTER_DEPTH = 32


def _nesting(value: Any) -> int:
    """How deep JSON `value` nests (a scalar: 0), without recursing."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest


def compile_filter(spec: Any, where: str = "query.filter") -> Predicate:
    """Turn a Wix filter object into a predicate over Query Sites' site objects (400 for a
    filter nested deeper than MAX_FILTER_DEPTH)."""
    if where == "query.filter" and _nesting(spec) > MAX_FILTER_DEPTH:
        raise validation_error(where, f"nested more than {MAX_FILTER_DEPTH} deep")
    if not isinstance(spec, dict):
        raise validation_error(where, "a filter is a JSON object")
    tests: list[Predicate] = []
    for key, value in spec.items():
        here = f"{where}.{key}"
        if key == "$and":
            tests.append(_all_of(_each(value, here)))
        elif key == "$or":
            tests.append(_any_of(_each(value, here)))
        elif key == "$not":
            tests.append(_none_of(compile_filter(value, here)))
        else:
            tests.append(_field_test(key, value, here))
    return _all_of(tests)


def mentions_field(spec: Any, field: str) -> bool:
    """Whether a filter tests `field` anywhere (to know if the default namespace applies)."""
    if isinstance(spec, list):
        return any(mentions_field(item, field) for item in spec)
    if isinstance(spec, dict):
        return any(k == field or mentions_field(v, field) for k, v in spec.items())
    return False


def parse_sort(spec: Any) -> tuple[tuple[str, bool], ...]:
    """`[{"fieldName": ..., "order": "ASC"|"DESC"}]` -> ((field, descending), ...)."""
    if spec is None or spec == []:
        return DEFAULT_SORT
    if not isinstance(spec, list):
        raise validation_error("query.sort", "a list of {fieldName, order}")
    fields = []
    for i, item in enumerate(spec):
        where = f"query.sort[{i}]"
        if not isinstance(item, dict) or item.get("fieldName") not in SORTABLE:
            raise validation_error(where, f"fieldName must be one of {sorted(SORTABLE)}")
        order = item.get("order", "ASC")
        if order not in ("ASC", "DESC"):
            raise validation_error(f"{where}.order", "ASC or DESC")
        fields.append((str(item["fieldName"]), order == "DESC"))
    return tuple(fields)


@dataclass(frozen=True)
class SiteQuery:
    """A parsed query: the raw filter (kept for the cursor), the sort, and the position."""

    filter: JsonObject
    sort: tuple[tuple[str, bool], ...]
    limit: int
    after: tuple[str, ...] | None = None  # sort key of the last site already returned

    def key(self, site: JsonObject) -> tuple[str, ...]:
        # The id ends every key so that equal sort values still have one fixed order.
        return (*(str(site.get(name, "")) for name, _ in self.sort), str(site["id"]))

    def compare(self, left: tuple[str, ...], right: tuple[str, ...]) -> int:
        for (a, b), descending in zip(zip(left, right, strict=True),
                                      [d for _, d in self.sort] + [False], strict=True):
            if a != b:
                ascending = -1 if a < b else 1
                return -ascending if descending else ascending
        return 0

    def cursor_after(self, site: JsonObject) -> str:
        raw = {"filter": self.filter, "sort": [list(s) for s in self.sort],
               "after": list(self.key(site))}
        return base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")


def _limit(paging: Any) -> int:
    if paging is None:
        return DEFAULT_LIMIT
    if not isinstance(paging, dict):
        raise validation_error("query.cursorPaging", "must be an object")
    limit = paging.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise validation_error("query.cursorPaging.limit", f"an integer from 1 to {MAX_LIMIT}")
    return limit


def _from_cursor(cursor: Any, limit: int) -> SiteQuery:
    if not isinstance(cursor, str):
        raise validation_error("query.cursorPaging.cursor", "must be a string")
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        sort = tuple((str(name), bool(desc)) for name, desc in raw["sort"])
        after = tuple(str(v) for v in raw["after"])
        compile_filter(raw["filter"])
        if not sort or len(after) != len(sort) + 1 or not {n for n, _ in sort} <= SORTABLE:
            raise ValueError("cursor does not match its sort")
        return SiteQuery(raw["filter"], sort, limit, after)
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as exc:
        raise validation_error("query.cursorPaging.cursor", "invalid cursor") from exc


def parse_query(body: JsonObject) -> SiteQuery:
    """Read `{"query": {...}}`: a first page (filter, sort) or a later one (cursor only)."""
    query = body.get("query", {})
    if not isinstance(query, dict):
        raise validation_error("query", "must be an object")
    paging = query.get("cursorPaging")
    limit = _limit(paging)
    cursor = paging.get("cursor") if isinstance(paging, dict) else None
    if cursor is not None:
        if query.get("filter") or query.get("sort"):
            raise validation_error("query", "a cursor request takes no filter or sort")
        return _from_cursor(cursor, limit)
    filter_spec = query.get("filter") or {}
    compile_filter(filter_spec)  # reject a bad filter on the first page, not a later one
    return SiteQuery(filter_spec, parse_sort(query.get("sort")), limit)


def pinned_ids(spec: Any) -> frozenset[str] | None:
    """The only site ids a filter can match: those it names with `id` equal to (or `$in`) at
    its top level or in a top-level `$and`; None when it does not pin the id. The filter
    still applies to the sites these name."""
    if not isinstance(spec, dict):
        return None
    pinned: set[str] | None = None
    for key, value in spec.items():
        found: set[str] | None = None
        if key == "id":
            condition = value if isinstance(value, dict) else {"$eq": value}
            if isinstance(condition.get("$eq"), str):
                found = {condition["$eq"]}
            elif isinstance(condition.get("$in"), list):
                found = {item for item in condition["$in"] if isinstance(item, str)}
        elif key == "$and" and isinstance(value, list):
            for item in value:
                inner = pinned_ids(item)
                if inner is not None:
                    found = set(inner) if found is None else found & inner
        if found is not None:
            pinned = found if pinned is None else pinned & found
    return None if pinned is None else frozenset(pinned)


def select(query: SiteQuery, sites: list[JsonObject]) -> list[JsonObject]:
    """Every site of `sites` the query's filter matches (the default namespace unless it
    names one), in the query's order: its sort, then the id."""
    spec = query.filter
    if not mentions_field(spec, "namespace"):
        spec = {"$and": [spec, {"namespace": DEFAULT_NAMESPACE}]} if spec else {
            "namespace": DEFAULT_NAMESPACE}
    matches = compile_filter(spec)
    # One stable sort per field, the least significant first: key functions run in C, where
    # one comparison function over the whole key ran in Python for every comparison.
    selected = sorted((site for site in sites if matches(site)), key=lambda s: str(s["id"]))
    for name, descending in reversed(query.sort):
        selected.sort(key=lambda site, n=name: str(site.get(n, "")),  # type: ignore[misc]
                      reverse=descending)
    return selected


def page_of(query: SiteQuery, selected: list[JsonObject]) -> JsonObject:
    """The Query Sites response for the page of `query` in `selected` (`select`'s result):
    the `limit` sites after the cursor's position, found by binary search."""
    start = 0
    after = query.after
    if after is not None:
        high = len(selected)
        while start < high:  # the first site strictly after the cursor's
            middle = (start + high) // 2
            if query.compare(query.key(selected[middle]), after) > 0:
                high = middle
            else:
                start = middle + 1
    page = selected[start:start + query.limit]
    has_next = start + query.limit < len(selected)
    next_cursor = query.cursor_after(page[-1]) if has_next else None
    return {
        "sites": page,
        "metadata": {"count": len(page), "cursors": {"next": next_cursor}, "hasNext": has_next},
    }

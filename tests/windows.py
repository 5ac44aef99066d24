"""Counting events in sliding windows: how a test reads a rate off arrival times."""

from __future__ import annotations

from collections.abc import Iterable


def busiest_second(times: Iterable[float]) -> int:
    """The most events inside any 1-second window (arrival times in seconds, any order)."""
    ordered = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most

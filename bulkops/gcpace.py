"""The cyclic garbage collector's pace for commands that make and drop containers by the
million: a run's requests, a report's rows, a large file's rows.

At CPython's default pace (a young collection every 700 new container objects, an older one
every 10 of those), such a command collects about every row and finds next to nothing:
almost everything it allocates is freed by reference counting. An older collection also
walks everything alive, a million-row file's tables included. Inside `paced_collections`,
young collections come every GEN0_THRESHOLD allocations instead.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Container allocations between two young collections inside the block (CPython's is 700).
GEN0_THRESHOLD = 50_000


@contextmanager
def paced_collections() -> Iterator[None]:
    """Young collections every GEN0_THRESHOLD container allocations inside the block
    (CPython's pace restored after; an enclosing block's, when nested)."""
    thresholds = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)

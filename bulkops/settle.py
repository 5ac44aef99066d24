"""When to look for the effect of a send whose outcome is unknown.

Wix's site listing lags behind creates and transfers. Concluding "it did not happen" too early
creates a duplicate, so an unknown outcome is checked at once (the cheap, common case: the effect
is already listed), again once `settle` seconds have passed since the send, and then, still
missing, a few more times at doubling intervals: only after about 4.5 x settle is the row
treated as not done and sent again. The report marks such rows as reconciled.
"""

from __future__ import annotations

# Offsets after the last send, as multiples of --settle: 0, 1, then gaps of 0.5, 1 and 2.
CHECK_OFFSETS = (0.0, 1.0, 1.5, 2.5, 4.5)


def check_times(settle: float) -> tuple[float, ...]:
    """Seconds after the last send at which to look, without repeats (settle 0 -> one look)."""
    return tuple(dict.fromkeys(offset * settle for offset in CHECK_OFFSETS))


def next_check_at(last_sent_at: float, checks_done: int, settle: float) -> float | None:
    """Clock time of the next look, or None once every look has been made (send again)."""
    times = check_times(settle)
    if checks_done >= len(times):
        return None
    return last_sent_at + times[checks_done]

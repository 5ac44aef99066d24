"""The tests' sliding-window counter, on arrival times whose answer is known by hand."""

from __future__ import annotations

from windows import busiest_second


def test_busiest_second_counts_the_fullest_window_whatever_the_order() -> None:
    assert busiest_second([]) == 0
    assert busiest_second([5.0]) == 1
    # 0.0 .. 0.99 hold four; 1.0 has left the window that starts at 0.0.
    assert busiest_second([0.99, 0.0, 0.5, 0.7, 1.0, 1.6]) == 4
    assert busiest_second([0.0, 1.0, 2.0, 3.0]) == 1

"""When an unknown outcome is looked up: at once, after settle, then at doubling intervals."""

import pytest

from bulkops.settle import check_times, next_check_at


@pytest.mark.parametrize(
    ("settle", "times"),
    [
        (10.0, (0.0, 10.0, 15.0, 25.0, 45.0)),
        (1.0, (0.0, 1.0, 1.5, 2.5, 4.5)),
        (0.0, (0.0,)),  # no listing lag allowed: one look, then send again
    ],
)
def test_check_times_grow_and_are_bounded_by_four_and_a_half_settles(
    settle: float, times: tuple[float, ...]
) -> None:
    assert check_times(settle) == times


@pytest.mark.parametrize(
    ("checks_done", "expected"),
    [(0, 100.0), (1, 110.0), (2, 115.0), (3, 125.0), (4, 145.0), (5, None), (9, None)],
)
def test_next_check_counts_from_the_last_send_and_ends_after_the_last_look(
    checks_done: int, expected: float | None
) -> None:
    assert next_check_at(100.0, checks_done, settle=10.0) == expected

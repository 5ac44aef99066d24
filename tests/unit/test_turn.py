"""A worker's turn on a shared job (`bulkops.turn.WorkerTurn`), on a clock the test moves."""

from __future__ import annotations

from bulkops.turn import WorkerTurn

LEASE = 10.0


class Beats:
    """The database side of a turn: each renewal ends the turn `LEASE` seconds after the
    clock, until the turn is taken."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.taken = False

    def clock(self) -> float:
        return self.now

    async def renew(self) -> float | None:
        return None if self.taken else self.now + LEASE


async def test_a_turn_renewed_in_time_judges_the_others_from_the_start() -> None:
    beats = Beats()
    turn = WorkerTurn(beats.renew, beats.clock)
    assert turn.judges_others(LEASE)
    for _ in range(5):
        assert await turn.renew()
        beats.now += LEASE / 3
        assert turn.judges_others(LEASE)


async def test_a_turn_back_from_a_lapse_judges_nobody_for_one_turn() -> None:
    """This worker stalled past its turn and nobody took its rows: it holds again, but the
    others' lapsed turns are not taken as their death until they had a whole turn to renew."""
    beats = Beats()
    turn = WorkerTurn(beats.renew, beats.clock)
    assert await turn.renew()
    beats.now += LEASE * 2  # frozen
    assert await turn.holds()
    assert not turn.judges_others(LEASE)
    beats.now += LEASE - 0.1
    assert await turn.renew()
    assert not turn.judges_others(LEASE)
    beats.now += 0.1
    assert turn.judges_others(LEASE)


async def test_a_renewal_that_waited_past_the_turn_counts_as_a_lapse() -> None:
    """The renewal itself waited (on a write lock) until after the turn had ended."""
    beats = Beats()

    async def slow_renew() -> float | None:
        started = beats.now
        beats.now += LEASE * 1.5
        return started + LEASE

    turn = WorkerTurn(slow_renew, beats.clock)
    assert await turn.renew()  # the first: nothing had lapsed yet
    assert turn.judges_others(LEASE)
    assert await turn.renew()
    assert not turn.judges_others(LEASE)


async def test_a_lost_turn_stays_lost() -> None:
    beats = Beats()
    turn = WorkerTurn(beats.renew, beats.clock)
    assert await turn.holds()
    beats.taken = True
    beats.now += LEASE
    assert not await turn.holds()
    beats.taken = False
    assert not await turn.renew()
    assert turn.lost

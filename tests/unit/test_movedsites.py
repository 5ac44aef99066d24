"""Transfers by site and the rows each row waits for, as the checks before sending keep them."""

from __future__ import annotations

from bulkops.movedsites import SiteMoves, Waits


def test_a_row_waits_for_rows_directly_or_through_others_and_not_for_the_rest() -> None:
    waits = Waits()
    move = waits.add("move-1", ["owner-1", "domain-1"])
    waits.add("owner-1", ["site-1"])
    waits.add("team-1", ["site-1", "shop-1"])
    waits.add("cycle-a", ["cycle-b"])
    waits.add("cycle-b", ["cycle-a"])
    assert waits.waits_for(move, "owner-1")
    assert waits.waits_for(move, "site-1")  # through owner-1, whose row came later
    assert not waits.waits_for(move, "team-1")
    assert not waits.waits_for(move, "shop-1")
    assert not waits.waits_for(move, "never-named")
    assert not waits.waits_for(waits.number("alone"), "site-1")
    assert not waits.waits_for(waits.number("cycle-a"), "move-1")  # a cycle ends the walk


def test_a_sites_moves_come_back_in_file_order_with_their_account() -> None:
    moves, waits = SiteMoves(), Waits()
    assert not moves
    moves.add("@site-1", 10, waits.number("move-1"), "acc-b")
    moves.add("@shop-1", 11, waits.number("move-2"), "acc-b")
    moves.add("@site-1", 12, waits.number("move-3"), "acc-c")
    assert moves
    assert list(moves.of("@site-1")) == [(10, 0, "acc-b"), (12, 2, "acc-c")]
    assert list(moves.of("@shop-1")) == [(11, 1, "acc-b")]
    assert list(moves.of("@other")) == []

"""The writer's schedule: how many rows are due when, and when the next tick is."""

from __future__ import annotations

import pytest

from bench.source_writer import WRITE_TICK_S, WriteResult, next_tick, rows_due


def test_rows_due_follow_the_rate() -> None:
    assert rows_due(0.0, 100.0, 1_000) == 0
    assert rows_due(0.05, 100.0, 1_000) == 5
    assert rows_due(1.0, 100.0, 1_000) == 100
    assert rows_due(2.5, 40.0, 1_000) == 100


def test_rows_due_never_exceed_the_total() -> None:
    assert rows_due(60.0, 100.0, 250) == 250


def test_as_fast_as_possible_is_everything_at_once() -> None:
    assert rows_due(0.0, None, 31_101) == 31_101


def test_a_rate_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        rows_due(1.0, 0.0, 10)


def test_rows_due_are_exact_at_tick_boundaries_despite_float_rounding() -> None:
    # 0.1 * 30 is 2.9999999999999996 in binary floating point; three rows are due.
    assert rows_due(0.1, 30.0, 100) == 3
    assert [rows_due(tick * WRITE_TICK_S, 20.0, 100) for tick in range(5)] == [0, 1, 2, 3, 4]


def test_a_schedule_at_a_fixed_rate_writes_every_row_once_tick_by_tick() -> None:
    rate, total = 73.0, 500
    elapsed, written, batches = 0.0, 0, []
    while written < total:
        due = rows_due(elapsed, rate, total)
        if due > written:
            batches.append(due - written)
            written = due
        elapsed = next_tick(elapsed)
    assert sum(batches) == total
    # 73 rows/s at 20 ticks/s: three or four rows per commit, never a burst.
    assert set(batches) <= {3, 4}
    assert elapsed == pytest.approx(total / rate, abs=2 * WRITE_TICK_S)


def test_next_tick_is_strictly_after_now() -> None:
    assert next_tick(0.0) == pytest.approx(WRITE_TICK_S)
    assert next_tick(0.049) == pytest.approx(0.05)
    assert next_tick(0.05) == pytest.approx(0.10)
    assert next_tick(1.234, tick_s=0.5) == pytest.approx(1.5)


def test_write_result_rates() -> None:
    result = WriteResult(rows=600, transactions=120, started_at=100.0, finished_at=110.0, max_backlog_rows=7)
    assert result.seconds == 10.0
    assert result.achieved_rate_per_s == 60.0

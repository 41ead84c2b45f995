"""The pure batch planner: limits on rows and padded tokens, bucketing, determinism."""

from __future__ import annotations

import random

import pytest

from models.batch_planning import BatchLimits, bucketed_length, plan_batches


def test_every_row_is_planned_exactly_once() -> None:
    lengths = [random.Random(7).randint(1, 256) for _ in range(1000)]
    batches = plan_batches(lengths, BatchLimits(max_rows=64, max_tokens=8192))
    planned = sorted(index for batch in batches for index in batch.indices)
    assert planned == list(range(len(lengths)))


def test_batches_respect_row_and_token_limits() -> None:
    rng = random.Random(11)
    lengths = [rng.randint(1, 256) for _ in range(500)]
    limits = BatchLimits(max_rows=32, max_tokens=2048)
    for batch in plan_batches(lengths, limits):
        assert len(batch.indices) <= limits.max_rows
        assert batch.padded_tokens <= limits.max_tokens
        assert all(lengths[index] <= batch.padded_length for index in batch.indices)


def test_rows_are_grouped_by_length_longest_first() -> None:
    lengths = [5, 200, 17, 199, 6]
    batches = plan_batches(lengths, BatchLimits(max_rows=2, max_tokens=10_000))
    assert [batch.indices for batch in batches] == [(1, 3), (2, 4), (0,)]
    assert [batch.padded_length for batch in batches] == [200, 24, 8]


def test_a_row_longer_than_the_token_limit_gets_its_own_batch() -> None:
    batches = plan_batches([300, 10, 10], BatchLimits(max_rows=8, max_tokens=100))
    assert batches[0].indices == (0,)
    assert sorted(index for batch in batches[1:] for index in batch.indices) == [1, 2]


def test_plan_is_deterministic_and_ties_keep_input_order() -> None:
    lengths = [10] * 10
    limits = BatchLimits(max_rows=4, max_tokens=1000)
    assert plan_batches(lengths, limits) == plan_batches(list(lengths), limits)
    assert plan_batches(lengths, limits)[0].indices == (0, 1, 2, 3)


def test_empty_input_plans_nothing() -> None:
    assert plan_batches([], BatchLimits(max_rows=4, max_tokens=100)) == []


@pytest.mark.parametrize(
    ("length", "multiple", "cap", "expected"),
    [
        (1, 8, None, 8),
        (8, 8, None, 8),
        (9, 8, None, 16),
        (250, 16, 256, 256),
        (255, 16, 256, 256),
        (0, 8, None, 8),
    ],
)
def test_bucketed_length(length: int, multiple: int, cap: int | None, expected: int) -> None:
    assert (
        bucketed_length(length, BatchLimits(max_rows=1, max_tokens=1, pad_multiple=multiple, max_length=cap))
        == expected
    )


def test_bucketing_bounds_the_number_of_shapes() -> None:
    lengths = list(range(1, 257))
    limits = BatchLimits(max_rows=1, max_tokens=10_000, pad_multiple=16, max_length=256)
    assert len({batch.padded_length for batch in plan_batches(lengths, limits)}) == 16


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        BatchLimits(max_rows=0, max_tokens=10)

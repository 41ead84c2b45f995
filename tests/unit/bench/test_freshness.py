"""Percentiles and the freshness summary of the pipeline benchmark."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bench.freshness import FreshnessSummary, percentile


def test_percentile_interpolates_between_closest_ranks() -> None:
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile([10], 0.99) == 10
    assert percentile([3, 1, 2], 0.0) == 1
    assert percentile([3, 1, 2], 1.0) == 3
    assert percentile([0, 100], 0.99) == pytest.approx(99.0)


def test_percentile_matches_numpy_linear_on_random_data() -> None:
    generator = random.Random(7)
    values = [generator.expovariate(1 / 300) for _ in range(1_001)]
    for fraction in (0.5, 0.95, 0.99):
        assert percentile(values, fraction) == pytest.approx(float(np.percentile(values, fraction * 100)))


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_percentile_refuses_a_fraction_outside_zero_to_one(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        percentile([1.0], fraction)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_summary_of_freshness_values() -> None:
    summary = FreshnessSummary.of([float(value) for value in range(10, 1_001, 10)])
    assert summary is not None
    assert (summary.count, summary.p50_ms, summary.max_ms, summary.mean_ms) == (100, 505.0, 1000.0, 505.0)
    assert (summary.p95_ms, summary.p99_ms) == (950.5, 990.1)
    assert summary.to_json()["p99_ms"] == summary.p99_ms


def test_no_values_no_summary() -> None:
    assert FreshnessSummary.of([]) is None

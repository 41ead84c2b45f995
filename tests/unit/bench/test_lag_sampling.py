"""Summaries of consumer-lag samples, and the sampler thread with stand-in readers."""

from __future__ import annotations

import itertools
import time

import pytest

from bench.lag_sampling import LagSample, LagSampler, summarize_lag
from tidewire.errors import ServiceError


def samples(*points: tuple[float, int]) -> list[LagSample]:
    return [LagSample(elapsed_s=t, lag=lag, written=0) for t, lag in points]


def test_max_final_and_time_weighted_mean() -> None:
    # 0 for 1 s, 100 for 3 s, 20 for 1 s: (0 + 300 + 20) / 5 s.
    summary = summarize_lag(samples((0, 0), (1, 100), (4, 20), (5, 0)))
    assert (summary.samples, summary.max_lag, summary.final_lag) == (4, 100, 0)
    assert summary.mean_lag == 64.0


def test_drain_is_the_first_zero_after_the_writes_finished() -> None:
    # A zero before the writes finished (the start) does not count.
    points = samples((0, 0), (1, 50), (2, 80), (3, 30), (4, 0), (5, 0))
    assert summarize_lag(points, writes_finished_s=2.5).drain_s == 1.5
    assert summarize_lag(points, writes_finished_s=4.0).drain_s == 0.0


def test_never_drained_or_unknown_end_of_writes() -> None:
    points = samples((0, 10), (1, 20))
    assert summarize_lag(points, writes_finished_s=0.5).drain_s is None
    assert summarize_lag(points).drain_s is None


def test_one_sample_and_no_samples() -> None:
    assert summarize_lag(samples((3, 12))).mean_lag == 12.0
    empty = summarize_lag([])
    assert (empty.samples, empty.max_lag, empty.drain_s) == (0, 0, None)
    assert summarize_lag(samples((0, 5), (0, 7))).mean_lag == 6.0


def test_the_sampler_records_readings_and_skips_failed_ones() -> None:
    lags = itertools.count()
    readings = 0

    def read_lag() -> int:
        nonlocal readings
        readings += 1
        if readings == 2:
            raise ServiceError("kafka busy")
        return next(lags)

    sampler = LagSampler(read_lag, lambda: 42, interval_s=0.001)
    sampler.start()
    deadline = time.monotonic() + 10
    while len(sampler.samples) < 3 and time.monotonic() < deadline:
        time.sleep(0.001)
    taken = sampler.stop()
    assert sampler.failed_readings == 1
    assert [sample.lag for sample in taken[:3]] == [0, 1, 2]
    assert all(sample.written == 42 for sample in taken)
    assert [sample.elapsed_s for sample in taken] == sorted(sample.elapsed_s for sample in taken)
    assert sampler.latest() == taken[-1]


def test_stop_takes_a_last_reading() -> None:
    clock = itertools.count(start=100.0, step=0.5)
    sampler = LagSampler(lambda: 3, lambda: 0, interval_s=3600, clock=lambda: float(next(clock)))
    sampler.start()
    taken = sampler.stop()
    # One reading when the thread starts and one when it is told to stop, not an hour later.
    assert [sample.lag for sample in taken] == [3, 3]
    assert taken[0].elapsed_s == pytest.approx(0.5)

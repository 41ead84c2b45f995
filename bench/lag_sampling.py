"""Consumer lag over time: a sampler thread during a benchmark phase, and the summary of its samples.

The lag is :func:`tidewire.consumer_lag.consumer_group_lag` of the benchmark's consumer group: the
CDC events Kafka holds that the workers have not yet committed, which they do only after the
vectors are in Postgres. The workers commit about once a second, so finer sampling adds nothing.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tidewire.errors import ServiceError


@dataclass(frozen=True)
class LagSample:
    """One reading: seconds since the phase started, the group's total lag, rows written so far."""

    elapsed_s: float
    lag: int
    written: int


@dataclass(frozen=True)
class LagSummary:
    """What the samples of one phase say."""

    samples: int
    max_lag: int
    mean_lag: float  # time-weighted: each sample holds until the next one
    final_lag: int
    # Seconds from the end of the writes until the first sample at zero lag; None: never drained
    # while sampled (or the writes' end is unknown).
    drain_s: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize_lag(samples: Sequence[LagSample], writes_finished_s: float | None = None) -> LagSummary:
    """Max, time-weighted mean and final lag of ``samples`` (in time order), and the drain time.

    ``writes_finished_s`` is when the writer committed its last row, on the samples' clock.
    """
    if not samples:
        return LagSummary(samples=0, max_lag=0, mean_lag=0.0, final_lag=0, drain_s=None)
    if len(samples) == 1:
        mean = float(samples[0].lag)
    else:
        span = samples[-1].elapsed_s - samples[0].elapsed_s
        weighted = sum(
            current.lag * (following.elapsed_s - current.elapsed_s)
            for current, following in itertools.pairwise(samples)
        )
        mean = weighted / span if span > 0 else sum(s.lag for s in samples) / len(samples)
    drain: float | None = None
    if writes_finished_s is not None:
        drained = next(
            (s for s in samples if s.elapsed_s >= writes_finished_s and s.lag == 0),
            None,
        )
        drain = None if drained is None else round(drained.elapsed_s - writes_finished_s, 2)
    return LagSummary(
        samples=len(samples),
        max_lag=max(s.lag for s in samples),
        mean_lag=round(mean, 1),
        final_lag=samples[-1].lag,
        drain_s=drain,
    )


class LagSampler:
    """Reads the lag every ``interval_s`` in a background thread until :meth:`stop`.

    A reading that fails (Kafka busy past its timeout) is skipped and counted, never raised in
    the thread: the phase's own checks decide whether the run is valid.
    """

    def __init__(
        self,
        read_lag: Callable[[], int],
        read_written: Callable[[], int],
        *,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read_lag = read_lag
        self._read_written = read_written
        self._interval_s = interval_s
        self._clock = clock
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tidewire-bench-lag", daemon=True)
        self.samples: list[LagSample] = []
        self.failed_readings = 0
        self.started_at = 0.0

    def start(self) -> None:
        self.started_at = self._clock()
        self._thread.start()

    def elapsed(self) -> float:
        """Seconds since :meth:`start`, on the samples' clock."""
        return self._clock() - self.started_at

    def latest(self) -> LagSample | None:
        """The newest sample so far (read while the thread runs)."""
        return self.samples[-1] if self.samples else None

    def stop(self) -> list[LagSample]:
        """Take one last reading, stop the thread and return the samples in time order."""
        self._stopping.set()
        self._thread.join(timeout=30)
        return self.samples

    def _run(self) -> None:
        while True:
            began = self._clock()
            try:
                lag = self._read_lag()
            except ServiceError:
                self.failed_readings += 1
            else:
                self.samples.append(LagSample(round(began - self.started_at, 3), lag, self._read_written()))
            if self._stopping.is_set():
                return
            self._stopping.wait(max(0.0, self._interval_s - (self._clock() - began)))

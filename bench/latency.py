"""Latency and throughput of a batch of HTTP requests: pure functions over measured durations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.freshness import percentile


@dataclass(frozen=True)
class LatencySummary:
    """Client-side latencies of the requests of one phase, in milliseconds, and its throughput."""

    requests: int
    errors: int
    p50_ms: float | None  # None: no request succeeded
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    mean_ms: float | None
    wall_s: float
    throughput_rps: float

    @classmethod
    def of(cls, latencies_s: Sequence[float], *, errors: int, wall_s: float) -> LatencySummary:
        """Summarise the successful requests' latencies (seconds) of a phase that took ``wall_s``.

        Throughput counts successful requests only: a server that answers errors fast is not fast.
        """
        if wall_s <= 0:
            raise ValueError(f"wall time must be positive, not {wall_s}")
        if not latencies_s:
            return cls(0, errors, None, None, None, None, None, round(wall_s, 3), 0.0)
        milliseconds = [value * 1000 for value in latencies_s]
        return cls(
            requests=len(milliseconds),
            errors=errors,
            p50_ms=round(percentile(milliseconds, 0.50), 2),
            p95_ms=round(percentile(milliseconds, 0.95), 2),
            p99_ms=round(percentile(milliseconds, 0.99), 2),
            max_ms=round(max(milliseconds), 2),
            mean_ms=round(sum(milliseconds) / len(milliseconds), 2),
            wall_s=round(wall_s, 3),
            throughput_rps=round(len(milliseconds) / wall_s, 1),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator`` rounded to 3 places; None when the denominator is not positive."""
    if denominator <= 0:
        return None
    return round(numerator / denominator, 3)

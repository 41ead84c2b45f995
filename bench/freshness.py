"""End-to-end freshness of indexed documents: percentiles of (vectors committed − source commit).

Pure functions; the pipeline benchmark reads the two timestamps of every document it wrote from
``tidewire_document_state`` (``source_committed_at``: Debezium's commit time of the write;
``indexed_at``: when the vector store wrote it) and summarises their differences here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (0 ≤ fraction ≤ 1), linear between closest ranks.

    The same definition as numpy's default (``method="linear"``): p50 of ``[1, 2, 3, 4]`` is 2.5.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be within [0, 1], not {fraction}")
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


@dataclass(frozen=True)
class FreshnessSummary:
    """Freshness of a set of documents, in milliseconds."""

    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def of(cls, freshness_ms: Sequence[float]) -> FreshnessSummary | None:
        """The summary of ``freshness_ms``; None when there is nothing to summarise."""
        if not freshness_ms:
            return None
        return cls(
            count=len(freshness_ms),
            p50_ms=round(percentile(freshness_ms, 0.50), 1),
            p95_ms=round(percentile(freshness_ms, 0.95), 1),
            p99_ms=round(percentile(freshness_ms, 0.99), 1),
            max_ms=round(max(freshness_ms), 1),
            mean_ms=round(sum(freshness_ms) / len(freshness_ms), 1),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

"""What one ``tidewire bench api`` run measures (:class:`ApiBenchConfig`), the targets it judges, and the
benchmark's own tenant."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from bench.slow_chat_provider import GenerationSchedule

# The benchmark's own tenant, holding the KJV corpus and nothing else (its rows' ids are the demo's with
# DOCUMENT_ID_PREFIX): search and recall measure the corpus, not whatever tests or demos left in the
# demo tenant, and the demo's own rows are left alone.
TENANT = "bench-api"
DOCUMENT_ID_PREFIX = "bench-api:"


Progress = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    """A number a phase must reach: at most (``"max"``) or at least (``"min"``) ``threshold``."""

    kind: str
    threshold: float
    unit: str

    def judge(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value <= self.threshold if self.kind == "max" else value >= self.threshold

    def describe(self) -> str:
        return f"{'≤' if self.kind == 'max' else '≥'} {self.threshold:g}{self.unit}"


TARGETS = {
    "search_p95_ms": Target("max", 50.0, " ms"),
    "search_p99_ms": Target("max", 100.0, " ms"),
    "recall_at_10": Target("min", 0.95, ""),
    "cached_search_vs_bare": Target("min", 0.7, "×"),
    "chat_sse_vs_sync": Target("min", 3.0, "×"),
}


@dataclass(frozen=True)
class ApiBenchConfig:
    """What one run measures."""

    search_clients: int = 16
    search_requests: int = 4_000
    warm_up_requests: int = 200
    recall_queries: int = 200
    k: int = 10
    cached_requests: int = 3_000  # per round and per side
    cached_rounds: int = 3
    idle_streams: int = 1_000
    chat_requests: int = 200
    chat_rounds: int = 2
    sync_threads: int = 40
    provider: GenerationSchedule = field(default_factory=GenerationSchedule)
    corpus_verses: int | None = None  # None: the whole KJV must be indexed
    index_timeout_s: float = 1_800.0
    quick: bool = False

    @classmethod
    def quick_run(cls) -> ApiBenchConfig:
        """A smoke run of seconds once the corpus is indexed (300 verses); it judges no target."""
        return cls(
            search_requests=48,
            warm_up_requests=8,
            recall_queries=10,
            cached_requests=48,
            cached_rounds=1,
            idle_streams=20,
            chat_requests=6,
            chat_rounds=1,
            sync_threads=4,
            provider=GenerationSchedule(first_token_s=0.5, tokens_per_s=20.0, tokens=4),
            corpus_verses=300,
            index_timeout_s=600.0,
            quick=True,
        )


def with_overrides(config: ApiBenchConfig, **overrides: Any) -> ApiBenchConfig:
    """``config`` with the CLI's options applied (None: keep)."""
    return replace(config, **{name: value for name, value in overrides.items() if value is not None})

"""Prometheus metrics of one API app (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class ApiMetrics:
    """The API's metrics. Children used on every request are bound once (``labels()`` takes a lock
    and builds a key on each call)."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    chat_answers: Counter
    sse_clients: Gauge
    query_cache: Counter
    search_cache: Counter
    search_cache_hits: Any  # search_cache's children, bound once
    search_cache_misses: Any
    search_cache_bypasses: Any

    @classmethod
    def create(cls) -> ApiMetrics:
        registry = CollectorRegistry()
        search_cache = Counter(
            "tidewire_api_search_cache",
            "Searches by response-cache result (hit, miss, bypass: after= given or cache off)",
            ["result"],
            registry=registry,
        )
        return cls(
            registry=registry,
            requests=Counter(
                "tidewire_api_requests",
                "HTTP requests by route and status",
                ["route", "status"],
                registry=registry,
            ),
            latency=Histogram(
                "tidewire_api_request_seconds",
                "Time to the response head, by route",
                ["route"],
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                registry=registry,
            ),
            chat_answers=Counter(
                "tidewire_api_chat_answers", "Chat answers by outcome", ["outcome"], registry=registry
            ),
            sse_clients=Gauge(
                "tidewire_api_sse_clients", "Connected SSE clients", ["stream"], registry=registry
            ),
            query_cache=Counter(
                "tidewire_api_query_embedding_cache",
                "Query embeddings by cache result (hit, miss)",
                ["result"],
                registry=registry,
            ),
            search_cache=search_cache,
            search_cache_hits=search_cache.labels("hit"),
            search_cache_misses=search_cache.labels("miss"),
            search_cache_bypasses=search_cache.labels("bypass"),
        )

"""Prometheus metrics of a stream worker, on a registry the worker owns (none at import time)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_FRESHNESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class StreamMetrics:
    """Every metric the agents update; names are a public contract (dashboards read them)."""

    registry: CollectorRegistry
    events: Counter
    batches: Counter
    embedded_chunks: Counter
    unchanged_documents: Counter
    dead_letters: Counter
    retries: Counter
    notifications: Counter
    webhook_deliveries: Counter
    freshness: Histogram
    batch_latency: Histogram
    batch_size: Histogram
    ready: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> StreamMetrics:
        registry = registry or CollectorRegistry()
        return cls(
            registry=registry,
            events=Counter(
                "tidewire_stream_events", "Messages consumed, by agent and outcome",
                ["agent", "outcome"], registry=registry,
            ),
            batches=Counter(
                "tidewire_stream_batches", "Micro-batches committed, by agent", ["agent"], registry=registry
            ),
            embedded_chunks=Counter(
                "tidewire_embedded_chunks", "Chunks embedded by the model, by pipeline",
                ["pipeline"], registry=registry,
            ),
            unchanged_documents=Counter(
                "tidewire_unchanged_documents",
                "Upserts whose text was unchanged, so only metadata and position were written",
                ["pipeline"], registry=registry,
            ),
            dead_letters=Counter(
                "tidewire_dead_letters", "Messages sent to the dead-letter topic, by agent and stage",
                ["agent", "stage"], registry=registry,
            ),
            retries=Counter(
                "tidewire_batch_retries", "Failed batch attempts that were retried, by agent",
                ["agent"], registry=registry,
            ),
            notifications=Counter(
                "tidewire_notifications", "Notifications published, by type", ["type"], registry=registry
            ),
            webhook_deliveries=Counter(
                "tidewire_webhook_deliveries", "Webhook delivery attempts, by outcome",
                ["outcome"], registry=registry,
            ),
            freshness=Histogram(
                "tidewire_freshness_seconds", "Source commit to vectors committed, per document",
                ["pipeline"], buckets=_FRESHNESS_BUCKETS, registry=registry,
            ),
            batch_latency=Histogram(
                "tidewire_batch_seconds", "Wall time of one micro-batch, decode to commit",
                ["agent"], buckets=_LATENCY_BUCKETS, registry=registry,
            ),
            batch_size=Histogram(
                "tidewire_batch_events", "Messages per micro-batch", ["agent"],
                buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500), registry=registry,
            ),
            ready=Gauge(
                "tidewire_worker_ready", "1 once the worker has its resources and joined its group",
                registry=registry,
            ),
        )  # fmt: skip

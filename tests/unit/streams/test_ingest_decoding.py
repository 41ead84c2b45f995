"""The ingest agent's decoding: a Schema Registry that does not answer is retried, never dead-lettered."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from streams.dead_letters import Rejection
from streams.ingest_agent import IngestProcessor
from streams.messages import MessageRef, RawMessage
from streams.metrics import StreamMetrics
from streams.retry import RetryPolicy
from tidewire.events import IngestDocument, SchemaRegistryUnavailableError
from tidewire.pipeline_spec import PipelineSpec


class RegistryAwayOnce:
    """A codec whose first decode finds the Schema Registry away."""

    def __init__(self) -> None:
        self.calls = 0

    def decode(self, value: bytes | None, model: type[Any], *, topic: str) -> IngestDocument:
        self.calls += 1
        if self.calls == 1:
            raise SchemaRegistryUnavailableError("registry at 127.0.0.1:1 did not answer", retry_after_s=0)
        # Names a pipeline that does not exist: a dead letter, so no database is needed.
        return IngestDocument(document_id="d-1", event_time=datetime(2026, 1, 1, tzinfo=UTC), pipeline="nope")


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[Rejection] = []

    async def send(self, rejections: Sequence[Rejection]) -> None:
        self.sent.extend(rejections)


def test_a_schema_registry_away_is_retried_and_then_the_batch_goes_on() -> None:
    codec, dead_letters = RegistryAwayOnce(), DeadLetters()
    processor = IngestProcessor(
        pipelines=[PipelineSpec()],
        pool=None,  # type: ignore[arg-type]
        codec=codec,  # type: ignore[arg-type]
        topic="tidewire.ingest",
        retry=RetryPolicy(attempts=3, initial_backoff_s=0.001, max_backoff_s=0.001),
        dead_letters=dead_letters,  # type: ignore[arg-type]
        metrics=StreamMetrics.create(),
    )
    message = RawMessage(ref=MessageRef("tidewire.ingest", 0, 7), key=b"d-1", value=b"avro")
    asyncio.run(processor.process([message]))
    assert codec.calls == 2
    [rejection] = dead_letters.sent
    assert "pipeline 'nope' does not exist" in str(rejection.error)

"""The one handler for bad messages: log where the message is, then route it to ``tidewire.dlq``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from streams.errors import PoisonEventError
from streams.messages import RawMessage
from streams.metrics import StreamMetrics
from streams.publishing import Publisher
from tidewire.events import DeadLetter, EventCodec, FailureStage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rejection:
    """A message given up on: the error and the stage, waiting to be dead-lettered."""

    message: RawMessage
    error: BaseException
    stage: FailureStage
    pipeline: str | None = None
    destination: str | None = None
    attempts: int = 1


def rejection(message: RawMessage, error: PoisonEventError, pipeline: str | None = None) -> Rejection:
    """The rejection of a poison event, at the stage the error names."""
    return Rejection(message=message, error=error, stage=error.stage, pipeline=pipeline)


class DeadLetterHandler:
    """Logs each rejected message with topic, partition and offset and produces its :class:`DeadLetter`."""

    def __init__(
        self, *, publisher: Publisher, codec: EventCodec, topic: str, agent: str, metrics: StreamMetrics
    ) -> None:
        self._publisher = publisher
        self._codec = codec
        self._topic = topic
        self._agent = agent
        self._metrics = metrics

    async def send(self, rejections: Sequence[Rejection]) -> None:
        """Produce the dead letters and wait for the broker; raises if it cannot (the batch is retried)."""
        if not rejections:
            return
        now = datetime.now(UTC)
        records = []
        for item in rejections:
            logger.warning(
                "dead-lettering %s (%s, stage %s): %s",
                item.message.ref, getattr(item.error, "code", type(item.error).__name__),
                item.stage.value, item.error,
            )  # fmt: skip
            letter = DeadLetter.from_failure(
                error=item.error,
                stage=item.stage,
                topic=item.message.ref.topic,
                partition=item.message.ref.partition,
                offset=item.message.ref.offset,
                key=item.message.key,
                value=item.message.value,
                failed_at=now,
                headers=item.message.headers,
                timestamp=item.message.timestamp,
                attempts=item.attempts,
                pipeline=item.pipeline,
                destination=item.destination,
            )
            records.append((item.message.key, self._codec.encode(letter, topic=self._topic)))
        await self._publisher.publish(self._topic, records)
        for item in rejections:
            self._metrics.dead_letters.labels(agent=self._agent, stage=item.stage.value).inc()

"""Reading the dead-letter topic and re-driving its messages (``tidewire dlq``).

The DLQ is read without a consumer group (partitions assigned by hand, from the beginning to
the end offsets as they were when the read started), so listing it never moves anyone's offsets.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

from tidewire.errors import ServiceError
from tidewire.events import DeadLetter, InvalidEventError, make_event_codec
from tidewire.kafka_clients import consumer as kafka_consumer
from tidewire.kafka_clients import produce_and_wait
from tidewire.settings import Settings

_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class StoredDeadLetter:
    """A dead letter and where it sits in the DLQ topic (``<partition>:<offset>`` is its id)."""

    partition: int
    offset: int
    letter: DeadLetter

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"

    def summary(self) -> dict[str, Any]:
        letter = self.letter
        return {
            "id": self.id,
            "topic": letter.topic,
            "partition": letter.partition,
            "offset": letter.offset,
            "stage": letter.stage.value,
            "error_code": letter.error_code,
            "reason": letter.reason,
            "failed_at": letter.failed_at.isoformat(),
            "attempts": letter.attempts,
            "pipeline": letter.pipeline,
            "destination": letter.destination,
        }

    def detail(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "error_class": self.letter.error_class,
            "key": _printable(self.letter.key),
            "value": _printable(self.letter.value),
            "headers": {header.name: _printable(header.value) for header in self.letter.headers},
        }


def _printable(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()


def read_dead_letters(settings: Settings) -> Iterator[StoredDeadLetter]:
    """Every dead letter now in the DLQ topic, partition by partition, oldest first."""
    topic = settings.topics.dead_letter
    codec = make_event_codec(settings.kafka)
    consumer = kafka_consumer(
        settings.kafka.bootstrap,
        {
            "group.id": f"tidewire-dlq-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        },
    )
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=_TIMEOUT_S).topics.get(topic)
        except KafkaException as error:
            raise ServiceError(f"cannot reach Kafka at {settings.kafka.bootstrap}: {error}") from None
        if metadata is None or metadata.error is not None:
            return
        ends = {}
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=_TIMEOUT_S)
            if high > low:
                ends[partition] = high
        if not ends:
            return
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in ends])
        remaining = set(ends)
        while remaining:
            message = consumer.poll(_TIMEOUT_S)
            if message is None:
                raise ServiceError(f"reading {topic} stalled; is Kafka up (`tidewire status`)?")
            partition, offset = message.partition(), message.offset()
            if message.error() is not None or partition is None or offset is None:
                if partition in remaining and offset is not None and offset >= ends.get(partition, 0):
                    remaining.discard(partition)
                continue
            if offset + 1 >= ends[partition]:
                remaining.discard(partition)
            try:
                letter = codec.decode(message.value(), DeadLetter, topic=topic)
            except InvalidEventError:
                continue  # not a dead letter (someone else wrote here): nothing to show or re-drive
            yield StoredDeadLetter(partition, offset, letter)
    finally:
        consumer.close()


def redrive(settings: Settings, letters: Sequence[StoredDeadLetter]) -> int:
    """Produce each dead letter's original key and value to its original topic; return how many."""
    messages = [(stored.letter.topic, stored.letter.key, stored.letter.value) for stored in letters]
    produce_and_wait(settings.kafka.bootstrap, messages, what="re-driving")
    return len(letters)

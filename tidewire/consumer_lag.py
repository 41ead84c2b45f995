"""Consumer lag of a Kafka consumer group: committed offset against the high watermark, per partition.

The streams workers are a Faust app whose id is their consumer group (``settings.streams.app_id``);
they commit an offset only after its vectors are committed in Postgres, so this lag is exactly the
work not yet searchable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from tidewire.errors import ServiceError
from tidewire.kafka_clients import admin_client, forward_client_log

_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class PartitionLag:
    """One partition: what the group committed (None: never), the log's end, and the difference."""

    topic: str
    partition: int
    committed: int | None
    low_watermark: int
    high_watermark: int

    @property
    def lag(self) -> int:
        # Never committed: everything still in the log is unconsumed.
        start = self.committed if self.committed is not None else self.low_watermark
        return max(self.high_watermark - start, 0)


@dataclass(frozen=True)
class GroupLag:
    group: str
    partitions: list[PartitionLag]

    @property
    def total(self) -> int:
        return sum(partition.lag for partition in self.partitions)


def consumer_group_lag(
    bootstrap: str, group: str, expected_topics: Iterable[str] = (), *, admin: AdminClient | None = None
) -> GroupLag:
    """Lag of ``group`` on every partition it committed on, and on every partition of ``expected_topics``.

    ``admin``: a client to reuse (a caller that samples the lag every second); a new one otherwise.

    1. Committed offsets of the group (all its topics).
    2. The partitions of those and of the expected topics that exist.
    3. Low and high watermarks of each partition, in one request each.
    """
    admin = admin or admin_client(bootstrap)
    try:
        # 1. Committed offsets
        request = [ConsumerGroupTopicPartitions(group)]
        result = admin.list_consumer_group_offsets(request, request_timeout=_TIMEOUT_S)[group].result()
        committed = {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions if tp.offset >= 0}
        # 2. Partitions
        metadata = admin.list_topics(timeout=_TIMEOUT_S)
        topics = {topic for topic, _ in committed} | {t for t in expected_topics if t in metadata.topics}
        partitions = sorted(
            (topic, partition) for topic in topics for partition in metadata.topics[topic].partitions
        )
        # 3. Watermarks
        low = _offsets(admin, partitions, OffsetSpec.earliest())
        high = _offsets(admin, partitions, OffsetSpec.latest())
    except KafkaException as error:
        raise ServiceError(
            f"cannot read consumer lag of group {group!r} from Kafka at {bootstrap}: {error.args[0]}; "
            "is the stack up (`tidewire status`)?"
        ) from None
    finally:
        forward_client_log(admin)
    return GroupLag(
        group=group,
        partitions=[
            PartitionLag(
                topic,
                partition,
                committed.get((topic, partition)),
                low[(topic, partition)],
                high[(topic, partition)],
            )
            for topic, partition in partitions
        ],
    )


def _offsets(
    admin: AdminClient, partitions: list[tuple[str, int]], spec: OffsetSpec
) -> dict[tuple[str, int], int]:
    if not partitions:
        return {}
    futures = admin.list_offsets(
        {TopicPartition(t, p): spec for t, p in partitions}, request_timeout=_TIMEOUT_S
    )
    return {(tp.topic, tp.partition): future.result().offset for tp, future in futures.items()}

"""Moving a consumer group's committed offsets: what ``tidewire replay`` does.

Offsets can only be moved while no member of the group is consuming (Kafka refuses, and a running
worker would overwrite them with its own commits), so :func:`reset_offsets` checks first and
refuses with :class:`~streams.errors.ReplayRefusedError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams.errors import ReplayRefusedError
from tidewire.errors import ServiceError
from tidewire.kafka_clients import admin_client
from tidewire.settings import Settings

Position = Literal["earliest", "latest"] | datetime

_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PartitionReset:
    """Where one partition of the group was moved."""

    topic: str
    partition: int
    offset: int


def group_members(admin: AdminClient, group: str) -> int:
    """How many members the group has now (0 for an empty or unknown group)."""
    try:
        [future] = admin.describe_consumer_groups([group], request_timeout=_TIMEOUT_S).values()
        description = future.result()
    except KafkaException as error:
        raise ServiceError(f"cannot describe consumer group {group}: {error.args[0].str()}") from None
    if description.state in (ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD, ConsumerGroupState.UNKNOWN):
        return 0
    return len(description.members)


def reset_offsets(
    settings: Settings, group: str, topics: Sequence[str], to: Position
) -> list[PartitionReset]:
    """Commit, for every partition of ``topics``, the offset of ``to`` as ``group``'s position.

    ``earliest`` re-consumes everything, ``latest`` skips to the end, a datetime re-consumes from
    the first message at or after it (the end of a partition with none).
    """
    admin = admin_client(settings.kafka.bootstrap)
    members = group_members(admin, group)
    if members:
        raise ReplayRefusedError(
            f"consumer group {group} has {members} running member(s); stop the workers "
            "(`tidewire down`, or stop each `tidewire worker`) and run the replay again"
        )
    partitions = _partitions(admin, topics)
    spec = (
        OffsetSpec.earliest()
        if to == "earliest"
        else OffsetSpec.latest()
        if to == "latest"
        else OffsetSpec.for_timestamp(int(to.timestamp() * 1000))
    )
    try:
        listed = admin.list_offsets({partition: spec for partition in partitions}, request_timeout=_TIMEOUT_S)
        offsets = {partition: future.result().offset for partition, future in listed.items()}
        end = {}
        if not isinstance(to, str):
            # A timestamp after a partition's last message lists -1: start at its end instead.
            latest = admin.list_offsets(
                {partition: OffsetSpec.latest() for partition in partitions}, request_timeout=_TIMEOUT_S
            )
            end = {partition: future.result().offset for partition, future in latest.items()}
        targets = [
            TopicPartition(p.topic, p.partition, offsets[p] if offsets[p] >= 0 else end.get(p, 0))
            for p in partitions
        ]
        [future] = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, targets)]).values()
        future.result()
    except KafkaException as error:
        raise ServiceError(f"cannot reset the offsets of {group}: {error.args[0].str()}") from None
    return [PartitionReset(t.topic, t.partition, t.offset) for t in targets]


def _partitions(admin: AdminClient, topics: Sequence[str]) -> list[TopicPartition]:
    try:
        metadata = admin.list_topics(timeout=_TIMEOUT_S)
    except KafkaException as error:
        raise ServiceError(f"cannot reach Kafka at {admin}: {error}") from None
    partitions: list[TopicPartition] = []
    for topic in topics:
        if topic not in metadata.topics:
            continue  # nothing was ever produced: nothing to replay
        partitions.extend(TopicPartition(topic, index) for index in sorted(metadata.topics[topic].partitions))
    return partitions

"""Creating the topics a worker consumes and produces, before it subscribes.

A consumer subscribed to a topic that does not exist yet only notices it at its next metadata
refresh (minutes); Debezium creates a CDC topic only with the first change. So the worker creates
every topic it uses, with the configured partition count, before Faust starts.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic, TopicMetadata

from tidewire.errors import ServiceError
from tidewire.settings import Settings


def worker_topics(settings: Settings) -> list[str]:
    """Every topic the agents read or write."""
    topics = settings.topics
    cdc = [topics.cdc_topic(spec.schema_name, spec.table_name) for spec in settings.pipelines]
    return [*cdc, topics.ingest, topics.notifications, topics.dead_letter]


def ensure_topics(settings: Settings, names: list[str], *, timeout_s: float = 30.0) -> list[str]:
    """Create the missing topics among ``names``; return the ones created."""
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as error:
        raise ServiceError(
            f"cannot reach Kafka at {settings.kafka.bootstrap}: {error}; is the stack up (`tidewire up`)?"
        ) from None
    missing = [name for name in names if name not in existing]
    if not missing:
        return []
    partitions = settings.kafka.default_partitions
    futures = admin.create_topics([NewTopic(name, partitions, 1) for name in missing])
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # another worker won the race
                raise ServiceError(f"cannot create topic {name}: {error.args[0].str()}") from None
    _wait_for_leaders(admin, missing, timeout_s=timeout_s)
    return missing


def _wait_for_leaders(admin: AdminClient, names: list[str], *, timeout_s: float) -> None:
    """Return once every partition of ``names`` has a leader.

    ``create_topics`` completes when the controller has recorded the topic, before its partitions
    have a leader; a produce or offset request in that window fails with NOT_LEADER_FOR_PARTITION.
    """
    deadline = time.monotonic() + timeout_s
    waiting = list(names)
    while waiting:
        metadata = admin.list_topics(timeout=max(deadline - time.monotonic(), 1.0)).topics
        waiting = [name for name in waiting if not _has_leaders(metadata.get(name))]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise ServiceError(
                f"topics {', '.join(waiting)} still have partitions without a leader after {timeout_s:.0f}s;"
                " check the broker's log"
            )
        time.sleep(0.1)


def _has_leaders(topic: TopicMetadata | None) -> bool:
    if topic is None or topic.error is not None or not topic.partitions:
        return False
    return all(partition.leader >= 0 and partition.error is None for partition in topic.partitions.values())

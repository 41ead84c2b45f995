"""Creating the topics a worker consumes and produces, before it subscribes.

A consumer subscribed to a topic that does not exist yet only notices it at its next metadata
refresh (minutes); Debezium creates a CDC topic only with the first change. So the worker creates
every topic it uses, with the configured partition count, before Faust starts.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from tidewire.errors import ServiceError
from tidewire.kafka_clients import admin_client
from tidewire.settings import Settings


def worker_topics(settings: Settings) -> list[str]:
    """Every topic the agents read or write."""
    topics = settings.topics
    cdc = [topics.cdc_topic(spec.schema_name, spec.table_name) for spec in settings.pipelines]
    return [*cdc, topics.ingest, topics.notifications, topics.dead_letter]


def ensure_topics(settings: Settings, names: list[str], *, timeout_s: float = 30.0) -> list[str]:
    """Create the missing topics among ``names``; return the ones created."""
    admin = admin_client(settings.kafka.bootstrap)
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
    _wait_until_served(admin, missing, timeout_s=timeout_s)
    return missing


def _wait_until_served(admin: AdminClient, names: list[str], *, timeout_s: float) -> None:
    """Return once every partition of ``names`` answers an offset request from its leader.

    ``create_topics`` completes when the controller has recorded the topic. The broker then lists a
    leader in its metadata a moment before that leader serves the partition: an offset request in
    between fails with NOT_LEADER_FOR_PARTITION, and a consumer's watermark query does not retry it.
    So the check is the request itself, not the metadata.
    """
    deadline = time.monotonic() + timeout_s
    waiting = set(names)
    last_problem = "no metadata yet"
    while True:
        metadata = admin.list_topics(timeout=max(deadline - time.monotonic(), 1.0)).topics
        requests: dict[TopicPartition, OffsetSpec] = {}
        for name in waiting:
            topic = metadata.get(name)
            if topic is None or topic.error is not None or not topic.partitions:
                continue
            for partition in topic.partitions:
                requests[TopicPartition(name, partition)] = OffsetSpec.latest()
        answered = {topic_partition.topic for topic_partition in requests}
        timeout = max(deadline - time.monotonic(), 1.0)
        results = admin.list_offsets(requests, request_timeout=timeout) if requests else {}
        for topic_partition, future in results.items():
            try:
                future.result()
            except KafkaException as error:
                answered.discard(topic_partition.topic)
                last_problem = error.args[0].str()
        waiting -= answered
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise ServiceError(
                f"topics {', '.join(sorted(waiting))} are not served yet after {timeout_s:.0f}s ({last_problem}); "
                "check the broker's log"
            )
        time.sleep(0.1)

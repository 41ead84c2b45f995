"""`ensure_topics` hands back topics that are ready to serve, and creates nothing twice."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, TopicPartition

from streams.topics import ensure_topics
from tidewire.runtime.stack import LocalStack
from tidewire.settings import Settings


def test_new_topics_answer_offset_requests_as_soon_as_ensure_topics_returns(
    local_stack: LocalStack, settings: Settings
) -> None:
    names = [f"itest-topics-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    assert sorted(ensure_topics(settings, names)) == sorted(names)

    consumer = Consumer(
        {"bootstrap.servers": settings.kafka.bootstrap, "group.id": f"itest-{uuid.uuid4().hex[:8]}"}
    )
    try:
        for name in names:
            partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
            assert len(partitions) == settings.kafka.default_partitions
            for partition in partitions:
                # No retry: right after creation, and even once the metadata lists a leader, this
                # raised NOT_LEADER_FOR_PARTITION for about a partition in four.
                assert consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=10) == (0, 0)
    finally:
        consumer.close()

    assert ensure_topics(settings, names) == []

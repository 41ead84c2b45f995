"""What the connector emits for the cases the streams side relies on: TOAST placeholder, delete + tombstone."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any

import psycopg
from confluent_kafka import Consumer, TopicPartition

from connectors.debezium_config import UNAVAILABLE_VALUE_PLACEHOLDER
from tidewire.runtime.stack import LocalStack
from tidewire.settings import Settings


def _events_for(consumer: Consumer, document_id: str, count: int, timeout_s: float = 60) -> list[Any]:
    """The next ``count`` messages keyed by ``document_id`` (values decoded; a tombstone is None)."""
    events: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(events) < count and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None or message.error() or message.key() is None:
            continue
        if json.loads(message.key()).get("id") == document_id:
            events.append(None if message.value() is None else json.loads(message.value()))
    return events


def test_unchanged_toast_value_becomes_the_placeholder_and_delete_ends_in_a_tombstone(
    local_stack: LocalStack, settings: Settings
) -> None:
    topic = settings.topics.cdc_topic("public", "documents")
    document_id = f"toast-{uuid.uuid4().hex[:8]}"
    # Random text does not compress: 40 kB is stored out of line (TOASTed).
    body = secrets.token_hex(20_000)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap,
            "group.id": f"test-toast-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        start = []
        for partition in metadata.topics[topic].partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            start.append(TopicPartition(topic, partition, high))
        consumer.assign(start)
        with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
            connection.execute(
                "INSERT INTO documents (id, title, body) VALUES (%s, 'v1', %s)", (document_id, body)
            )
            connection.execute("UPDATE documents SET title = 'v2' WHERE id = %s", (document_id,))
            connection.execute("DELETE FROM documents WHERE id = %s", (document_id,))
        created, updated, deleted, tombstone = _events_for(consumer, document_id, 4)
    finally:
        consumer.close()
        with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
            connection.execute("DELETE FROM documents WHERE id = %s", (document_id,))
    assert created["op"] == "c" and created["after"]["body"] == body
    assert updated["op"] == "u"
    assert updated["after"]["title"] == "v2"
    assert updated["after"]["body"] == UNAVAILABLE_VALUE_PLACEHOLDER
    assert deleted["op"] == "d" and deleted["after"] is None and deleted["before"]["id"] == document_id
    assert tombstone is None
    assert created["source"]["lsn"] < updated["source"]["lsn"] < deleted["source"]["lsn"]

"""The demo `make demo` runs: an upstream writer's row arrives on Kafka as a Debezium change event.

Until the embedding pipeline consumes CDC topics, the demo shows the proof of the stack:
insert a row into `documents`, then read its change event from `cdc.public.documents`.
"""

from __future__ import annotations

import json
import time
import uuid

import psycopg
from confluent_kafka import Consumer, KafkaError
from rich.console import Console

from tidewire.errors import ServiceError
from tidewire.settings import Settings


def insert_document(settings: Settings, document_id: str, title: str, body: str) -> None:
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        connection.execute(
            "INSERT INTO documents (id, title, body) VALUES (%s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, body = EXCLUDED.body, updated_at = now()",
            [document_id, title, body],
        )


def wait_for_change_event(settings: Settings, document_id: str, *, timeout_s: float = 60.0) -> dict:
    """Read the CDC topic from the start until the change event of ``document_id`` arrives."""
    topic = settings.topics.cdc_topic("public", "documents")
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap,
            "group.id": f"tidewire-demo-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.value() is None:
                continue
            if message.error():
                if message.error().code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    continue
                raise ServiceError(f"reading {topic} failed: {message.error()}")
            event = json.loads(message.value())
            if (event.get("after") or {}).get("id") == document_id:
                return event
    finally:
        consumer.close()
    raise ServiceError(
        f"no change event for {document_id} on {topic} after {timeout_s:.0f}s; see connect.log"
    )


def run_demo(settings: Settings, console: Console) -> None:
    document_id = f"demo-{uuid.uuid4().hex[:8]}"
    insert_document(
        settings, document_id, "Genesis 1:1", "In the beginning God created the heaven and the earth."
    )
    console.print(f"inserted row {document_id} into documents; waiting for its change event…")
    event = wait_for_change_event(settings, document_id)
    source = event.get("source", {})
    console.print(
        f"[green]✓[/] change event on {settings.topics.cdc_topic('public', 'documents')}: "
        f"op={event.get('op')} lsn={source.get('lsn')} after={json.dumps(event.get('after'))}"
    )

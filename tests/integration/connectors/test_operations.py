"""`tidewire reindex` (incremental snapshot through the signalling table) and `tidewire lag`."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from connectors.debezium_config import HEARTBEAT_INTERVAL_MS, connector_spec
from tests.integration.conftest import CliRunner
from tidewire.runtime.stack import LocalStack
from tidewire.settings import Settings


@pytest.fixture
def fresh_documents(local_stack: LocalStack, settings: Settings) -> Iterator[list[str]]:
    """Two rows of `documents` with unique ids (one with a quote in it), deleted afterwards."""
    ids = [f"reindex-{uuid.uuid4().hex[:8]}", f"reindex-{uuid.uuid4().hex[:8]}-o'neil"]
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        for document_id in ids:
            connection.execute(
                "INSERT INTO documents (id, title, body) VALUES (%s, 'reindex test', 'body')", (document_id,)
            )
    yield ids
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        connection.execute("DELETE FROM documents WHERE id = ANY(%s)", (ids,))


def _end_offsets(consumer: Consumer, topic: str) -> list[TopicPartition]:
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = []
    for partition in metadata.topics[topic].partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        partitions.append(TopicPartition(topic, partition, high))
    return partitions


def test_reindex_of_documents_emits_snapshot_reads_on_the_cdc_topic(
    fresh_documents: list[str], settings: Settings, run_cli: CliRunner
) -> None:
    topic = settings.topics.cdc_topic("public", "documents")
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap,
            "group.id": f"test-reindex-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    try:
        # Start at today's end of the topic: only what the re-index produces from now on counts.
        consumer.assign(_end_offsets(consumer, topic))
        result = run_cli(
            "reindex", "--pipeline", "documents", *(f"--document={i}" for i in fresh_documents), "--json"
        )
        assert result.returncode == 0, result.stderr
        (signal,) = json.loads(result.stdout)["signals"]
        assert (signal["pipeline"], signal["table"], signal["document_count"]) == (
            "documents",
            "public.documents",
            2,
        )

        reads: dict[str, dict[str, object]] = {}
        deadline = time.monotonic() + 90
        while set(reads) != set(fresh_documents) and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error() or message.value() is None:
                continue
            event = json.loads(message.value())
            key = json.loads(message.key())["id"]
            if event["op"] == "r":
                # Only the requested rows are read again, not the whole table.
                assert key in fresh_documents
                reads[key] = event
        assert set(reads) == set(fresh_documents)
        for document_id, event in reads.items():
            after = event["after"]
            assert isinstance(after, dict) and after["id"] == document_id and after["body"] == "body"
            source = event["source"]
            assert isinstance(source, dict) and source["snapshot"] == "incremental"
    finally:
        consumer.close()


def test_reindex_document_needs_a_known_pipeline(local_stack: LocalStack, run_cli: CliRunner) -> None:
    result = run_cli("reindex", "--pipeline", "nope", "--document", "x")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: no pipeline named 'nope'; known pipelines: documents"


def test_lag_of_a_throwaway_group(local_stack: LocalStack, settings: Settings, run_cli: CliRunner) -> None:
    topic = f"test-lag-{uuid.uuid4().hex[:8]}"
    group = f"test-lag-group-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(timeout=30)
    try:
        producer = Producer({"bootstrap.servers": settings.kafka.bootstrap})
        for i in range(10):
            producer.produce(topic, value=b"x", partition=0 if i < 6 else 1)
        assert producer.flush(30) == 0
        # The group consumed 3 of partition 0's 6 messages and all 4 of partition 1's.
        consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": group})
        consumer.commit(
            offsets=[TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 4)], asynchronous=False
        )
        consumer.close()

        result = run_cli("lag", "--group", group, "--json")
        assert result.returncode == 0, result.stderr
        document = json.loads(result.stdout)
        assert document["group"] == group
        assert document["total_lag"] == 3
        assert [
            (p["topic"], p["partition"], p["committed"], p["high_watermark"], p["lag"])
            for p in document["partitions"]
        ] == [
            (topic, 0, 3, 6, 3),
            (topic, 1, 4, 4, 0),
        ]
        text = run_cli("lag", "--group", group)
        assert text.returncode == 0 and f"group {group}: total lag 3" in text.stdout
    finally:
        admin.delete_consumer_groups([group])[group].result(timeout=30)
        admin.delete_topics([topic])[topic].result(timeout=30)


def test_lag_of_the_streams_group_lists_the_pipeline_topics(
    local_stack: LocalStack, settings: Settings, run_cli: CliRunner
) -> None:
    result = run_cli("lag", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["group"] == settings.streams.app_id
    topics = {partition["topic"] for partition in document["partitions"]}
    assert settings.topics.cdc_topic("public", "documents") in topics
    assert all(partition["lag"] >= 0 for partition in document["partitions"])


def _connector_state(run_cli: CliRunner) -> str:
    result = run_cli("connector", "status", "--json")
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["state"])


def _wait_for_state(run_cli: CliRunner, wanted: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while (state := _connector_state(run_cli)) != wanted:
        assert time.monotonic() < deadline, f"the connector stayed {state}, not {wanted}"
        time.sleep(0.5)


def test_connector_pause_and_resume_from_the_cli(local_stack: LocalStack, run_cli: CliRunner) -> None:
    _wait_for_state(run_cli, "RUNNING")
    try:
        paused = run_cli("connector", "pause", "--json")
        assert paused.returncode == 0, paused.stderr
        assert json.loads(paused.stdout)["requested"] == "pause"
        _wait_for_state(run_cli, "PAUSED")
    finally:
        resumed = run_cli("connector", "resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["requested"] == "resume"
    _wait_for_state(run_cli, "RUNNING")


def test_heartbeats_move_the_slot_on_while_the_source_tables_are_idle(
    local_stack: LocalStack, settings: Settings
) -> None:
    slot = connector_spec(settings.pipelines).slot_name
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        started = connection.execute("SELECT pg_current_wal_lsn(), now()").fetchone()
        assert started is not None
        wal_then, time_then = started
        deadline = time.monotonic() + 3 * HEARTBEAT_INTERVAL_MS / 1000
        while True:
            row = connection.execute(
                "SELECT (SELECT beat_at FROM tidewire_heartbeat WHERE id = 1), "
                "(SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots WHERE slot_name = %s)",
                (str(wal_then), slot),
            ).fetchone()
            assert row is not None
            beat_at, slot_moved_on = row
            if beat_at is not None and beat_at > time_then and slot_moved_on:
                break
            assert time.monotonic() < deadline, f"no heartbeat moved slot {slot} on (last beat {beat_at})"
            time.sleep(1)

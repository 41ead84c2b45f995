"""The shared stack: Kafka works, Debezium carries a row to Kafka, `up` twice is harmless, `status --json`."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from alembic.script import ScriptDirectory
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.integration.conftest import CliRunner
from tidewire.database import alembic_config
from tidewire.runtime.stack import LocalStack
from tidewire.runtime.state import StatePaths
from tidewire.settings import Settings


def _consume_until(consumer: Consumer, predicate, timeout_s: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            assert message.error().code() == KafkaError.UNKNOWN_TOPIC_OR_PART, message.error()
            continue
        if predicate(message):
            return message
    raise AssertionError(f"no matching message within {timeout_s}s")


def _consumer(settings: Settings, topic: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap,
            "group.id": f"test-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    return consumer


def test_a_message_produced_to_kafka_is_consumed(local_stack: LocalStack, settings: Settings) -> None:
    topic = f"test.roundtrip.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap})
    producer.produce(topic, key=b"doc-1", value=b"hello tidewire")
    assert producer.flush(30) == 0
    consumer = _consumer(settings, topic)
    try:
        message = _consume_until(consumer, lambda m: m.key() == b"doc-1")
    finally:
        consumer.close()
    assert message.value() == b"hello tidewire"
    assert admin.list_topics(topic, timeout=10).topics[topic].partitions.keys() == {0, 1, 2}


def _is_about(message: Message, document_id: str) -> bool:
    # Truncate events carry no key (the topic may hold one from an earlier test); skip them.
    key = message.key()
    return key is not None and json.loads(key) == {"id": document_id}


def test_a_row_written_to_documents_arrives_as_a_debezium_change_event(
    local_stack: LocalStack, settings: Settings
) -> None:
    document_id = f"test-{uuid.uuid4().hex}"
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        connection.execute(
            "INSERT INTO documents (id, tenant_id, title, body, metadata) VALUES (%s, 'acme', 'T', 'B', '{\"k\": 1}')",
            [document_id],
        )
        connection.execute("UPDATE documents SET body = 'B2' WHERE id = %s", [document_id])
    topic = settings.topics.cdc_topic("public", "documents")
    consumer = _consumer(settings, topic)
    try:
        created = _consume_until(consumer, lambda m: _is_about(m, document_id))
        updated = _consume_until(consumer, lambda m: _is_about(m, document_id))
    finally:
        consumer.close()
    created_event = json.loads(created.value())
    assert created_event["op"] == "c"
    assert created_event["after"]["tenant_id"] == "acme"
    assert created_event["after"]["body"] == "B"
    assert json.loads(created_event["after"]["metadata"]) == {"k": 1}
    assert created_event["source"]["table"] == "documents"
    updated_event = json.loads(updated.value())
    assert updated_event["op"] == "u"
    assert updated_event["after"]["body"] == "B2"
    # Key-based partitioning keeps one document's changes in one partition, in order.
    assert created.partition() == updated.partition()
    assert updated.offset() > created.offset()


def test_up_twice_is_harmless(local_stack: LocalStack, run_cli: CliRunner) -> None:
    pids_before = {name: local_stack.registry.get(name).pid for name in ("kafka", "connect")}  # type: ignore[union-attr]
    postgres_pid_before = local_stack.postgres.status().pid
    result = run_cli("up", "--detach")
    assert result.returncode == 0, result.stderr
    for name in ("postgres", "kafka", "connect", "api"):
        assert f"{name}: already running" in result.stderr
    assert {name: local_stack.registry.get(name).pid for name in ("kafka", "connect")} == pids_before  # type: ignore[union-attr]
    assert local_stack.postgres.status().pid == postgres_pid_before


def test_up_waits_for_a_running_api_that_does_not_answer(local_stack: LocalStack) -> None:
    """An API that runs but does not answer (here: stopped with SIGSTOP) is waited for, not counted as
    running: `up` returns only once it answers again."""
    api = local_stack.registry.get("api")
    assert api is not None
    resumed_at: list[float] = []

    def resume_later() -> None:
        time.sleep(10)
        resumed_at.append(time.monotonic())
        os.kill(api.pid, signal.SIGCONT)

    os.kill(api.pid, signal.SIGSTOP)
    resumer = threading.Thread(target=resume_later)
    resumer.start()
    try:
        report = local_stack.up()
        returned_at = time.monotonic()
    finally:
        resumer.join()
    assert "api" in report.already_running
    assert resumed_at and returned_at >= resumed_at[0]
    local_stack.api.probe()  # answers


def test_status_json_has_the_documented_keys(
    local_stack: LocalStack, run_cli: CliRunner, settings: Settings
) -> None:
    result = run_cli("status", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert {"postgres_dsn", "kafka_bootstrap", "connect_url", "api_url", "services"} <= document.keys()
    services = document["services"]
    assert {name: services[name] for name in ("postgres", "kafka", "connect", "api")} == {
        "postgres": "running",
        "kafka": "running",
        "connect": "running",
        "api": "running",
    }
    workers = {name: state for name, state in services.items() if name.startswith("worker-")}
    assert workers and set(workers.values()) == {"running"}, services
    assert document["kafka_bootstrap"] == settings.kafka.bootstrap
    assert document["connect_url"] == settings.connect.url
    for log_file in document["logs"].values():
        assert log_file.startswith(document["state_dir"])


def test_connector_status_reports_running(local_stack: LocalStack, run_cli: CliRunner) -> None:
    result = run_cli("connector", "status", "--json")
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout)
    assert state["state"] == "RUNNING"
    assert [task["state"] for task in state["tasks"]] == ["RUNNING"]
    slot = state["slot"]
    assert slot["name"] == "tidewire_documents" and slot["exists"] is True and slot["problem"] is None
    assert slot["active"] is True and slot["wal_status"] in ("reserved", "extended")
    assert slot["retained_bytes"] >= 0
    text = run_cli("connector", "status")
    assert text.returncode == 0, text.stderr
    assert "slot tidewire_documents: active, WAL " in text.stdout and "!" not in text.stdout


def test_migrations_are_at_head(local_stack: LocalStack, settings: Settings, run_cli: CliRunner) -> None:
    result = run_cli("db", "current", "--json")
    assert result.returncode == 0, result.stderr
    head = ScriptDirectory.from_config(alembic_config(settings.postgres)).get_current_head()
    assert json.loads(result.stdout)["revision"] == head


def test_only_the_owner_may_reach_the_password_less_postgres_socket(
    local_stack: LocalStack, settings: Settings
) -> None:
    socket_dir = StatePaths(settings.state_dir).postgres_socket_dir
    socket_file = socket_dir / f".s.PGSQL.{settings.postgres.port}"
    assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(socket_file.stat().st_mode) == 0o700


def _thread_niceness(pid: int) -> dict[int, int]:
    niceness = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        line = (task / "stat").read_text()
        # After "pid (comm) " come the fields from the 3rd on; the nice value is the 19th.
        niceness[int(task.name)] = int(line[line.rindex(")") + 2 :].split()[16])
    return niceness


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="nice values are per thread on Linux only")
def test_the_apis_model_threads_run_below_its_event_loop(local_stack: LocalStack, settings: Settings) -> None:
    """The stack's API loads and calls the query-embedding model on a thread with a higher nice value than
    its event loop's (`api.inference_niceness`), and ONNX Runtime's thread pool inherits it."""
    api = local_stack.registry.get("api")
    assert api is not None
    niceness = _thread_niceness(api.pid)
    event_loop = niceness[api.pid]
    wanted = max(event_loop, settings.api.inference_niceness)
    assert wanted > event_loop
    below = [thread for thread, value in niceness.items() if value == wanted]
    assert len(below) >= 2, niceness  # the inference thread and ONNX Runtime's pool thread at least

"""Poison events: a malformed CDC event and invalid IngestDocuments land in the DLQ with reasons,
and the partition keeps flowing."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg

from models.chunking import TextChunker
from streams.dead_letter_store import read_dead_letters
from streams.webhook_signing import verify
from tests.integration.pipeline.conftest import (
    TopicTail,
    WorkerGroup,
    index_state,
    wait_for,
    wait_until_indexed,
)
from tidewire.events import (
    DeadLetter,
    FailureStage,
    IngestDocument,
    IngestOperation,
    Notification,
    NotificationType,
    make_event_codec,
)
from tidewire.runtime.stack import LocalStack
from tidewire.settings import Settings

SECRET = "itest-redelivery-secret"


def dead_letters_for(
    settings: Settings, tail: TopicTail, predicate: Callable[[DeadLetter], bool]
) -> list[DeadLetter]:
    codec = make_event_codec(settings.kafka)
    letters = [codec.decode(m.value(), DeadLetter, topic=tail.topic) for m in tail.messages]
    return [letter for letter in letters if predicate(letter)]


def test_a_malformed_cdc_event_is_dead_lettered_and_its_partition_keeps_flowing(
    worker_group: WorkerGroup,
    settings: Settings,
    db: psycopg.Connection[Any],
    chunker: TextChunker,
    new_id: Callable[[str], str],
    producer: Any,
    tail: Callable[[str], TopicTail],
) -> None:
    document_id = new_id("after-poison")
    key = json.dumps({"id": document_id}, separators=(",", ":")).encode()
    dlq = tail(settings.topics.dead_letter)
    cdc_topic = settings.topics.cdc_topic("public", "documents")
    delivered: list[Any] = []
    # Same key as the row inserted next: the poison sits on the same partition, just before it.
    producer.produce(
        cdc_topic,
        key=key,
        value=b'{"op": "c", "after": {"id": 1',
        on_delivery=lambda _e, m: delivered.append(m),
    )
    producer.flush(10)
    [poison] = delivered
    db.execute(
        "INSERT INTO public.documents (id, title, body) VALUES (%s, 'after', 'the poison')", (document_id,)
    )

    wait_until_indexed(db, chunker, worker_group.pipeline, [document_id])
    mine = lambda letter: (  # noqa: E731
        letter.pipeline == worker_group.pipeline
        and (letter.topic, letter.partition, letter.offset)
        == (cdc_topic, poison.partition(), poison.offset())
    )
    dlq.collect(lambda _m: bool(dead_letters_for(settings, dlq, mine)), timeout_s=60, what="the dead letter")
    [letter] = dead_letters_for(settings, dlq, mine)
    assert letter.stage is FailureStage.DECODE
    assert letter.error_code == "cdc_not_json"
    assert "not JSON" in letter.reason
    assert letter.value == b'{"op": "c", "after": {"id": 1'
    assert letter.key == key
    assert index_state(db, worker_group.pipeline, document_id).chunks == ["after\n\nthe poison"]


def test_invalid_ingest_documents_are_dead_lettered_and_valid_ones_are_written(
    worker_group: WorkerGroup,
    settings: Settings,
    db: psycopg.Connection[Any],
    chunker: TextChunker,
    new_id: Callable[[str], str],
    producer: Any,
    tail: Callable[[str], TopicTail],
) -> None:
    codec = make_event_codec(settings.kafka)
    topic = settings.topics.ingest
    dlq = tail(settings.topics.dead_letter)
    unknown_pipeline = IngestDocument(
        document_id=new_id("ingest-bad"), event_time=datetime.now(UTC), title="x", pipeline="no-such-pipeline"
    )
    good_id = new_id("ingest-good")
    good = IngestDocument(
        document_id=good_id, event_time=datetime.now(UTC), title="Ingested", body="via Kafka"
    )
    producer.produce(
        topic, key=unknown_pipeline.message_key(), value=codec.encode(unknown_pipeline, topic=topic)
    )
    producer.produce(topic, key=good_id.encode(), value=b"\xc3\x01 definitely not avro")
    producer.produce(topic, key=good.message_key(), value=codec.encode(good, topic=topic))
    producer.flush(10)

    wait_until_indexed(db, chunker, worker_group.pipeline, [good_id])
    assert index_state(db, worker_group.pipeline, good_id).chunks == ["Ingested\n\nvia Kafka"]

    expected_keys = {unknown_pipeline.message_key(), good_id.encode()}

    def mine(letter: DeadLetter) -> bool:
        return letter.topic == topic and letter.key in expected_keys

    # Every worker group still running in the session consumes the ingest topic too, so the same
    # message may be dead-lettered more than once: wait for one letter of each key, not for a count.
    dlq.collect(
        lambda _m: {letter.key for letter in dead_letters_for(settings, dlq, mine)} == expected_keys,
        timeout_s=60,
        what="the two ingest dead letters",
    )
    letters = dead_letters_for(settings, dlq, mine)
    by_key = {letter.key: letter for letter in letters}
    assert by_key[unknown_pipeline.message_key()].stage is FailureStage.VALIDATE
    assert "no-such-pipeline" in by_key[unknown_pipeline.message_key()].reason
    assert by_key[good_id.encode()].stage is FailureStage.DECODE


def test_an_ingested_document_the_table_refuses_is_dead_lettered_and_the_rest_written(
    worker_group: WorkerGroup,
    settings: Settings,
    db: psycopg.Connection[Any],
    chunker: TextChunker,
    new_id: Callable[[str], str],
    producer: Any,
    tail: Callable[[str], TopicTail],
) -> None:
    codec = make_event_codec(settings.kafka)
    topic = settings.topics.ingest
    dlq = tail(settings.topics.dead_letter)
    refused = IngestDocument(
        document_id=new_id("ingest-refused"),
        event_time=datetime.now(UTC),
        title="refused by a check",
        body="x",
    )
    accepted = IngestDocument(
        document_id=new_id("ingest-accepted"),
        event_time=datetime.now(UTC),
        title="Accepted",
        body="beside it",
    )
    # A constraint of the user's own on the source table, which no IngestDocument check knows about.
    db.execute(
        "ALTER TABLE public.documents ADD CONSTRAINT itest_refused_title "
        "CHECK (title IS DISTINCT FROM 'refused by a check') NOT VALID"
    )
    try:
        for event in (refused, accepted):
            producer.produce(topic, key=event.message_key(), value=codec.encode(event, topic=topic))
        producer.flush(10)
        wait_until_indexed(db, chunker, worker_group.pipeline, [accepted.document_id])

        def mine(letter: DeadLetter) -> bool:
            return letter.topic == topic and letter.key == refused.message_key()

        dlq.collect(lambda _m: bool(dead_letters_for(settings, dlq, mine)), timeout_s=60, what="the refusal")
    finally:
        db.execute("ALTER TABLE public.documents DROP CONSTRAINT IF EXISTS itest_refused_title")
    letter = dead_letters_for(settings, dlq, mine)[0]
    assert (letter.stage, letter.error_code) == (FailureStage.WRITE, "ingest_refused_by_database")
    assert "itest_refused_title" in letter.reason
    assert (
        db.execute("SELECT 1 FROM public.documents WHERE id = %s", (refused.document_id,)).fetchone() is None
    )
    assert all(worker.popen.poll() is None for worker in worker_group.workers)


def test_ingest_is_latest_wins_and_deletes(
    worker_group: WorkerGroup,
    settings: Settings,
    db: psycopg.Connection[Any],
    chunker: TextChunker,
    new_id: Callable[[str], str],
    producer: Any,
) -> None:
    codec = make_event_codec(settings.kafka)
    topic = settings.topics.ingest
    document_id = new_id("ingest-order")
    newer = IngestDocument(document_id=document_id, event_time=datetime(2030, 1, 2, tzinfo=UTC), body="newer")
    older = IngestDocument(document_id=document_id, event_time=datetime(2030, 1, 1, tzinfo=UTC), body="older")
    for event in (newer, older):
        producer.produce(topic, key=event.message_key(), value=codec.encode(event, topic=topic))
        producer.flush(10)
    wait_until_indexed(db, chunker, worker_group.pipeline, [document_id])
    wait_for(
        lambda: (
            db.execute("SELECT body FROM public.documents WHERE id = %s", (document_id,)).fetchone()
            == ("newer",)
        ),
        timeout_s=30,
        what="the newer body",
    )

    delete = IngestDocument(
        document_id=document_id, event_time=datetime(2030, 1, 3, tzinfo=UTC), operation=IngestOperation.DELETE
    )
    producer.produce(topic, key=delete.message_key(), value=codec.encode(delete, topic=topic))
    producer.flush(10)
    wait_for(
        lambda: index_state(db, worker_group.pipeline, document_id).deleted is True,
        timeout_s=60,
        what="the ingested delete to reach the index",
    )
    assert db.execute("SELECT 1 FROM public.documents WHERE id = %s", (document_id,)).fetchone() is None


def test_an_ingested_upsert_older_than_an_ingested_delete_stays_deleted(
    worker_group: WorkerGroup,
    settings: Settings,
    db: psycopg.Connection[Any],
    new_id: Callable[[str], str],
    producer: Any,
) -> None:
    codec = make_event_codec(settings.kafka)
    topic = settings.topics.ingest
    document_id, sentinel_id = new_id("ingest-deleted"), new_id("ingest-sentinel")
    partitions: list[int] = []

    def send(event: IngestDocument, partition: int | None = None) -> None:
        where = {} if partition is None else {"partition": partition}
        producer.produce(
            topic,
            key=event.message_key(),
            value=codec.encode(event, topic=topic),
            on_delivery=lambda _error, message: partitions.append(message.partition()),
            **where,
        )
        producer.flush(10)

    def day(number: int) -> datetime:
        return datetime(2030, 2, number, tzinfo=UTC)

    def stored() -> bool:
        return (
            db.execute("SELECT 1 FROM public.documents WHERE id = %s", (document_id,)).fetchone() is not None
        )

    send(IngestDocument(document_id=document_id, event_time=day(1), body="first"))
    wait_for(stored, timeout_s=60, what="the first upsert")
    send(IngestDocument(document_id=document_id, event_time=day(3), operation=IngestOperation.DELETE))
    wait_for(lambda: not stored(), timeout_s=60, what="the delete")
    # Published before the delete, consumed after it, in a batch of its own.
    send(IngestDocument(document_id=document_id, event_time=day(2), body="stale"))
    # Behind the stale upsert on its partition: once the sentinel is written, the stale one was handled.
    send(
        IngestDocument(document_id=sentinel_id, event_time=day(2), body="sentinel"), partition=partitions[-1]
    )
    wait_for(
        lambda: (
            db.execute("SELECT 1 FROM public.documents WHERE id = %s", (sentinel_id,)).fetchone() is not None
        ),
        timeout_s=60,
        what="the sentinel document",
    )
    assert not stored()
    deleted_at = db.execute(
        "SELECT deleted_at FROM public.tidewire_ingest_deletions WHERE pipeline = %s AND document_id = %s",
        (settings.pipelines[0].name, document_id),
    ).fetchone()
    assert deleted_at == (day(3),)

    send(IngestDocument(document_id=document_id, event_time=day(4), body="written again"))
    wait_for(
        lambda: (
            db.execute("SELECT body FROM public.documents WHERE id = %s", (document_id,)).fetchone()
            == ("written again",)
        ),
        timeout_s=60,
        what="the newer upsert",
    )


def test_dlq_list_shows_dead_letters(local_stack: LocalStack, run_cli: Any, settings: Settings) -> None:
    result = run_cli("dlq", "list", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert isinstance(listed, list)
    assert len(listed) == len(list(read_dead_letters(settings)))
    if listed:
        shown = run_cli("dlq", "show", listed[0]["id"], "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["id"] == listed[0]["id"]


def test_dlq_list_limit_keeps_the_most_recent_failures(
    run_cli: Any, settings: Settings, producer: Any
) -> None:
    codec = make_event_codec(settings.kafka)
    now = datetime.now(UTC)
    partitions = settings.kafka.default_partitions
    # The newest failure in the first partition read, an older one in the last: reading order is not age.
    for partition, failed_at, reason in (
        (0, now + timedelta(days=1), "the newest failure"),
        (partitions - 1, now - timedelta(days=1), "an older failure"),
    ):
        letter = DeadLetter(
            topic="itest-dlq-age",
            partition=0,
            offset=partition,
            key=b"age",
            value=b"x",
            stage=FailureStage.VALIDATE,
            error_code="itest",
            reason=reason,
            failed_at=failed_at,
        )
        value = codec.encode(letter, topic=settings.topics.dead_letter)
        producer.produce(settings.topics.dead_letter, key=letter.key, value=value, partition=partition)
    producer.flush(10)

    result = run_cli("dlq", "list", "--limit", "1", "--json")
    assert result.returncode == 0, result.stderr
    [latest] = json.loads(result.stdout)
    assert latest["reason"] == "the newest failure"
    listed = json.loads(run_cli("dlq", "list", "--json").stdout)
    ages = [datetime.fromisoformat(entry["failed_at"]) for entry in listed]
    assert ages == sorted(ages)


def test_dlq_replay_produces_the_original_message_to_its_original_topic(
    run_cli: Any, settings: Settings, producer: Any, tail: Callable[[str], TopicTail]
) -> None:
    from streams.topics import ensure_topics

    original_topic = f"itest-redrive-{uuid.uuid4().hex[:8]}"
    ensure_topics(settings, [original_topic])
    # The original, from a producer that hashes keys as Kafka's Java clients and Debezium do.
    originals = tail(original_topic)
    producer.produce(original_topic, key=b"redrive-key", value=b"the original bytes")
    producer.flush(10)
    [original] = originals.collect(lambda messages: len(messages) >= 1, timeout_s=30, what="the original")
    letter = DeadLetter(
        topic=original_topic,
        partition=original.partition(),
        offset=original.offset(),
        key=b"redrive-key",
        value=b"the original bytes",
        stage=FailureStage.VALIDATE,
        error_code="itest",
        reason="made by a test",
        failed_at=datetime.now(UTC),
    )
    codec = make_event_codec(settings.kafka)
    producer.produce(
        settings.topics.dead_letter, key=letter.key, value=codec.encode(letter, topic="tidewire.dlq")
    )
    producer.flush(10)
    target = tail(original_topic)

    listed = json.loads(run_cli("dlq", "list", "--json").stdout)
    [entry] = [item for item in listed if item["topic"] == original_topic]
    assert (entry["stage"], entry["reason"]) == ("validate", "made by a test")
    result = run_cli("dlq", "replay", entry["id"], "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"redriven": 1, "redelivered": 0, "ids": [entry["id"]]}
    [message] = target.collect(
        lambda messages: len(messages) >= 1, timeout_s=30, what="the re-driven message"
    )
    assert (message.key(), message.value()) == (b"redrive-key", b"the original bytes")
    # Back on its key's partition, among the other messages of its document.
    assert message.partition() == original.partition()

    unknown = run_cli("dlq", "show", "99:99999999")
    assert unknown.returncode != 0 and unknown.stderr.count("\n") == 1 and "no dead letter" in unknown.stderr


def test_dlq_replay_of_a_failed_webhook_delivery_posts_it_to_that_endpoint_only(
    run_cli: Any, settings: Settings, producer: Any, worker_group_factory: Callable[..., WorkerGroup]
) -> None:
    received: list[tuple[bytes, dict[str, str]]] = []

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, dict(self.headers)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        codec = make_event_codec(settings.kafka)
        notification = Notification(
            event_type=NotificationType.INDEXED,
            tenant_id="acme",
            document_id=f"redeliver-{uuid.uuid4().hex[:8]}",
            pipeline="documents",
            chunks=1,
            model="m",
            source_committed_at=datetime.now(UTC),
            indexed_at=datetime.now(UTC),
            freshness_ms=5,
        )
        topic = settings.topics.notifications
        letter = DeadLetter(
            topic=topic,
            partition=0,
            offset=3,
            key=notification.message_key(),
            value=codec.encode(notification, topic=topic),
            stage=FailureStage.DELIVER,
            error_code="webhook_delivery_failed",
            reason=f"POST {url} answered 503",
            failed_at=datetime.now(UTC),
            pipeline="documents",
            destination=url,
        )
        producer.produce(
            settings.topics.dead_letter, key=letter.key, value=codec.encode(letter, topic="tidewire.dlq")
        )
        producer.flush(10)
        # The endpoint's secret comes from the settings, as the workers' does.
        group = worker_group_factory(f'[[streams.webhooks]]\nurl = "{url}"\nsecret = "{SECRET}"\n')
        group.write_config()
        listed = json.loads(run_cli("dlq", "list", "--json", env=group.environment()).stdout)
        [entry] = [item for item in listed if item["reason"] == letter.reason]
        result = run_cli("dlq", "replay", entry["id"], "--json", env=group.environment())
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"redriven": 0, "redelivered": 1, "ids": [entry["id"]]}
    finally:
        server.shutdown()
        server.server_close()
    [(body, headers)] = received
    assert json.loads(body)["document_id"] == notification.document_id
    assert verify(SECRET, int(headers["X-Tidewire-Timestamp"]), body, headers["X-Tidewire-Signature"])

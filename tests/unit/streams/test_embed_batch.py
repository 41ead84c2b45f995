"""The batch processor with fakes for the store, the model and Kafka: poison, skipping, retries."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from streams.dead_letters import DeadLetterHandler
from streams.embed_batch import EmbedBatchProcessor
from streams.errors import WorkerCrashError
from streams.messages import MessageRef, RawMessage
from streams.metrics import StreamMetrics
from streams.notifications import NotificationPublisher
from streams.retry import RetryPolicy
from tidewire.errors import InvalidVectorWriteError, VectorStoreUnavailableError
from tidewire.events import DeadLetter, FailureStage, Notification, SingleObjectCodec, default_catalog
from tidewire.pipeline_spec import ChunkingSpec, PipelineSpec
from tidewire.vector_store import (
    DocumentDelete,
    DocumentUpsert,
    SourcePosition,
    StoredVersion,
    WriteOutcome,
)

TOPIC = "cdc.public.documents"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FakeStore:
    """Keeps the stored chunk count for a write of an unchanged text, as the real store does; for a
    document in ``emptied``, none (a truncate elsewhere removed them), the first time only."""

    def __init__(
        self,
        stored: dict[tuple[str, str], StoredVersion] | None = None,
        failures: int = 0,
        emptied: set[tuple[str, str]] | None = None,
    ) -> None:
        self.stored = stored or {}
        self.failures = failures
        self.emptied = emptied or set()
        self.batches: list[list[DocumentUpsert | DocumentDelete]] = []

    def _chunk_count(self, write: DocumentUpsert | DocumentDelete) -> int:
        if isinstance(write, DocumentDelete):
            return 0
        if write.chunks is not None:
            return len(write.chunks)
        key = (write.pipeline, write.document_id)
        kept = self.stored.get(key)
        if key in self.emptied or kept is None or kept.deleted:
            self.emptied.discard(key)
            return 0
        return kept.chunk_count

    async def stored_versions(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], StoredVersion]:
        return {key: self.stored[key] for key in keys if key in self.stored}

    async def write_batch(self, writes: Sequence[DocumentUpsert | DocumentDelete]) -> list[WriteOutcome]:
        if any(write.document_id == "refused" for write in writes):
            raise InvalidVectorWriteError("document 'refused': embedding has non-finite values")
        if self.failures:
            self.failures -= 1
            raise VectorStoreUnavailableError("postgres is away", retry_after_s=0)
        self.batches.append(list(writes))
        return [
            WriteOutcome(
                pipeline=write.pipeline,
                tenant_id=write.tenant_id,
                document_id=write.document_id,
                applied=True,
                deleted=isinstance(write, DocumentDelete),
                chunk_count=self._chunk_count(write),
                position=write.position,
                indexed_at=NOW,
            )
            for write in writes
        ]

    async def truncate(self, pipeline: str, position: SourcePosition) -> int:
        return 0


class FakeEngine:
    model_id = "fake-model"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def chunk(self, text: str, chunking: ChunkingSpec) -> list[str]:
        return [part for part in text.split("|") if part] if text else []

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.ones((len(texts), 384), dtype=np.float32) / np.sqrt(384)


class FakePublisher:
    def __init__(self) -> None:
        self.records: dict[str, list[tuple[bytes | None, bytes]]] = {}

    async def publish(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        self.records.setdefault(topic, []).extend(records)


CODEC = SingleObjectCodec(default_catalog())


def processor(store: FakeStore, engine: FakeEngine, publisher: FakePublisher) -> EmbedBatchProcessor:
    metrics = StreamMetrics.create()
    return EmbedBatchProcessor(
        pipelines_by_topic={TOPIC: PipelineSpec()},
        store=store,  # type: ignore[arg-type]
        pool=None,  # type: ignore[arg-type]
        engine=engine,
        retry=RetryPolicy(attempts=3, initial_backoff_s=0.001, max_backoff_s=0.001),
        dead_letters=DeadLetterHandler(
            publisher=publisher, codec=CODEC, topic="tidewire.dlq", agent="embed", metrics=metrics
        ),
        notifier=NotificationPublisher(
            publisher=publisher, codec=CODEC, topic="tidewire.notifications", metrics=metrics
        ),
        metrics=metrics,
    )


def cdc(offset: int, op: str, document_id: str, body: str | None = "b", lsn: int = 100) -> RawMessage:
    row = {"id": document_id, "tenant_id": "acme", "title": "t", "body": body, "metadata": "{}"}
    value: dict[str, Any] = {
        "before": {"id": document_id} if op == "d" else None,
        "after": None if op == "d" else row,
        "source": {"lsn": lsn + offset, "ts_ms": 1_767_225_600_000},
        "op": op,
    }
    return RawMessage(
        MessageRef(TOPIC, 0, offset), json.dumps({"id": document_id}).encode(), json.dumps(value).encode()
    )


def test_a_batch_is_embedded_in_one_model_call_and_written_once() -> None:
    store, engine, publisher = FakeStore(), FakeEngine(), FakePublisher()
    messages = [cdc(0, "c", "a", "one|two"), cdc(1, "c", "b", "three"), cdc(2, "d", "c")]
    result = asyncio.run(processor(store, engine, publisher).process(messages))
    assert len(engine.calls) == 1 and len(engine.calls[0]) == 3
    assert len(store.batches) == 1 and len(store.batches[0]) == 3
    notifications = [
        CODEC.decode(v, Notification, topic="n") for _, v in publisher.records["tidewire.notifications"]
    ]
    assert sorted((n.document_id, n.event_type.event_name, n.chunks) for n in notifications) == [
        ("a", "document.indexed", 2),
        ("b", "document.indexed", 1),
    ]  # "c" was never indexed: its delete is written (a tombstone) but has no tenant to notify
    assert result.embedded_chunks == 3


def test_poison_goes_to_the_dead_letter_topic_and_the_rest_is_written() -> None:
    store, engine, publisher = FakeStore(), FakeEngine(), FakePublisher()
    bad = RawMessage(MessageRef(TOPIC, 0, 7), b"k", b"{not json")
    asyncio.run(processor(store, engine, publisher).process([cdc(0, "c", "a"), bad, cdc(2, "c", "b")]))
    letters = [CODEC.decode(v, DeadLetter, topic="d") for _, v in publisher.records["tidewire.dlq"]]
    assert [(d.offset, d.stage, d.error_code) for d in letters] == [(7, FailureStage.DECODE, "cdc_not_json")]
    assert letters[0].value == b"{not json"
    assert {w.document_id for w in store.batches[0]} == {"a", "b"}


def test_unchanged_text_is_not_embedded_but_its_metadata_is_written() -> None:
    from streams.document_text import text_hash

    stored = {
        ("documents", "a"): StoredVersion(text_hash=text_hash("t\n\nb"), lsn=1, deleted=False, chunk_count=1)
    }
    store, engine, publisher = FakeStore(stored), FakeEngine(), FakePublisher()
    result = asyncio.run(processor(store, engine, publisher).process([cdc(0, "u", "a", "b")]))
    assert engine.calls == []
    [write] = store.batches[0]
    assert isinstance(write, DocumentUpsert) and write.chunks is None
    assert result.unchanged_documents == 1


def test_an_unchanged_text_whose_vectors_a_truncate_removed_meanwhile_is_embedded_and_written_again() -> None:
    from streams.document_text import text_hash

    stored = {
        ("documents", "a"): StoredVersion(text_hash=text_hash("t\n\nb"), lsn=1, deleted=False, chunk_count=1)
    }
    store, engine, publisher = FakeStore(stored, emptied={("documents", "a")}), FakeEngine(), FakePublisher()
    result = asyncio.run(processor(store, engine, publisher).process([cdc(0, "u", "a", "b")]))
    [first], [again] = store.batches
    assert isinstance(first, DocumentUpsert) and first.chunks is None
    assert isinstance(again, DocumentUpsert) and [chunk.text for chunk in again.chunks or []] == ["t\n\nb"]
    assert again.position == first.position
    assert engine.calls == [["t\n\nb"]]
    assert [(n.event_type.event_name, n.chunks) for n in result.notifications] == [("document.indexed", 1)]


def test_an_empty_text_is_written_with_no_chunks() -> None:
    store, engine, publisher = FakeStore(), FakeEngine(), FakePublisher()
    row = cdc(0, "c", "a", None)
    value = json.loads(row.value or b"")
    value["after"]["title"] = None
    empty = RawMessage(row.ref, row.key, json.dumps(value).encode())
    asyncio.run(processor(store, engine, publisher).process([empty]))
    [write] = store.batches[0]
    assert isinstance(write, DocumentUpsert) and write.chunks == []


def test_a_transient_store_failure_is_retried() -> None:
    store, engine, publisher = FakeStore(failures=2), FakeEngine(), FakePublisher()
    asyncio.run(processor(store, engine, publisher).process([cdc(0, "c", "a")]))
    assert len(store.batches) == 1


def test_a_persistent_store_failure_crashes_and_publishes_nothing() -> None:
    store, engine, publisher = FakeStore(failures=99), FakeEngine(), FakePublisher()
    with pytest.raises(WorkerCrashError, match="failed 3 times"):
        asyncio.run(processor(store, engine, publisher).process([cdc(0, "c", "a")]))
    assert publisher.records == {}


def test_a_delete_after_its_insert_in_one_batch_keeps_the_tenant_and_an_unknown_one_notifies_nobody() -> None:
    store, engine, publisher = FakeStore(), FakeEngine(), FakePublisher()
    unknown = cdc(2, "d", "never-indexed")
    value = json.loads(unknown.value or b"")
    value["before"] = {"id": "never-indexed"}  # REPLICA IDENTITY DEFAULT: only the key
    asyncio.run(
        processor(store, engine, publisher).process(
            [
                cdc(0, "c", "a"),
                cdc(1, "d", "a"),
                RawMessage(unknown.ref, unknown.key, json.dumps(value).encode()),
            ]
        )
    )
    notifications = [
        CODEC.decode(v, Notification, topic="n") for _, v in publisher.records["tidewire.notifications"]
    ]
    assert [(n.document_id, n.tenant_id, n.event_type.event_name) for n in notifications] == [
        ("a", "acme", "document.deleted")
    ]


def test_a_write_the_store_refuses_is_isolated_and_dead_lettered_and_the_rest_is_written() -> None:
    store, engine, publisher = FakeStore(), FakeEngine(), FakePublisher()
    messages = [cdc(index, "c", name) for index, name in enumerate(["a", "b", "refused", "c", "d"])]
    result = asyncio.run(processor(store, engine, publisher).process(messages))
    written = {write.document_id for batch in store.batches for write in batch}
    assert written == {"a", "b", "c", "d"}
    letters = [CODEC.decode(v, DeadLetter, topic="d") for _, v in publisher.records["tidewire.dlq"]]
    assert [(letter.offset, letter.stage) for letter in letters] == [(2, FailureStage.WRITE)]
    assert "non-finite" in letters[0].reason
    assert {outcome.document_id for outcome in result.outcomes} == {"a", "b", "c", "d"}


def _stored_text(body: str) -> dict[tuple[str, str], StoredVersion]:
    from streams.document_text import text_hash

    return {
        ("documents", "a"): StoredVersion(
            text_hash=text_hash(f"t\n\n{body}"), lsn=1, deleted=False, chunk_count=1
        )
    }


@pytest.mark.parametrize(("previous_body", "embedded_again"), [("changed", True), ("b", False)])
def test_a_batch_prepared_while_the_previous_one_commits_is_reconciled_with_what_it_wrote(
    previous_body: str, embedded_again: bool
) -> None:
    store, engine, publisher = FakeStore(_stored_text("b")), FakeEngine(), FakePublisher()
    batches = processor(store, engine, publisher)

    async def overlapped() -> None:
        # Batch 2 is prepared against the stored text "b" while batch 1 (text `previous_body`) commits.
        batch_1 = await batches.prepare([cdc(0, "u", "a", previous_body)])
        batch_2 = await batches.prepare([cdc(1, "u", "a", "b")])
        previous = await batches.commit(batch_1)
        await batches.reconcile(batch_2, previous)
        await batches.commit(batch_2)

    asyncio.run(overlapped())
    [write] = store.batches[1]
    assert isinstance(write, DocumentUpsert)
    if embedded_again:  # "b" was no longer what the index held: it is embedded after all
        assert write.chunks is not None and [chunk.text for chunk in write.chunks] == ["t\n\nb"]
        assert engine.calls[-1] == ["t\n\nb"]
    else:  # batch 1 left the text as it was: still nothing to embed
        assert write.chunks is None
        assert all("t\n\nb" not in call for call in engine.calls)

"""One micro-batch of CDC messages, from bytes to committed vectors (no Faust in here).

:class:`EmbedBatchProcessor` is what the ``embed`` agent runs for each batch, in two steps:
:meth:`~EmbedBatchProcessor.prepare` (decode, plan, embed) and :meth:`~EmbedBatchProcessor.commit`
(write, dead letters, notifications), which returns only when everything the batch asks for is
durable, so the agent may then acknowledge the offsets. The agent prepares a batch while the one
before it commits (:mod:`streams.batch_loop`); :meth:`~EmbedBatchProcessor.reconcile` corrects what
the prepared batch decided from versions that commit then changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from psycopg_pool import AsyncConnectionPool

from streams.batch_planning import BatchPlan, is_stale, latest_changes, needs_embedding
from streams.dead_letters import DeadLetterHandler, Rejection, rejection
from streams.debezium_decoding import ChangeEvent, RowUpsert, decode_change
from streams.document_text import build_text, carries_placeholder, metadata_of, tenant_of, text_hash
from streams.embedding import Embedding
from streams.errors import PoisonEventError
from streams.messages import MessageRef, RawMessage
from streams.metrics import StreamMetrics
from streams.notifications import NotificationPublisher, notifications_for
from streams.retry import RetryPolicy, retrying
from tidewire.errors import InvalidVectorWriteError
from tidewire.events import FailureStage, Notification
from tidewire.pipeline_spec import PipelineSpec
from tidewire.source_rows import fetch_source_rows
from tidewire.vector_store import (
    ChunkVector,
    DocumentDelete,
    DocumentUpsert,
    StoredVersion,
    VectorStore,
    WriteOutcome,
)

logger = logging.getLogger(__name__)

AGENT = "embed"


@dataclass
class BatchResult:
    """What a committed batch did (for metrics, logs and tests)."""

    outcomes: list[WriteOutcome] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    embedded_by_pipeline: dict[str, int] = field(default_factory=dict)
    unchanged_by_pipeline: dict[str, int] = field(default_factory=dict)
    truncated_documents: int = 0
    # (pipeline, document_id) -> hash of the text the batch indexed, None for a delete; applied writes only.
    indexed_text_hashes: dict[tuple[str, str], str | None] = field(default_factory=dict)

    @property
    def embedded_chunks(self) -> int:
        return sum(self.embedded_by_pipeline.values())

    @property
    def unchanged_documents(self) -> int:
        return sum(self.unchanged_by_pipeline.values())


@dataclass
class _Document:
    """An upsert ready to write: its text, chunks and their embeddings (None: text unchanged) and what
    goes with them."""

    change: RowUpsert
    tenant_id: str
    metadata: dict[str, Any]
    text: str
    text_hash: str
    chunk_texts: list[str] | None
    embeddings: np.ndarray | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.change.pipeline, self.change.document_id)


@dataclass
class PreparedBatch:
    """A batch decoded, planned and embedded; nothing of it is written yet."""

    messages: Sequence[RawMessage]
    messages_by_ref: dict[MessageRef, RawMessage]
    began: float
    plan: BatchPlan
    tenant_hints: dict[tuple[str, str], str]
    documents: list[_Document]
    rejections: list[Rejection]

    @property
    def truncates(self) -> bool:
        """Whether the batch truncates a pipeline (the next batch must then be prepared after it commits)."""
        return bool(self.plan.truncates)


class EmbedBatchProcessor:
    """Decode, plan, embed and write one batch; dead-letter its poison events; notify.

    1. Decode every message; a poison event becomes a rejection, the rest go on.
    2. Plan: the latest change per document, the latest truncate per pipeline.
    3. Index, in two parts, each retried with backoff:
       - :meth:`prepare`: read stored versions (and the current rows of updates that carried the
         unchanged-TOAST placeholder), chunk the changed texts, embed every chunk of the batch in
         one request to the shared batcher;
       - :meth:`commit`: write everything with one ``write_batch``, then apply truncates. A write
         the store refuses as invalid is isolated by halving and dead-lettered (stage WRITE).
    4. Produce the dead letters (retried).
    5. Produce the notifications of the writes that changed the index (retried).

    A failure that outlives its retries raises :class:`~streams.errors.WorkerCrashError`; the
    caller must then exit without acknowledging the batch.
    """

    def __init__(
        self,
        *,
        pipelines_by_topic: dict[str, PipelineSpec],
        store: VectorStore,
        pool: AsyncConnectionPool,
        engine: Embedding,
        retry: RetryPolicy,
        dead_letters: DeadLetterHandler,
        notifier: NotificationPublisher,
        metrics: StreamMetrics,
    ) -> None:
        self._pipelines_by_topic = pipelines_by_topic
        self._pipelines = {spec.name: spec for spec in pipelines_by_topic.values()}
        self._store = store
        self._pool = pool
        self._engine = engine
        self._retry = retry
        self._dead_letters = dead_letters
        self._notifier = notifier
        self._metrics = metrics

    async def process(self, messages: Sequence[RawMessage]) -> BatchResult:
        """Prepare and commit one batch (what the agent does, without overlapping batches)."""
        return await self.commit(await self.prepare(messages))

    async def prepare(self, messages: Sequence[RawMessage]) -> PreparedBatch:
        """Steps 1–2 and the embedding of step 3 (retried); nothing is written."""
        began = time.monotonic()
        rejections: list[Rejection] = []
        # 1. Decode
        changes = self._decode(messages, rejections)
        # 2. Plan
        plan = latest_changes(changes)
        messages_by_ref = {message.ref: message for message in messages}
        # 3. Embed
        documents = await retrying(
            lambda: self._embed_documents(plan.upserts, messages_by_ref, rejections),
            self._retry,
            what=f"embedding a batch of {len(messages)} messages",
            on_retry=lambda _attempt, _error: self._metrics.retries.labels(agent=AGENT).inc(),
        )
        return PreparedBatch(
            messages, messages_by_ref, began, plan, self._tenant_hints(changes), documents, rejections
        )

    async def reconcile(self, prepared: PreparedBatch, previous: BatchResult) -> None:
        """Embed the documents ``prepared`` left unembedded because their text matched the stored
        version it read, when the batch before it (committed since) indexed another text or a delete."""
        outdated = [
            document
            for document in prepared.documents
            if document.chunk_texts is None
            and document.key in previous.indexed_text_hashes
            and previous.indexed_text_hashes[document.key] != document.text_hash
        ]
        if not outdated:
            return
        self._chunk(outdated)
        await retrying(
            lambda: self._embed_chunks(outdated),
            self._retry,
            what=f"embedding {len(outdated)} documents the previous batch changed",
        )

    async def commit(self, prepared: PreparedBatch) -> BatchResult:
        """Write the prepared batch (retried), then dead-letter its poison and notify (steps 3–5)."""
        result = BatchResult(rejections=list(prepared.rejections))
        await retrying(
            lambda: self._write(prepared, result),
            self._retry,
            what=f"writing a batch of {len(prepared.messages)} messages",
            on_retry=lambda _attempt, _error: self._metrics.retries.labels(agent=AGENT).inc(),
        )
        # 4. Dead letters
        await retrying(
            lambda: self._dead_letters.send(result.rejections),
            self._retry,
            what=f"dead-lettering {len(result.rejections)} messages",
        )
        # 5. Notifications
        result.notifications = notifications_for(result.outcomes, self._pipelines, self._engine.model_id)
        await retrying(
            lambda: self._notifier.publish(result.notifications),
            self._retry,
            what=f"publishing {len(result.notifications)} notifications",
        )
        self._record_metrics(prepared.messages, result, time.monotonic() - prepared.began)
        return result

    def _decode(self, messages: Sequence[RawMessage], rejections: list[Rejection]) -> list[ChangeEvent]:
        changes: list[ChangeEvent] = []
        for message in messages:
            spec = self._pipelines_by_topic.get(message.ref.topic)
            if spec is None:
                # Subscribed topics map to pipelines one to one; anything else is a wiring bug.
                raise AssertionError(f"no pipeline consumes {message.ref.topic}")
            try:
                change = decode_change(message, spec)
            except PoisonEventError as error:
                rejections.append(rejection(message, error, spec.name))
                continue
            if change is not None:
                changes.append(change)
        return changes

    async def _embed_documents(
        self,
        upserts: Sequence[RowUpsert],
        messages: dict[Any, RawMessage],
        rejections: list[Rejection],
    ) -> list[_Document]:
        """Read the stored versions (and current rows of TOASTed updates), build and chunk the texts
        that changed, and embed all their chunks in one request to the shared batcher."""
        stored, current_rows = await asyncio.gather(
            self._store.stored_versions([(u.pipeline, u.document_id) for u in upserts]),
            self._current_rows(upserts),
        )
        attempt_rejections: list[Rejection] = []
        documents = await asyncio.to_thread(
            self._prepare_documents, upserts, stored, current_rows, messages, attempt_rejections
        )
        await self._embed_chunks(documents)
        # Only a successful attempt touches the rejections, so a retried attempt cannot double-count.
        rejections.extend(attempt_rejections)
        return documents

    def _chunk(self, documents: Sequence[_Document]) -> None:
        """Chunk the texts of ``documents`` that were left unchunked as unchanged, after all."""
        for document in documents:
            document.chunk_texts = self._engine.chunk(
                document.text, self._pipelines[document.key[0]].chunking
            )

    async def _embed_chunks(self, documents: Sequence[_Document]) -> None:
        """Embed the chunks of every document that has chunks, in one request."""
        chunk_texts = [text for document in documents for text in document.chunk_texts or ()]
        if not chunk_texts:
            return
        embeddings = await self._engine.embed(chunk_texts)
        row = 0
        for document in documents:
            if document.chunk_texts is not None:
                document.embeddings = embeddings[row : row + len(document.chunk_texts)]
                row += len(document.chunk_texts)

    async def _write(self, prepared: PreparedBatch, result: BatchResult) -> None:
        """One ``write_batch`` of every upsert and delete, then the truncates."""
        embedded: dict[str, int] = {}
        unchanged: dict[str, int] = {}
        attempt_rejections: list[Rejection] = []
        writes: list[DocumentUpsert | DocumentDelete] = []
        for document in prepared.documents:
            upsert = self._upsert_of(document)
            writes.append(upsert)
            pipeline = document.change.pipeline
            if upsert.chunks is None:
                unchanged[pipeline] = unchanged.get(pipeline, 0) + 1
            else:
                embedded[pipeline] = embedded.get(pipeline, 0) + len(upsert.chunks)
        writes.extend(
            DocumentDelete(
                pipeline=delete.pipeline,
                tenant_id=delete.tenant_id
                or prepared.tenant_hints.get((delete.pipeline, delete.document_id)),
                document_id=delete.document_id,
                position=delete.position,
            )
            for delete in prepared.plan.deletes
        )
        refs = [document.change.ref for document in prepared.documents] + [
            delete.ref for delete in prepared.plan.deletes
        ]
        outcomes = await self._write_isolating(writes, refs, prepared.messages_by_ref, attempt_rejections)
        outcomes = await self._rewrite_emptied(prepared.documents, outcomes)
        truncated = 0
        for truncate in prepared.plan.truncates:
            truncated += await self._store.truncate(truncate.pipeline, truncate.position)
        # Only a successful attempt touches the result, so a retried attempt cannot double-count.
        hashes = {
            (write.pipeline, write.document_id): write.text_hash
            if isinstance(write, DocumentUpsert)
            else None
            for write in writes
        }
        result.outcomes = outcomes
        result.embedded_by_pipeline = embedded
        result.unchanged_by_pipeline = unchanged
        result.truncated_documents = truncated
        result.indexed_text_hashes = {
            (outcome.pipeline, outcome.document_id): hashes[(outcome.pipeline, outcome.document_id)]
            for outcome in outcomes
            if outcome.applied
        }
        result.rejections.extend(attempt_rejections)

    def _upsert_of(self, document: _Document) -> DocumentUpsert:
        chunks = None
        if document.chunk_texts is not None:  # an empty text has no chunks and no embeddings
            chunks = [
                ChunkVector(chunk_index=index, text=text, embedding=document.embeddings[index])  # type: ignore[index]
                for index, text in enumerate(document.chunk_texts)
            ]
        change = document.change
        return DocumentUpsert(
            pipeline=change.pipeline,
            tenant_id=document.tenant_id,
            document_id=change.document_id,
            position=change.position,
            text_hash=document.text_hash,
            metadata=document.metadata,
            chunks=chunks,
            model=self._engine.model_id,
        )

    async def _rewrite_emptied(
        self, documents: Sequence[_Document], outcomes: list[WriteOutcome]
    ) -> list[WriteOutcome]:
        """Embed and write again the unchanged texts that came out of the write with no chunks; their
        new outcomes replace the first ones.

        The stored versions are read before the write, without a lock. A truncate consumed by another
        worker in between removes the vectors of a document this batch found unchanged and so does not
        embed; the write then keeps "nothing" (live, no chunks, hash forgotten) and, with no later
        event, the document would stay unsearchable. Same position, so latest-wins applies it again.
        """
        where = {(o.pipeline, o.document_id, o.position.lsn): index for index, o in enumerate(outcomes)}
        emptied: list[tuple[_Document, int]] = []
        for document in documents:
            index = where.get((*document.key, document.change.position.lsn))
            if document.chunk_texts is not None or not document.text or index is None:
                continue
            outcome = outcomes[index]
            if outcome.applied and not outcome.deleted and outcome.chunk_count == 0:
                emptied.append((document, index))
        if not emptied:
            return outcomes
        logger.warning(
            "%d unchanged documents lost their vectors before this batch's write (a truncate on another "
            "worker); embedding them again", len(emptied),
        )  # fmt: skip
        lost = [document for document, _ in emptied]
        self._chunk(lost)
        await self._embed_chunks(lost)
        again = await self._store.write_batch([self._upsert_of(document) for document in lost])
        replaced = list(outcomes)
        for (_, index), outcome in zip(emptied, again, strict=True):
            replaced[index] = outcome
        return replaced

    async def _write_isolating(
        self,
        writes: Sequence[DocumentUpsert | DocumentDelete],
        refs: Sequence[MessageRef],
        messages: dict[Any, RawMessage],
        rejections: list[Rejection],
    ) -> list[WriteOutcome]:
        """``write_batch``; when the store refuses a write as invalid (say, a non-finite embedding),
        find it by halving the batch, dead-letter its message (stage WRITE) and write the rest.

        Only :class:`InvalidVectorWriteError` is isolated: it names one write's data. Any other
        failure (database down, tables missing) concerns the whole batch and is retried.
        """
        if not writes:
            return []
        try:
            return await self._store.write_batch(writes)
        except InvalidVectorWriteError as error:
            if len(writes) == 1:
                rejections.append(
                    Rejection(
                        message=messages[refs[0]],
                        error=error,
                        stage=FailureStage.WRITE,
                        pipeline=writes[0].pipeline,
                    )
                )
                return []
        middle = len(writes) // 2
        first = await self._write_isolating(writes[:middle], refs[:middle], messages, rejections)
        return first + await self._write_isolating(writes[middle:], refs[middle:], messages, rejections)

    def _tenant_hints(self, changes: Sequence[ChangeEvent]) -> dict[tuple[str, str], str]:
        """Tenants of the documents upserted in this batch: a delete event carries only the key,
        and when it follows the insert in the same batch, nothing stored knows the tenant yet."""
        hints: dict[tuple[str, str], str] = {}
        for change in changes:
            if isinstance(change, RowUpsert):
                try:
                    hints[(change.pipeline, change.document_id)] = tenant_of(
                        self._pipelines[change.pipeline], change.row
                    )
                except PoisonEventError:
                    continue
        return hints

    async def _current_rows(self, upserts: Sequence[RowUpsert]) -> dict[tuple[str, str], dict[str, Any]]:
        """Current source rows of the upserts that carried the unchanged-TOAST placeholder (one query per pipeline)."""
        by_pipeline: dict[str, list[str]] = {}
        for upsert in upserts:
            if carries_placeholder(self._pipelines[upsert.pipeline], upsert.row):
                by_pipeline.setdefault(upsert.pipeline, []).append(upsert.document_id)
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for pipeline, document_ids in by_pipeline.items():
            fetched = await fetch_source_rows(self._pool, self._pipelines[pipeline], document_ids)
            rows.update({(pipeline, document_id): row for document_id, row in fetched.items()})
        return rows

    def _prepare_documents(
        self,
        upserts: Sequence[RowUpsert],
        stored: dict[tuple[str, str], StoredVersion],
        current_rows: dict[tuple[str, str], dict[str, Any]],
        messages: dict[Any, RawMessage],
        rejections: list[Rejection],
    ) -> list[_Document]:
        """Text, hash, tenant, metadata and (for changed texts) chunks of each upsert. Runs in a thread."""
        documents = []
        for upsert in upserts:
            key = (upsert.pipeline, upsert.document_id)
            if is_stale(upsert.position.lsn, stored.get(key)):
                continue
            spec = self._pipelines[upsert.pipeline]
            row = upsert.row
            if carries_placeholder(spec, row):
                if key not in current_rows:
                    # The row is gone: its delete event follows on this partition and removes it.
                    continue
                row = current_rows[key]
            try:
                text = build_text(spec, row)
                tenant = tenant_of(spec, row)
                metadata = metadata_of(spec, row)
            except PoisonEventError as error:
                rejections.append(rejection(messages[upsert.ref], error, spec.name))
                continue
            digest = text_hash(text)
            chunk_texts = (
                self._engine.chunk(text, spec.chunking) if needs_embedding(digest, stored.get(key)) else None
            )
            documents.append(_Document(upsert, tenant, metadata, text, digest, chunk_texts))
        return documents

    def _record_metrics(self, messages: Sequence[RawMessage], result: BatchResult, seconds: float) -> None:
        metrics = self._metrics
        metrics.batches.labels(agent=AGENT).inc()
        metrics.batch_latency.labels(agent=AGENT).observe(seconds)
        metrics.batch_size.labels(agent=AGENT).observe(len(messages))
        metrics.events.labels(agent=AGENT, outcome="dead_lettered").inc(len(result.rejections))
        metrics.events.labels(agent=AGENT, outcome="processed").inc(len(messages) - len(result.rejections))
        for pipeline, count in result.embedded_by_pipeline.items():
            metrics.embedded_chunks.labels(pipeline=pipeline).inc(count)
        for pipeline, count in result.unchanged_by_pipeline.items():
            metrics.unchanged_documents.labels(pipeline=pipeline).inc(count)
        for outcome in result.outcomes:
            if outcome.applied:
                freshness = (outcome.indexed_at - outcome.position.committed_at).total_seconds()
                metrics.freshness.labels(pipeline=outcome.pipeline).observe(max(0.0, freshness))

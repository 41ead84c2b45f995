"""The ``ingest`` agent: IngestDocument events (Avro, ``tidewire.ingest``) written into the source table.

An upstream system that cannot write to Postgres publishes IngestDocument events instead; each
valid one becomes an ordinary INSERT/UPDATE/DELETE of the pipeline's source table, so CDC carries it
on exactly like a direct write. The target table must have the columns of ``documents``: the primary
key, the tenant column, ``title``, ``body``, ``metadata`` (jsonb) and ``updated_at``.

Latest wins on ``event_time``, stored as ``updated_at``: an upsert or delete older than the row is
ignored. A delete leaves no row to compare with, so it is also recorded in
``tidewire_ingest_deletions`` (migration 0011), and an upsert older than its document's deletion is
ignored too. Invalid events go to the dead-letter topic; the batch is written in one transaction.
When the table refuses a value (a key of another type, a CHECK, a NOT NULL column the event leaves
empty, a text too long for its column), the batch is written again one event at a time, and each
refused event is dead-lettered with the database's reason while the others are written.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import faust
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from streams.batch_loop import event_batches, process_or_exit, raw_message
from streams.context import StreamContext
from streams.dead_letters import DeadLetterHandler, Rejection, rejection
from streams.errors import PoisonEventError
from streams.messages import RawMessage
from streams.metrics import StreamMetrics
from streams.retry import RetryPolicy, retrying
from tidewire.errors import first_line
from tidewire.events import EventCodec, FailureStage, IngestDocument, IngestOperation, InvalidEventError
from tidewire.pipeline_spec import PipelineSpec

logger = logging.getLogger(__name__)

AGENT = "ingest"


@dataclass(frozen=True)
class IngestWrite:
    """A validated IngestDocument, the pipeline whose table receives it, and the message it came in."""

    spec: PipelineSpec
    event: IngestDocument
    message: RawMessage


DEFAULT_SOURCE_TABLE = "public.documents"


def resolve_pipeline(event: IngestDocument, pipelines: Sequence[PipelineSpec]) -> PipelineSpec:
    """The pipeline the event names; with none named, the one of ``public.documents`` (or the only
    pipeline there is). :class:`PoisonEventError` for an unknown name or no default."""
    known = ", ".join(spec.name for spec in pipelines)
    if event.pipeline is None:
        for spec in pipelines:
            if spec.source_table == DEFAULT_SOURCE_TABLE:
                return spec
        if len(pipelines) == 1:
            return pipelines[0]
        raise PoisonEventError(
            f"the event names no pipeline and none reads {DEFAULT_SOURCE_TABLE}; set `pipeline` (known: {known})",
            stage=FailureStage.VALIDATE,
            code="ingest_unknown_pipeline",
        )
    for spec in pipelines:
        if spec.name == event.pipeline:
            return spec
    raise PoisonEventError(
        f"pipeline {event.pipeline!r} does not exist (known: {known})",
        stage=FailureStage.VALIDATE,
        code="ingest_unknown_pipeline",
    )


def latest_per_document(writes: Sequence[IngestWrite]) -> list[IngestWrite]:
    """One write per (pipeline, document): the latest ``event_time``; the later one on a tie."""
    latest: dict[tuple[str, str], IngestWrite] = {}
    for write in writes:
        key = (write.spec.name, write.event.document_id)
        current = latest.get(key)
        if current is None or write.event.event_time >= current.event.event_time:
            latest[key] = write
    return list(latest.values())


def newer_than_their_deletion(
    upserts: Sequence[IngestDocument], deleted_at: Mapping[str, datetime]
) -> list[IngestDocument]:
    """The upserts not older than their document's last ingested delete (``deleted_at`` by document
    id); on a tie the upsert, consumed later, wins."""
    return [
        event
        for event in upserts
        if event.document_id not in deleted_at or event.event_time >= deleted_at[event.document_id]
    ]


_DELETIONS_OF = (
    "SELECT document_id, deleted_at FROM public.tidewire_ingest_deletions "
    "WHERE pipeline = %s AND document_id = ANY (%s)"
)

# The latest delete of a document stays its bound; a replayed older one changes nothing.
_REMEMBER_DELETION = """
INSERT INTO public.tidewire_ingest_deletions AS d (pipeline, document_id, deleted_at) VALUES (%s, %s, %s)
ON CONFLICT (pipeline, document_id) DO UPDATE SET deleted_at = excluded.deleted_at
WHERE d.deleted_at < excluded.deleted_at
"""


def upsert_statement(spec: PipelineSpec) -> sql.Composed:
    table = sql.Identifier(spec.schema_name, spec.table_name)
    key = sql.Identifier(spec.primary_key)
    tenant = sql.Identifier(spec.tenant_column) if spec.tenant_column else None
    columns = [
        key,
        *([tenant] if tenant else []),
        *map(sql.Identifier, ("title", "body", "metadata", "updated_at")),
    ]
    updates = [column for column in columns if column != key]
    return sql.SQL(
        "INSERT INTO {table} AS t ({columns}) VALUES ({values}) ON CONFLICT ({key}) DO UPDATE SET {updates}"
        " WHERE t.updated_at <= EXCLUDED.updated_at"
    ).format(
        table=table,
        columns=sql.SQL(", ").join(columns),
        values=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        key=key,
        updates=sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=column) for column in updates),
    )


def delete_statement(spec: PipelineSpec) -> sql.Composed:
    return sql.SQL("DELETE FROM {table} WHERE {key} = %s AND updated_at <= %s").format(
        table=sql.Identifier(spec.schema_name, spec.table_name), key=sql.Identifier(spec.primary_key)
    )


class IngestProcessor:
    """Validate a batch of IngestDocument events and write the valid ones in one transaction."""

    def __init__(
        self,
        *,
        pipelines: Sequence[PipelineSpec],
        pool: AsyncConnectionPool,
        codec: EventCodec,
        topic: str,
        retry: RetryPolicy,
        dead_letters: DeadLetterHandler,
        metrics: StreamMetrics,
    ) -> None:
        self._pipelines = pipelines
        self._pool = pool
        self._codec = codec
        self._topic = topic
        self._retry = retry
        self._dead_letters = dead_letters
        self._metrics = metrics

    async def process(self, messages: Sequence[RawMessage]) -> None:
        # Retried as a whole: a Schema Registry that does not answer is no fault of the events.
        writes, rejections = await retrying(
            lambda: self._decode(messages), self._retry, what=f"decoding {len(messages)} ingest events"
        )
        latest = latest_per_document(writes)
        refused = await retrying(
            lambda: self._write(latest), self._retry, what=f"ingesting {len(latest)} documents"
        )
        rejections.extend(refused)
        await retrying(
            lambda: self._dead_letters.send(rejections), self._retry, what="dead-lettering ingest events"
        )
        self._metrics.batches.labels(agent=AGENT).inc()
        self._metrics.events.labels(agent=AGENT, outcome="processed").inc(len(messages) - len(rejections))
        self._metrics.events.labels(agent=AGENT, outcome="dead_lettered").inc(len(rejections))

    async def _decode(self, messages: Sequence[RawMessage]) -> tuple[list[IngestWrite], list[Rejection]]:
        """The valid events with their pipelines, and the rejections of the others."""
        writes: list[IngestWrite] = []
        rejections: list[Rejection] = []
        for message in messages:
            try:
                event = self._codec.decode(message.value, IngestDocument, topic=self._topic)
                writes.append(IngestWrite(resolve_pipeline(event, self._pipelines), event, message))
            except PoisonEventError as error:
                rejections.append(Rejection(message=message, error=error, stage=error.stage))
            except InvalidEventError as error:
                stage = FailureStage.VALIDATE if hasattr(error, "field") else FailureStage.DECODE
                rejections.append(Rejection(message=message, error=error, stage=stage))
        return writes, rejections

    async def _write(self, writes: Sequence[IngestWrite]) -> list[Rejection]:
        """Write ``writes`` in one transaction; the rejections of the events the table refused."""
        if not writes:
            return []
        try:
            async with self._pool.connection() as connection, connection.transaction():
                await _write_events(connection, writes)
            return []
        except REFUSED_VALUE_ERRORS as error:
            logger.warning(
                "the table refused a value of the %d ingested documents (%s); writing them one at a time",
                len(writes), first_line(error),
            )  # fmt: skip
        refused: list[Rejection] = []
        async with self._pool.connection() as connection, connection.transaction():
            for write in writes:
                try:
                    async with connection.transaction():  # a savepoint: a refusal undoes this event only
                        await _write_events(connection, [write])
                except REFUSED_VALUE_ERRORS as error:
                    refused.append(_refusal(write, error))
        return refused


# The database refusing a value of the event (not the database being unavailable): no retry helps.
REFUSED_VALUE_ERRORS = (psycopg.errors.DataError, psycopg.errors.IntegrityError)


async def _write_events(connection: psycopg.AsyncConnection[Any], writes: Sequence[IngestWrite]) -> None:
    async with connection.cursor() as cursor:
        for spec in {write.spec.name: write.spec for write in writes}.values():
            mine = [write.event for write in writes if write.spec.name == spec.name]
            upserts = [event for event in mine if event.operation is IngestOperation.UPSERT]
            deletes = [event for event in mine if event.operation is IngestOperation.DELETE]
            if upserts:
                await cursor.execute(_DELETIONS_OF, (spec.name, [event.document_id for event in upserts]))
                deleted_at = {document_id: at for document_id, at in await cursor.fetchall()}
                upserts = newer_than_their_deletion(upserts, deleted_at)
            if upserts:
                await cursor.executemany(upsert_statement(spec), [_row(spec, event) for event in upserts])
            if deletes:
                await cursor.executemany(
                    delete_statement(spec), [(event.document_id, event.event_time) for event in deletes]
                )
                await cursor.executemany(
                    _REMEMBER_DELETION,
                    [(spec.name, event.document_id, event.event_time) for event in deletes],
                )


def _refusal(write: IngestWrite, error: psycopg.Error) -> Rejection:
    poison = PoisonEventError(
        f"{write.spec.source_table} refused the document: {first_line(error)}",
        stage=FailureStage.WRITE,
        code="ingest_refused_by_database",
    )
    return rejection(write.message, poison, write.spec.name)


def _row(spec: PipelineSpec, event: IngestDocument) -> tuple[object, ...]:
    tenant = (event.tenant_id,) if spec.tenant_column else ()
    return (event.document_id, *tenant, event.title, event.body, Jsonb(event.metadata), event.event_time)


def register_ingest_agent(app: faust.App, context: StreamContext) -> None:
    """Subscribe the ingest agent to ``tidewire.ingest``."""
    settings = context.settings
    topic = app.topic(settings.topics.ingest, value_type=bytes, value_serializer="raw")

    @app.agent(topic, name=AGENT, concurrency=1)
    async def ingest(stream: faust.StreamT) -> None:  # pragma: no cover - exercised by integration tests
        resources = await context.open(app)
        processor = IngestProcessor(
            pipelines=settings.pipelines,
            pool=resources.pool,
            codec=resources.codec,
            topic=settings.topics.ingest,
            retry=context.retry,
            dead_letters=context.dead_letter_handler(resources, AGENT),
            metrics=context.metrics,
        )
        async for events in event_batches(
            stream, settings.streams.batch_max_events, within_s=settings.streams.batch_max_wait_s
        ):
            await process_or_exit(AGENT, [raw_message(event) for event in events], processor.process)

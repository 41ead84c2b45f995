"""The ``embed`` agent: CDC topics → micro-batches → vectors, committed before their offsets.

Each batch is prepared (decoded, embedded) while the batch before it is written: the model and
Postgres's index inserts work at the same time instead of taking turns.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import faust

from streams.batch_loop import CommitBehind, event_batches, process_or_exit, raw_message
from streams.context import StreamContext
from streams.embed_batch import BatchResult, EmbedBatchProcessor
from streams.messages import RawMessage

AGENT = "embed"


def register_embed_agent(app: faust.App, context: StreamContext) -> None:
    """Subscribe one agent (concurrency 1: offsets are never committed past an in-flight batch)
    to the CDC topic of every pipeline."""
    streams_settings = context.settings.streams
    pipelines_by_topic = context.pipelines_by_topic()
    topic = app.topic(*pipelines_by_topic, key_type=bytes, value_type=bytes, value_serializer="raw")

    @app.agent(topic, name=AGENT, concurrency=1)
    async def embed(stream: faust.StreamT) -> None:  # pragma: no cover - exercised by integration tests
        resources = await context.open(app)
        processor = EmbedBatchProcessor(
            pipelines_by_topic=pipelines_by_topic,
            store=resources.store,
            pool=resources.pool,
            engine=resources.engine,
            retry=context.retry,
            dead_letters=context.dead_letter_handler(resources, AGENT),
            notifier=context.notification_publisher(resources),
            metrics=context.metrics,
        )
        commits: CommitBehind[BatchResult] = CommitBehind(AGENT)

        async def index(events: Sequence[Any], messages: Sequence[RawMessage]) -> None:
            if commits.blocks_preparation:  # it truncates: what it removes changes this batch's plan
                await commits.settle()
            prepared = await processor.prepare(messages)
            previous = await commits.settle()
            if previous is not None:
                await processor.reconcile(prepared, previous)
            commits.begin(events, messages, processor.commit(prepared), blocks_preparation=prepared.truncates)

        async for events in event_batches(
            stream, streams_settings.batch_max_events, within_s=streams_settings.batch_max_wait_s
        ):
            await process_or_exit(
                AGENT, [raw_message(event) for event in events], functools.partial(index, events)
            )

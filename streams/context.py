"""What a worker's agents share: settings, metrics, and the resources opened once per process.

Nothing here connects when it is created: :meth:`StreamContext.open` opens the database pool, loads
the model and starts the shared batcher, once, on the worker's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import faust
from psycopg_pool import AsyncConnectionPool

from streams.dead_letters import DeadLetterHandler
from streams.embedding import Embedding, open_embedding_engine
from streams.metrics import StreamMetrics
from streams.notifications import NotificationPublisher
from streams.publishing import FaustPublisher, Publisher
from streams.retry import RetryPolicy
from tidewire.events import EventCodec, make_event_codec
from tidewire.garbage_collection import freeze_startup_objects
from tidewire.pipeline_spec import PipelineSpec
from tidewire.settings import Settings
from tidewire.vector_store import VectorStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resources:
    """The open resources of one worker process."""

    pool: AsyncConnectionPool
    store: VectorStore
    engine: Embedding
    publisher: Publisher
    codec: EventCodec


class StreamContext:
    """Settings, metrics and (after :meth:`open`) the resources every agent of a worker uses."""

    def __init__(self, settings: Settings, metrics: StreamMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or StreamMetrics.create()
        self.retry = RetryPolicy(
            attempts=settings.streams.retry_attempts,
            initial_backoff_s=settings.streams.retry_initial_backoff_s,
            max_backoff_s=settings.streams.retry_max_backoff_s,
        )
        self._resources: Resources | None = None
        self._lock = asyncio.Lock()
        self._stack = contextlib.AsyncExitStack()

    def pipelines_by_topic(self) -> dict[str, PipelineSpec]:
        """Each pipeline's CDC topic (``cdc.<schema>.<table>``) and the pipeline."""
        topics = self.settings.topics
        return {topics.cdc_topic(spec.schema_name, spec.table_name): spec for spec in self.settings.pipelines}

    async def open(self, app: faust.App) -> Resources:
        """The resources, opened on first call (concurrent callers wait for the same opening)."""
        async with self._lock:
            if self._resources is None:
                self._resources = await self._open(app)
            return self._resources

    async def _open(self, app: faust.App) -> Resources:
        settings = self.settings
        pool = AsyncConnectionPool(
            settings.postgres.dsn(),
            min_size=settings.postgres.pool_min_size,
            max_size=settings.postgres.pool_max_size,
            open=False,
            name="tidewire-streams",
        )
        await pool.open(wait=False)
        self._stack.push_async_callback(pool.close)
        engine = await self._stack.enter_async_context(open_embedding_engine(settings.embedding))
        logger.info("embedding model %s loaded", engine.model_id)
        resources = Resources(
            pool=pool,
            store=VectorStore(pool),
            engine=engine,
            publisher=FaustPublisher(app),
            codec=make_event_codec(settings.kafka),
        )
        # The app, its agents and the model session live as long as the worker: full collections
        # walked them with the event loop stopped (up to 244 ms in `tidewire bench pipeline`, 33 ms
        # frozen).
        freeze_startup_objects()
        return resources

    async def close(self) -> None:
        await self._stack.aclose()
        self._resources = None

    def dead_letter_handler(self, resources: Resources, agent: str) -> DeadLetterHandler:
        return DeadLetterHandler(
            publisher=resources.publisher,
            codec=resources.codec,
            topic=self.settings.topics.dead_letter,
            agent=agent,
            metrics=self.metrics,
        )

    def notification_publisher(self, resources: Resources) -> NotificationPublisher:
        return NotificationPublisher(
            publisher=resources.publisher,
            codec=resources.codec,
            topic=self.settings.topics.notifications,
            metrics=self.metrics,
        )

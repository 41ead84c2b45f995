"""The FastAPI application: :func:`create_app` builds it from settings; its lifespan opens the
database pool, loads the embedding model, builds the chat provider chain and starts the one
notifications consumer (which also invalidates the search response cache and the semantic cache), and closes them in reverse order on shutdown."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from api.auth import KeyVerifier
from api.cached_search import CachedSearchShortcut
from api.chat.cache import SemanticCache
from api.chat.providers import build_chain, close_chain
from api.chat.service import ChatService
from api.db import TenantDatabase, make_pool
from api.deps import Services
from api.embedding import QueryEmbedder, TextEmbedder
from api.errors import install_error_handlers
from api.event_ids import EventIdCodec
from api.events_stream import NotificationHub
from api.inference_thread import InferenceThread
from api.metrics import ApiMetrics
from api.middleware import RequestContextMiddleware
from api.rate_limit import RateLimiter
from api.routers import chat, documents, events, health, search
from api.routers.search import SEARCH_PATH
from api.search import SearchService
from api.search_cache import SearchResultCache
from tidewire.events.codec import make_event_codec
from tidewire.garbage_collection import freeze_startup_objects
from tidewire.settings import Settings

logger = logging.getLogger(__name__)


def load_embedder(settings: Settings) -> TextEmbedder:
    """The indexing engine's model (built by ``tidewire model build``)."""
    from models.embedder import Embedder  # imported here: loading ONNX Runtime is slow

    return Embedder.from_settings(settings.embedding)


def create_app(settings: Settings, *, embedder: TextEmbedder | None = None) -> FastAPI:
    """The API app. Nothing connects until the lifespan starts (``uvicorn`` or a test client)."""
    metrics = ApiMetrics.create()
    api = settings.api

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = make_pool(settings.postgres, max_size=api.database_pool_size)
        await pool.open(wait=False)
        database = TenantDatabase(pool)
        # Loaded on the inference thread, so that ONNX Runtime's own threads inherit its priority.
        inference = InferenceThread(api.inference_niceness)
        model = embedder if embedder is not None else await inference.run(load_embedder, settings)
        query_embedder = QueryEmbedder(
            model,
            cache_size=api.query_cache_size,
            on_lookup=lambda hit: metrics.query_cache.labels("hit" if hit else "miss").inc(),
            executor=inference.executor,
        )
        search_service = SearchService(database, api)
        cache = SemanticCache(
            database,
            max_distance=api.semantic_cache_distance,
            max_age=timedelta(seconds=api.semantic_cache_max_age_s),
            enabled=api.semantic_cache,
        )
        chain = build_chain(api.chat_providers)
        hub = NotificationHub(
            bootstrap_servers=settings.kafka.bootstrap,
            topic=settings.topics.notifications,
            codec=make_event_codec(settings.kafka),
            event_ids=EventIdCodec(
                (api.event_id_secret or settings.postgres.api_password).get_secret_value().encode()
            ),
            buffer_size=api.events_buffer,
            client_queue=api.events_client_queue,
        )
        search_cache = SearchResultCache(
            max_entries=api.search_cache_entries,
            max_bytes=api.search_cache_max_bytes,
            ttl_s=api.search_cache_ttl_s,
            epoch=lambda: hub.live_epoch,
        )
        hub.add_listener(search_cache.invalidate, before_delivery=True)
        hub.add_listener(cache.invalidate)
        hub.start()
        pepper = api.key_pepper.get_secret_value().encode() if api.key_pepper else None
        app.state.services = Services(
            settings=api,
            database=database,
            keys=KeyVerifier(pool, pepper=pepper, ttl_s=api.key_cache_ttl_s),
            limiter=RateLimiter(rate_per_s=api.rate_limit_per_s, burst=api.rate_limit_burst),
            embedder=query_embedder,
            search=search_service,
            chat=ChatService(
                embedder=query_embedder,
                search=search_service,
                cache=cache,
                chain=chain,
                default_k=api.chat_k,
                timeout_s=api.chat_timeout_s,
            ),
            hub=hub,
            metrics=metrics,
            search_cache=search_cache,
        )
        # Everything above lives as long as the process.
        freeze_startup_objects()
        try:
            yield
        finally:
            # Reverse order: stop the streams' source first, so SSE clients end cleanly.
            app.state.services = None
            await hub.stop()
            await close_chain(chain)
            await query_embedder.aclose()
            inference.shutdown()
            await pool.close()

    app = FastAPI(
        title="Tidewire read API",
        version="1",
        description="Tenant-scoped semantic search, grounded chat over SSE, live index events.",
        lifespan=lifespan,
    )
    app.state.services = None
    app.state.metrics = metrics
    install_error_handlers(app)
    for router in (search.router, chat.router, events.router, documents.router, health.router):
        app.include_router(router)
    search_route = next(
        route for route in search.router.routes if getattr(route, "path", None) == SEARCH_PATH
    )
    # Added first, so it runs inside RequestContextMiddleware: shortcut answers get ids, logs, metrics.
    app.add_middleware(CachedSearchShortcut, route=search_route)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=api.max_body_bytes, metrics=metrics)
    return app

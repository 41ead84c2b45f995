"""The Faust app factory: one app per worker process, built from the settings (never at import time).

The app id is the Kafka consumer group: N workers started with the same settings share the CDC,
ingest and notification partitions between them. Values are consumed as raw bytes; the agents
decode them (Debezium JSON, Avro events) so that a bad message reaches the dead-letter handler
instead of Faust's deserializer.
"""

from __future__ import annotations

import faust

from streams.context import StreamContext
from streams.embed_agent import register_embed_agent
from streams.ingest_agent import register_ingest_agent
from streams.webhooks_agent import register_webhooks_agent
from tidewire.runtime.state import StatePaths
from tidewire.settings import Settings

# Faust's own commit timer: how often acknowledged offsets are committed (after their vectors).
COMMIT_INTERVAL_S = 1.0


def broker_url(bootstrap: str) -> str:
    """Faust's broker URL for a Kafka bootstrap list (``h1:9092,h2:9092``)."""
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap.split(",") if server.strip())


def create_app(
    settings: Settings, *, web_port: int | None = None, context: StreamContext | None = None
) -> faust.App:
    """A configured Faust app with the embed, ingest and webhook agents (one per endpoint) registered.

    ``web_port`` is this worker's Faust web server port (``None`` or 0: no web server).
    """
    context = context or StreamContext(settings)
    streams_data = StatePaths(settings.state_dir).streams_data
    streams_data.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = faust.App(
        settings.streams.app_id,
        broker=broker_url(settings.kafka.bootstrap),
        autodiscover=False,
        # Faust's default is "<app id>-data" in the working directory; keep it in the state directory.
        datadir=str(streams_data / "{conf.name}-data"),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.kafka.default_partitions,
        topic_replication_factor=1,
        broker_commit_interval=COMMIT_INTERVAL_S,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        stream_wait_empty=True,
        web_enabled=bool(web_port),
        web_port=web_port or 6066,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
    )
    register_embed_agent(app, context)
    register_ingest_agent(app, context)
    register_webhooks_agent(app, context)
    app.tidewire_context = context  # type: ignore[attr-defined]
    return app

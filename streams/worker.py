"""Running one worker process: metrics endpoint, Faust worker, signal handling, exit code."""

from __future__ import annotations

import logging

import faust
from prometheus_client import start_http_server

from streams.app import create_app
from streams.context import StreamContext
from streams.topics import ensure_topics, worker_topics
from tidewire.settings import Settings

logger = logging.getLogger(__name__)


def run_worker(settings: Settings, *, web_port: int | None, metrics_port: int | None, debug: bool) -> None:
    """Serve ``/metrics`` on ``metrics_port``, then run the Faust worker until SIGTERM/SIGINT."""
    ensure_topics(settings, worker_topics(settings))
    context = StreamContext(settings)
    if metrics_port:
        start_http_server(metrics_port, addr="127.0.0.1", registry=context.metrics.registry)
    app = create_app(settings, web_port=web_port, context=context)

    # mode types the handler with a NamedArg of a string type that no `def` matches, whatever its signature.
    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def _joined(sender: faust.App, assigned: object, **_: object) -> None:
        # Ready = model loaded and a member of the group (possibly with no partitions yet).
        await context.open(app)
        context.metrics.ready.set(1)

    @app.task
    async def _open_resources() -> None:
        # Load the model as the worker starts, not when the first batch is already waiting.
        await context.open(app)

    worker = faust.Worker(
        app,
        loglevel="DEBUG" if debug else settings.log_level,
        quiet=True,
        redirect_stdouts=False,
        override_logging=True,
    )
    worker.execute_from_commandline()

"""How the read API is served: one uvicorn set-up, used by ``tidewire serve``, by the API
benchmark's comparison servers (so that a comparison measures the app and not the server) and by
the tests' servers."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp

from tidewire.settings import ApiSettings


def uvicorn_protocol_options(api: ApiSettings) -> dict[str, Any]:
    """uvicorn's HTTP protocol and event loop options for the API: the httptools parser with the
    API's bound on a request head (:mod:`api.http_protocol`), on uvloop where it is installed."""
    from api.http_protocol import bounded_httptools_protocol  # imports uvicorn

    # A long (even 1 MB) Authorization header must reach the app, which answers 401, not 431.
    return {"http": bounded_httptools_protocol(api.max_header_bytes), "loop": "auto"}


def serve_with_uvicorn(app: ASGIApp, *, host: str, port: int, api: ApiSettings, log_level: str) -> None:
    """Serve ``app`` until interrupted (SIGINT/SIGTERM), with the API's uvicorn options."""
    import uvicorn  # imported here: the CLI's other commands do not need the web stack

    uvicorn.run(
        app,
        host=host,
        port=port,
        **uvicorn_protocol_options(api),
        log_level=log_level.lower(),
        access_log=False,  # the app logs one line per request, with its request id
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )

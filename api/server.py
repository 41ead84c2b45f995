"""How the read API is served: one uvicorn set-up, used by ``tidewire serve`` and by the API
benchmark's comparison servers, so that a comparison measures the app and not the server."""

from __future__ import annotations

from starlette.types import ASGIApp

from tidewire.settings import ApiSettings


def serve_with_uvicorn(app: ASGIApp, *, host: str, port: int, api: ApiSettings, log_level: str) -> None:
    """Serve ``app`` until interrupted (SIGINT/SIGTERM), with the API's uvicorn options."""
    import uvicorn  # imported here: the CLI's other commands do not need the web stack

    uvicorn.run(
        app,
        host=host,
        port=port,
        http="h11",
        # A long (even 1 MB) Authorization header must reach the app, which answers 401, not 400.
        h11_max_incomplete_event_size=api.max_header_bytes,
        log_level=log_level.lower(),
        access_log=False,  # the app logs one line per request, with its request id
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )

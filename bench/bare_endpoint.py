"""The API benchmark's yardstick: a FastAPI app with one bare JSON endpoint, served exactly as the
read API is (:func:`api.server.serve_with_uvicorn`), so "cached search ÷ bare endpoint" measures what
a search adds to the framework's own cost per request.

Run it as ``python -m bench.bare_endpoint --port P``.
"""

from __future__ import annotations

import argparse

from fastapi import FastAPI

from api.server import serve_with_uvicorn
from tidewire.settings import load_settings

BARE_PATH = "/bare"


def create_bare_app() -> FastAPI:
    """One ``GET /bare`` answering a constant JSON object: no auth, no middleware, no I/O."""
    app = FastAPI(title="bare endpoint")

    @app.get(BARE_PATH)
    async def bare() -> dict[str, bool]:
        return {"ok": True}

    return app


def main() -> None:
    """Entry point of the bare endpoint's process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    arguments = parser.parse_args()
    settings = load_settings()
    serve_with_uvicorn(
        create_bare_app(),
        host=arguments.host,
        port=arguments.port,
        api=settings.api,
        log_level=settings.log_level,
    )


if __name__ == "__main__":
    main()

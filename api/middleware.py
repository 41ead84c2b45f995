"""Pure ASGI middleware (no BaseHTTPMiddleware: it breaks disconnect detection on streaming routes).

:class:`RequestContextMiddleware` gives every request an id (``X-Request-ID``, taken from the
client when sane, and sent back on every response: 413s and 500s included), logs one access line
with it, records metrics, refuses request bodies larger than ``max_body_bytes`` with 413 — by
``Content-Length`` up front, and by counting when the body is chunked — and answers an unexpected
exception with a 500 in the error shape, logged with its traceback and the request id.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import re
import secrets
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body
from api.metrics import ApiMetrics

logger = logging.getLogger("tidewire.api.access")
error_logger = logging.getLogger("tidewire.api.errors")
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("tidewire_request_id", default="-")
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class RequestIds:
    """Request ids unique to the process and across restarts: a random 64-bit prefix drawn at start,
    then a counter — as unique as a UUID per request, without a system call for randomness on each."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


class RequestContextMiddleware:
    """Request id, access log line, metrics and the body limit of every HTTP request."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: ApiMetrics) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self._ids = RequestIds()
        # prometheus_client's labels() takes a lock and builds a key on every call: keep the
        # children (a handful of routes and statuses).
        self._latency: dict[str, Any] = {}
        self._requests: dict[tuple[str, int], Any] = {}

    def _observe_latency(self, route: str, seconds: float) -> None:
        child = self._latency.get(route)
        if child is None:
            child = self._latency[route] = self.metrics.latency.labels(route)
        child.observe(seconds)

    def _count(self, route: str, status: int) -> None:
        child = self._requests.get((route, status))
        if child is None:
            child = self._requests[(route, status)] = self.metrics.requests.labels(route, str(status))
        child.inc()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        offered = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = offered if offered and _SANE_REQUEST_ID.fullmatch(offered) else self._ids.next()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await _send_error(
                send, 413, "payload_too_large", f"request body over {self.max_body_bytes} bytes", request_id
            )
            request_id_var.reset(token)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # FastAPI re-raises an HTTPException from body reading as is: a clean 413.
                    raise HTTPException(413, f"request body over {self.max_body_bytes} bytes")
            return message

        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                started_response = True
                status = message["status"]
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())],
                }
                self._observe_latency(_route(scope), time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except Exception:
            if started_response:
                raise  # the response had started (a stream): nothing left to answer with
            # Answered here rather than by Starlette's outermost error middleware, which runs
            # after this one and would send the 500 without the request id.
            error_logger.exception(
                "unhandled error on %s %s (request id %s)", scope.get("method"), scope.get("path"), request_id
            )
            await _send_error(
                send, 500, "internal_error", "internal error; the request id is in the server log", request_id
            )
        finally:
            self._count(_route(scope), status)
            logger.info(
                "%s %s %d %.1fms request_id=%s",
                scope.get("method"),
                scope.get("path"),
                status,
                (time.perf_counter() - started) * 1000,
                request_id,
            )
            request_id_var.reset(token)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


async def _send_error(send: Send, status: int, code: str, message: str, request_id: str) -> None:
    body = json.dumps(error_body(code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""Test helpers for the API: a real HTTP server in a thread, and an OpenAI-compatible stand-in.

The stand-in plays the outside service a user brings (an LLM endpoint); its behaviour is chosen by
the ``model`` field of the request, and it records what happened to each call on its side
(completed, cancelled by the client) so tests can assert on the provider side.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve_in_thread(app: ASGIApp, **config: object) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **config)  # type: ignore[arg-type]
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def read_response(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length: status, headers (lower-case names), body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65_536)
        if not chunk:
            raise ConnectionError(f"closed before a whole response head: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in header_lines)}
    while len(body) < int(headers["content-length"]):
        chunk = connection.recv(65_536)
        if not chunk:
            raise ConnectionError("closed before the whole body")
        body += chunk
    return int(status_line.split()[1]), headers, body


def unfinished_head(total: int) -> bytes:
    """A request head of exactly ``total`` bytes that never ends (no blank line).

    A head one byte past the bound is refused on the read that carries its last byte, so the server
    has read everything when it answers: its close is a clean FIN and the answer can be read (with
    unread bytes left, the kernel would reset the connection and drop the answer)."""
    prefix = b"GET / HTTP/1.1\r\nhost: test\r\nx-filler: "
    return prefix + b"f" * (total - len(prefix))


def wait_for(predicate: Callable[[], bool], *, timeout_s: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@dataclass
class LlmCall:
    model: str
    messages: list[dict[str, str]]
    outcome: str = "running"  # running | completed | cancelled | failed


@dataclass
class FakeLlm:
    """Behaviours by model name: ``ok``, ``fail500``, ``rate429`` (429 once, then ok), ``hang``
    (200 then silence), ``slow`` (a token every 0.1 s, 100 of them)."""

    calls: list[LlmCall] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    attempts_by_model: dict[str, int] = field(default_factory=dict)

    def outcomes(self, model: str) -> list[str]:
        with self.lock:
            return [call.outcome for call in self.calls if call.model == model]

    def app(self) -> Starlette:
        async def completions(request: Request) -> Response:
            body = await request.json()
            model = body["model"]
            call = LlmCall(model=model, messages=body["messages"])
            with self.lock:
                self.calls.append(call)
                attempt = self.attempts_by_model[model] = self.attempts_by_model.get(model, 0) + 1
            if model == "fail500":
                call.outcome = "failed"
                return JSONResponse({"error": "boom"}, status_code=500)
            if model == "rate429" and attempt == 1:
                call.outcome = "failed"
                return JSONResponse({"error": "slow down"}, status_code=429, headers={"Retry-After": "0"})
            pieces = {"ok": ["Hello", " world", "."], "rate429": ["after", " retry"]}.get(model)
            delay_s = 0.1 if model == "slow" else 0.0
            if model == "slow":
                pieces = [f" t{index}" for index in range(100)]
            return StreamingResponse(self._stream(call, pieces, delay_s), media_type="text/event-stream")

        return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])

    async def _stream(self, call: LlmCall, pieces: list[str] | None, delay_s: float) -> AsyncIterator[bytes]:
        try:
            if pieces is None:  # hang: headers sent, then nothing
                await asyncio.sleep(3600)
            for piece in pieces or []:
                chunk = {"choices": [{"index": 0, "delta": {"content": piece}}]}
                yield f"data: {json.dumps(chunk)}\n\n".encode()
                if delay_s:
                    await asyncio.sleep(delay_s)
            yield b"data: [DONE]\n\n"
            call.outcome = "completed"
        except asyncio.CancelledError:
            call.outcome = "cancelled"
            raise
        finally:
            if call.outcome == "running":
                call.outcome = "cancelled"

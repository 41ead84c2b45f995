"""A real HTTP server speaking the few Schema Registry REST endpoints confluent-kafka's client calls.

The Schema Registry is a service the user brings, so the tests talk to this stand-in over
loopback HTTP instead of patching the client. It implements:

- ``POST /subjects/{subject}/versions`` — register a schema, returns ``{"id"}``;
- ``POST /subjects/{subject}`` — look a schema up, returns ``{"subject", "id", "version", "schema"}``;
- ``GET /schemas/ids/{id}`` — fetch a schema, returns ``{"schema", "schemaType"}``;

with Confluent's error bodies (``{"error_code", "message"}``). Like the real registry, ids are
global and a schema registered twice keeps its id.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

_REGISTER = re.compile(r"^/subjects/([^/]+)/versions$")
_LOOKUP = re.compile(r"^/subjects/([^/]+)$")
_SCHEMA_BY_ID = re.compile(r"^/schemas/ids/([0-9]+)$")


@dataclass
class RegistryState:
    """What the stand-in registry holds, shared by its request threads."""

    schemas: dict[int, str] = field(default_factory=dict)
    subjects: dict[str, list[int]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    fail_with_status: int | None = None
    """When set, every request answers this status (to play a registry that is down)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def register(self, subject: str, schema: str) -> int:
        with self.lock:
            schema_id = next((known for known, text in self.schemas.items() if text == schema), None)
            if schema_id is None:
                schema_id = len(self.schemas) + 1
                self.schemas[schema_id] = schema
            versions = self.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id


class _Handler(BaseHTTPRequestHandler):
    server: _RegistryHTTPServer

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def log_message(self, format: str, *args: Any) -> None:
        # Keep pytest's output clean; the requests are recorded in the state instead.
        pass

    def _handle(self, method: str) -> None:
        state = self.server.state
        path = urlsplit(self.path).path
        state.requests.append((method, path))
        length = int(self.headers.get("Content-Length") or 0)
        body: Any = json.loads(self.rfile.read(length)) if length else {}
        if state.fail_with_status is not None:
            self._reply(state.fail_with_status, {"error_code": 50001, "message": "registry is failing"})
            return
        if method == "POST" and (match := _REGISTER.match(path)):
            schema_id = state.register(unquote(match.group(1)), body["schema"])
            self._reply(200, {"id": schema_id})
        elif method == "POST" and (match := _LOOKUP.match(path)):
            subject = unquote(match.group(1))
            for version, schema_id in enumerate(state.subjects.get(subject, []), start=1):
                if state.schemas[schema_id] == body["schema"]:
                    self._reply(
                        200,
                        {"subject": subject, "id": schema_id, "version": version, "schema": body["schema"]},
                    )
                    return
            self._reply(404, {"error_code": 40403, "message": "Schema not found"})
        elif method == "GET" and (match := _SCHEMA_BY_ID.match(path)):
            schema = state.schemas.get(int(match.group(1)))
            if schema is None:
                self._reply(404, {"error_code": 40403, "message": "Schema not found"})
            else:
                self._reply(200, {"schema": schema, "schemaType": "AVRO"})
        else:
            self._reply(404, {"error_code": 404, "message": f"no route {method} {path}"})

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _RegistryHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: RegistryState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


@dataclass(frozen=True)
class RunningRegistry:
    url: str
    state: RegistryState


@contextmanager
def running_schema_registry() -> Iterator[RunningRegistry]:
    """Serve a fresh registry on a free loopback port for the duration of the block."""
    state = RegistryState()
    server = _RegistryHTTPServer(state)
    # A short poll interval so that shutdown() returns in milliseconds, not half a second.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="schema-registry", daemon=True
    )
    thread.start()
    try:
        port = server.server_address[1]
        yield RunningRegistry(url=f"http://127.0.0.1:{port}", state=state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

"""ConnectClient against a real (tiny) HTTP server: retries on 409/503, errors that say what happened."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from connectors.connect_client import ConnectClient
from tidewire.errors import ConnectError


@dataclass
class ScriptedConnect:
    """Answers each request with the next scripted (status, body) for its method and path."""

    script: dict[tuple[str, str], list[tuple[int, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)

    def answer(self, method: str, path: str, *responses: tuple[int, Any]) -> None:
        self.script[(method, path)] = list(responses)

    def next(self, method: str, path: str) -> tuple[int, Any]:
        responses = self.script.get((method, path.split("?")[0]))
        if not responses:
            return 404, {"error_code": 404, "message": f"no route {method} {path}"}
        # The last response repeats forever.
        return responses.pop(0) if len(responses) > 1 else responses[0]


@pytest.fixture
def connect() -> Iterator[tuple[ScriptedConnect, str]]:
    scripted = ScriptedConnect()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            scripted.requests.append((self.command, self.path, body))
            status, payload = scripted.next(self.command, self.path)
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield scripted, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _client(url: str, retries: int = 3) -> ConnectClient:
    return ConnectClient(url, timeout_s=2, retries=retries, backoff_factor=0.01)


def test_put_config_is_retried_through_a_rebalance(connect: tuple[ScriptedConnect, str]) -> None:
    scripted, url = connect
    scripted.answer(
        "PUT",
        "/connectors/c1/config",
        (
            409,
            {"error_code": 409, "message": "Cannot complete request momentarily due to stale configuration"},
        ),
        (503, {"error_code": 503, "message": "worker starting"}),
        (201, {"name": "c1", "config": {"a": "b"}}),
    )
    assert _client(url).put_config("c1", {"a": "b"}) == {"name": "c1", "config": {"a": "b"}}
    assert [(m, p) for m, p, _ in scripted.requests] == [("PUT", "/connectors/c1/config")] * 3
    assert all(body == {"a": "b"} for _, _, body in scripted.requests)


def test_persistent_503_ends_in_one_line_error_with_the_server_message(
    connect: tuple[ScriptedConnect, str],
) -> None:
    scripted, url = connect
    scripted.answer("PUT", "/connectors/c1/pause", (503, {"error_code": 503, "message": "Request timed out"}))
    with pytest.raises(ConnectError) as caught:
        _client(url, retries=2).pause("c1")
    assert str(caught.value) == "Kafka Connect refused PUT /connectors/c1/pause: HTTP 503: Request timed out"
    assert len(scripted.requests) == 3  # the first try and two retries


def test_not_found_has_its_own_code_and_is_not_retried(connect: tuple[ScriptedConnect, str]) -> None:
    scripted, url = connect
    with pytest.raises(ConnectError, match="HTTP 404: no route GET /connectors/nope/status") as caught:
        _client(url).status("nope")
    assert caught.value.code == "connect_not_found"
    assert len(scripted.requests) == 1


def test_a_non_json_error_body_is_quoted_as_text(connect: tuple[ScriptedConnect, str]) -> None:
    scripted, url = connect
    scripted.answer("DELETE", "/connectors/c1", (400, "<html>bad request</html>"))
    with pytest.raises(ConnectError, match="HTTP 400: <html>bad request</html>"):
        _client(url).delete("c1")


def test_an_unreachable_worker_says_to_check_the_stack() -> None:
    with pytest.raises(ConnectError, match=r"unreachable .*tidewire status"):
        _client("http://127.0.0.1:9", retries=0).list_connectors()


def test_validate_collects_one_message_per_invalid_field(connect: tuple[ScriptedConnect, str]) -> None:
    scripted, url = connect
    scripted.answer(
        "PUT",
        "/connector-plugins/PostgresConnector/config/validate",
        (
            200,
            {
                "error_count": 1,
                "configs": [
                    {"value": {"name": "slot.name", "errors": []}},
                    {"value": {"name": "database.port", "errors": ["Invalid value x"]}},
                ],
            },
        ),
    )
    problems = _client(url).validate(
        "io.debezium.connector.postgresql.PostgresConnector", {"database.port": "x"}
    )
    assert problems == ["database.port: Invalid value x"]


def test_wait_until_running_waits_for_the_task_and_fails_fast_on_a_failed_one(
    connect: tuple[ScriptedConnect, str],
) -> None:
    scripted, url = connect
    running = {
        "name": "c1",
        "connector": {"state": "RUNNING", "worker_id": "w"},
        "tasks": [{"id": 0, "state": "RUNNING"}],
    }
    scripted.answer(
        "GET",
        "/connectors/c1/status",
        (404, {"message": "not yet"}),
        (200, {"name": "c1", "connector": {"state": "RUNNING", "worker_id": "w"}, "tasks": []}),
        (200, running),
    )
    state = _client(url).wait_until_running("c1", timeout_s=10)
    assert state.is_running and state.worker_id == "w"

    failed = {
        "name": "c2",
        "connector": {"state": "RUNNING", "worker_id": "w"},
        "tasks": [
            {
                "id": 0,
                "state": "FAILED",
                "trace": "org.apache.kafka.connect.errors.ConnectException: slot busy\n\tat x",
            }
        ],
    }
    scripted.answer("GET", "/connectors/c2/status", (200, failed))
    with pytest.raises(
        ConnectError,
        match=r"connector c2 failed: org\.apache\.kafka\.connect\.errors\.ConnectException: slot busy$",
    ):
        _client(url).wait_until_running("c2", timeout_s=10)


def test_restart_asks_for_failed_tasks_only(connect: tuple[ScriptedConnect, str]) -> None:
    scripted, url = connect
    scripted.answer("POST", "/connectors/c1/restart", (202, {"name": "c1"}))
    _client(url).restart("c1")
    assert scripted.requests[0][1] == "/connectors/c1/restart?includeTasks=true&onlyFailed=true"

"""``tidewire serve`` as the local stack's detached ``api`` service (tidewire/runtime/api_service.py)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import requests

from tests.unit.api.support import free_port, read_response, unfinished_head
from tidewire.errors import ServiceError
from tidewire.runtime.api_service import ApiService
from tidewire.runtime.processes import ProcessRegistry, stop_process_tree
from tidewire.runtime.state import StatePaths
from tidewire.settings import Settings


def test_starts_detached_becomes_ready_and_refuses_a_taken_port(
    api_settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    settings = api_settings.model_copy(update={"api": api_settings.api.model_copy(update={"port": port})})
    paths = StatePaths(tmp_path)
    registry = ProcessRegistry(paths.run)
    service = ApiService(settings, paths, registry)
    record = service.start()
    try:
        service.wait_ready(record)
        assert requests.get(f"{service.url}/healthz", timeout=5).json()["status"] == "ok"
        assert registry.get("api") is not None
        # `tidewire serve` lets even a 1 MB header reach the app, which answers a clean 401.
        huge = requests.get(
            f"{service.url}/v1/search",
            params={"q": "x"},
            headers={"Authorization": "Bearer " + "k" * 1_000_000},
            timeout=30,
        )
        assert huge.status_code == 401 and huge.json()["error"]["code"] == "unauthorized"
        # A head one byte past `api.max_header_bytes` gets 431 (unfinished, so the server has read all
        # of it when it answers and closes: see tests/unit/api/test_http_protocol.py).
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            connection.sendall(unfinished_head(settings.api.max_header_bytes + 1))
            status, _, body = read_response(connection)
        assert status == 431 and json.loads(body)["error"]["code"] == "request_header_fields_too_large"
        with pytest.raises(ServiceError, match="in use"):
            service.start()
    finally:
        process = record.process()
        if process is not None:
            stop_process_tree(process)
    assert not record.is_running()

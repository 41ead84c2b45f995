"""A small client of the Kafka Connect REST API, on ``requests`` with timeouts and retries."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from tidewire.errors import ConnectError

# Connect answers 409 while its group rebalances, and 5xx while a worker starts: both pass.
_RETRYABLE_STATUSES = (409, 500, 502, 503, 504)


@dataclass(frozen=True)
class ConnectorState:
    """The state of a connector and of each of its tasks, as Connect reports it."""

    name: str
    state: str
    worker_id: str | None
    tasks: list[dict[str, Any]]

    @property
    def is_running(self) -> bool:
        return (
            self.state == "RUNNING" and bool(self.tasks) and all(t["state"] == "RUNNING" for t in self.tasks)
        )

    @property
    def failed_traces(self) -> list[str]:
        return [task.get("trace", "") for task in self.tasks if task.get("state") == "FAILED"]


class ConnectClient:
    """Kafka Connect REST client; every call has a timeout and transient failures are retried."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        retries: int = 5,
        connect_retries: int = 1,
        backoff_factor: float = 0.5,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()
        retry = Retry(
            total=retries,
            # A worker that refuses connections is down, not rebalancing: say so at once instead of
            # after the whole backoff (15 s at the defaults).
            connect=min(connect_retries, retries),
            backoff_factor=backoff_factor,
            status_forcelist=_RETRYABLE_STATUSES,
            allowed_methods=frozenset({"GET", "PUT", "DELETE", "POST"}),
            raise_on_status=False,
        )
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.base_url}{path}"
        try:
            response = self.session.request(method, url, timeout=self.timeout_s, **kwargs)
        except requests.RequestException as error:
            raise ConnectError(
                f"Kafka Connect at {self.base_url} is unreachable ({type(error).__name__}); "
                "is the stack up (`tidewire status`)?"
            ) from None
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise ConnectError(
                f"Kafka Connect refused {method} {path}: HTTP {response.status_code}: {message[:300]}",
                code="connect_not_found" if response.status_code == 404 else "connect_error",
            )
        return response

    # -- connectors ------------------------------------------------------------------------
    def list_connectors(self) -> list[str]:
        return list(self._request("GET", "/connectors").json())

    def validate(self, connector_class: str, config: dict[str, str]) -> list[str]:
        """Ask the plugin to validate ``config``; return one message per invalid field."""
        plugin = connector_class.rsplit(".", 1)[-1]
        body = self._request("PUT", f"/connector-plugins/{plugin}/config/validate", json=config).json()
        problems = []
        for entry in body.get("configs", []):
            value = entry.get("value", {})
            for error in value.get("errors", []):
                problems.append(f"{value.get('name')}: {error}")
        return problems

    def put_config(self, name: str, config: dict[str, str]) -> dict[str, Any]:
        """Create the connector, or update its config: idempotent."""
        return dict(self._request("PUT", f"/connectors/{name}/config", json=config).json())

    def get_config(self, name: str) -> dict[str, str]:
        return dict(self._request("GET", f"/connectors/{name}/config").json())

    def status(self, name: str) -> ConnectorState:
        body = self._request("GET", f"/connectors/{name}/status").json()
        connector = body.get("connector", {})
        return ConnectorState(
            name=body.get("name", name),
            state=connector.get("state", "UNKNOWN"),
            worker_id=connector.get("worker_id"),
            tasks=list(body.get("tasks", [])),
        )

    def wait_until_running(self, name: str, *, timeout_s: float = 60.0) -> ConnectorState:
        """Poll the status until the connector and all its tasks run; fail fast on a FAILED task."""
        deadline = time.monotonic() + timeout_s
        state = self._status_or_unassigned(name)
        while not state.is_running:
            if state.failed_traces:
                first_line = state.failed_traces[0].strip().splitlines()[0] if state.failed_traces[0] else ""
                raise ConnectError(f"connector {name} failed: {first_line[:300]}")
            if time.monotonic() > deadline:
                raise ConnectError(f"connector {name} is {state.state}, not RUNNING, after {timeout_s:.0f}s")
            time.sleep(0.5)
            state = self._status_or_unassigned(name)
        return state

    def _status_or_unassigned(self, name: str) -> ConnectorState:
        # Right after a create, Connect has no status for the connector until a worker takes it.
        try:
            return self.status(name)
        except ConnectError as error:
            if error.code != "connect_not_found":
                raise
            return ConnectorState(name=name, state="UNASSIGNED", worker_id=None, tasks=[])

    def restart(self, name: str, *, only_failed: bool = True) -> None:
        params = {"includeTasks": "true", "onlyFailed": "true" if only_failed else "false"}
        self._request("POST", f"/connectors/{name}/restart", params=params)

    def pause(self, name: str) -> None:
        self._request("PUT", f"/connectors/{name}/pause")

    def resume(self, name: str) -> None:
        self._request("PUT", f"/connectors/{name}/resume")

    def delete(self, name: str) -> None:
        self._request("DELETE", f"/connectors/{name}")

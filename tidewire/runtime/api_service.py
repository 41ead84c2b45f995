"""The read API of the local stack: one detached ``tidewire serve``, service name ``api``.

It is ready when ``GET /healthz`` answers 200 (the process is up and its lifespan ran: pool opened,
model loaded). ``/readyz`` is stricter (Postgres reachable, notifications consumer assigned) and is
what a load balancer should watch; ``tidewire up`` only needs the process to be serving.
"""

from __future__ import annotations

import sys
from pathlib import Path

import requests

from tidewire.errors import ServiceError
from tidewire.runtime.processes import ProcessRecord, ProcessRegistry, read_log_tail, start_detached
from tidewire.runtime.readiness import NotReadyYet, port_is_free, wait_until_ready
from tidewire.runtime.state import StatePaths
from tidewire.settings import Settings

SERVICE_NAME = "api"
# The CLI entry point, run by the interpreter of this process (works without the console script).
SERVE_COMMAND = (sys.executable, "-c", "from tidewire.cli import run; run()", "serve")
STARTUP_TIMEOUT_S = 120.0


class ApiService:
    """Start, probe and wait for the API process of one state directory."""

    name = SERVICE_NAME

    def __init__(self, settings: Settings, paths: StatePaths, registry: ProcessRegistry) -> None:
        self.settings = settings
        self.paths = paths
        self.registry = registry

    @property
    def url(self) -> str:
        return self.settings.api.url

    def start(self) -> ProcessRecord:
        """Start ``tidewire serve`` detached; refuses when the port is taken by something else."""
        api = self.settings.api
        if not port_is_free(api.host, api.port):
            raise ServiceError(
                f"port {api.port} on {api.host} is in use; stop what listens there or set api.port "
                "(TIDEWIRE_API__PORT)"
            )
        # --stack marks the process as this stack's, so `down` finds it even without its pid record.
        command = [
            *SERVE_COMMAND,
            "--host",
            api.host,
            "--port",
            str(api.port),
            "--stack",
            str(self.paths.root),
        ]
        return start_detached(
            SERVICE_NAME,
            command,
            log_file=self.paths.log_file(SERVICE_NAME),
            registry=self.registry,
            working_dir=Path.cwd(),
        )

    def probe(self) -> None:
        """Raise :class:`NotReadyYet` unless ``/healthz`` answers 200."""
        try:
            response = requests.get(f"{self.url}/healthz", timeout=2)
        except requests.RequestException as error:
            raise NotReadyYet(f"{self.url}/healthz does not answer ({type(error).__name__})") from None
        if response.status_code != 200:
            raise NotReadyYet(f"{self.url}/healthz answered {response.status_code}")

    def wait_ready(self, record: ProcessRecord | None, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        reason = wait_until_ready(self.probe, timeout_s=timeout_s, process=record, interval_s=0.5)
        if reason is not None:
            log_file = self.paths.log_file(SERVICE_NAME)
            raise ServiceError(
                f"the API did not become ready: {reason}; see {log_file}\n{read_log_tail(log_file)}"
            )

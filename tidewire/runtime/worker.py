"""The stream workers of the local stack: ``settings.streams.workers`` detached ``tidewire worker``s.

Worker ``i`` is the service ``worker-<i>``; its Faust web server listens on ``streams.web_port + i``
and its metrics on ``streams.metrics_port + i``, so copies never fight over a port. A worker is
ready when its metrics endpoint reports ``tidewire_worker_ready 1``: the model is loaded and the
worker has joined the consumer group.
"""

from __future__ import annotations

import sys
from pathlib import Path

import requests

from tidewire.errors import ServiceError
from tidewire.runtime.processes import ProcessRecord, ProcessRegistry, read_log_tail, start_detached
from tidewire.runtime.readiness import NotReadyYet, wait_until_ready
from tidewire.runtime.state import StatePaths
from tidewire.settings import Settings

SERVICE_PREFIX = "worker-"
# The CLI entry point, run by the interpreter of this process (works without the console script).
WORKER_COMMAND = (sys.executable, "-c", "from tidewire.cli import run; run()", "worker")


class StreamWorkers:
    """Start, probe and name the worker processes of one state directory."""

    def __init__(self, settings: Settings, paths: StatePaths, registry: ProcessRegistry) -> None:
        self.settings = settings
        self.paths = paths
        self.registry = registry

    def names(self) -> list[str]:
        return [f"{SERVICE_PREFIX}{index}" for index in range(self.settings.streams.workers)]

    def ports(self, name: str) -> tuple[int | None, int | None]:
        """(web port, metrics port) of worker ``name``; None where the setting turns it off."""
        index = int(name.removeprefix(SERVICE_PREFIX))
        streams = self.settings.streams
        web = streams.web_port + index if streams.web_port else None
        metrics = streams.metrics_port + index if streams.metrics_port else None
        return web, metrics

    def start(self, name: str) -> ProcessRecord:
        web, metrics = self.ports(name)
        command = [
            *WORKER_COMMAND,
            "--web-port", str(web or 0),
            "--metrics-port", str(metrics or 0),
            # Marks the process as this stack's, so `down` finds it even without its pid record.
            "--stack", str(self.paths.root),
        ]  # fmt: skip
        return start_detached(
            name, command, log_file=self.paths.log_file(name), registry=self.registry, working_dir=Path.cwd()
        )

    def wait_ready(self, name: str, record: ProcessRecord | None) -> None:
        reason = wait_until_ready(
            lambda: self.probe(name),
            timeout_s=self.settings.streams.startup_timeout_s,
            process=record,
            interval_s=0.5,
        )
        if reason is not None:
            log_file = self.paths.log_file(name)
            raise ServiceError(
                f"{name} did not become ready: {reason}; see {log_file}\n{read_log_tail(log_file)}"
            )

    def probe(self, name: str) -> None:
        """Raise :class:`NotReadyYet` unless the worker reports itself ready."""
        _, metrics = self.ports(name)
        if metrics is None:
            # Without a metrics endpoint a live process is all there is to check.
            record = self.registry.get(name)
            if record is None or not record.is_running():
                raise NotReadyYet("not running")
            return
        try:
            response = requests.get(f"http://127.0.0.1:{metrics}/metrics", timeout=2)
        except requests.RequestException as error:
            raise NotReadyYet(
                f"metrics endpoint :{metrics} does not answer ({type(error).__name__})"
            ) from None
        if "\ntidewire_worker_ready 1.0" not in "\n" + response.text:
            raise NotReadyYet("loading the model or joining the consumer group")

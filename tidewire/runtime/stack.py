"""The local stack: start, stop and report Postgres, Kafka, Kafka Connect, the stream workers and the API as one unit."""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

from tidewire.errors import PrerequisiteError, TidewireError
from tidewire.runtime.api_service import ApiService
from tidewire.runtime.connect import ConnectWorker
from tidewire.runtime.jars import JarLayout
from tidewire.runtime.kafka import KafkaBroker
from tidewire.runtime.postgres import PostgresServer, is_postmaster_of
from tidewire.runtime.prerequisites import find_java, require_free_ports
from tidewire.runtime.processes import ProcessRegistry, stop_process_tree
from tidewire.runtime.readiness import NotReadyYet
from tidewire.runtime.stack_lock import stack_lock
from tidewire.runtime.state import StatePaths
from tidewire.runtime.worker import StreamWorkers
from tidewire.settings import Settings

ProgressCallback = Callable[[str], None]

RUNNING = "running"
STOPPED = "stopped"
UNRESPONSIVE = "unresponsive"


@dataclass
class StartReport:
    """What `up` did: services started now, services found running, stale records cleaned."""

    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)
    cleaned_stale: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class LocalStack:
    """Postgres, Kafka and Connect of one state directory, started in that order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths = StatePaths(settings.state_dir)
        self.registry = ProcessRegistry(self.paths.run)
        self.jars = JarLayout(settings.jars_dir)
        self.postgres = PostgresServer(settings.postgres, self.paths)
        self.kafka = KafkaBroker(settings.kafka, self.paths, self.jars, self.registry)
        self.connect = ConnectWorker(settings.connect, settings.kafka, self.paths, self.jars, self.registry)
        self.workers = StreamWorkers(settings, self.paths, self.registry)
        self.api = ApiService(settings, self.paths, self.registry)

    # -- up ------------------------------------------------------------------------------------
    def up(self, progress: ProgressCallback = lambda _: None) -> StartReport:
        """Start whatever is not running, in order, each waited for; undo this call's starts on failure.

        1. Prerequisites: a JDK, resolved jars, free ports for what must start.
        2. Postgres: start (or find running), bootstrap roles and database, apply migrations.
        3. Kafka: start (formatting its storage the first time) and wait for metadata.
        4. Kafka Connect: start and wait for the Debezium plugin to be listed.
        5. Stream workers: start ``streams.workers`` of them, each waited for until it joined its group.
        6. The read API: start ``tidewire serve`` and wait for ``/healthz``.

        A service found running is waited for until it answers, so ``up`` never returns while one
        is unresponsive. Another ``up`` or ``down`` of the same state directory running meanwhile is
        a :class:`ServiceError` (:mod:`tidewire.runtime.stack_lock`).
        """
        with stack_lock(self.paths.stack_lock, "up"):
            return self._up(progress)

    def _up(self, progress: ProgressCallback) -> StartReport:
        report = StartReport()
        # 1. Prerequisites
        java = find_java()
        self.jars.require_resolved()
        self.paths.create()
        report.cleaned_stale = self._forget_stale_records()
        running = {name for name, state in self.service_states().items() if state != STOPPED}
        self._require_ports_for(set(self.service_names()) - running)
        started_now: list[str] = []
        try:
            # 2. Postgres
            # A running server is bootstrapped again: roles added by a newer version (the API's)
            # exist before the migrations grant to them, and passwords follow the settings.
            self._step(
                "postgres", running, report, progress, started_now,
                lambda: self.postgres.start(),
                when_running=self.postgres.bootstrap,
            )  # fmt: skip
            progress("postgres: migrations")
            # Imported here: Alembic and SQLAlchemy cost a second of start-up every other command can skip.
            from tidewire import database

            database.upgrade(self.settings.postgres)
            # 3. Kafka
            self._step(
                "kafka", running, report, progress, started_now,
                lambda: self.kafka.wait_ready(self.kafka.start(java)),
                when_running=lambda: self.kafka.wait_ready(self.registry.get("kafka")),
            )  # fmt: skip
            # 4. Kafka Connect
            self._step(
                "connect", running, report, progress, started_now,
                lambda: self.connect.wait_ready(self.connect.start(java)),
                when_running=lambda: self.connect.wait_ready(self.registry.get("connect")),
            )  # fmt: skip
            # 5. Stream workers
            self._start_workers(report, progress, started_now)
            # 6. The read API
            self._step(
                "api", running, report, progress, started_now,
                lambda: self.api.wait_ready(self.api.start()),
                when_running=lambda: self.api.wait_ready(self.registry.get("api")),
            )  # fmt: skip
        except (TidewireError, KeyboardInterrupt):
            # Nothing half-started stays behind: stop what this call started, newest first.
            for name in reversed(started_now):
                self._stop_service(name)
            raise
        return report

    def _step(
        self,
        name: str,
        running: set[str],
        report: StartReport,
        progress: ProgressCallback,
        started_now: list[str],
        start: Callable[[], None],
        when_running: Callable[[], None] | None = None,
    ) -> None:
        """Start ``name`` unless it runs; a running one is still waited for when ``when_running`` says how."""
        if name in running:
            report.already_running.append(name)
            progress(f"{name}: already running")
            if when_running is not None:
                when_running()
            return
        progress(f"{name}: starting")
        began = time.monotonic()
        started_now.append(name)
        start()
        report.started.append(name)
        report.seconds[name] = round(time.monotonic() - began, 1)
        progress(f"{name}: ready in {report.seconds[name]}s")

    # -- stream workers (tidewire/runtime/worker.py) ----------------------------------------
    def _start_workers(self, report: StartReport, progress: ProgressCallback, started_now: list[str]) -> None:
        running = {name for name, state in self.worker_states().items() if state != STOPPED}
        ports: dict[str, tuple[str, int]] = {}
        for name in set(self.workers.names()) - running:
            web, metrics = self.workers.ports(name)
            ports.update({f"{name} streams.web_port": ("127.0.0.1", web)} if web else {})
            ports.update({f"{name} streams.metrics_port": ("127.0.0.1", metrics)} if metrics else {})
        require_free_ports(ports)
        for name in self.workers.names():
            self._step(
                name, running, report, progress, started_now,
                lambda name=name: self.workers.wait_ready(name, self.workers.start(name)),  # type: ignore[misc]
                when_running=lambda name=name: self.workers.wait_ready(name, self.registry.get(name)),  # type: ignore[misc]
            )  # fmt: skip

    def worker_states(self) -> dict[str, str]:
        """State of each configured worker, and of any worker still recorded beyond that count."""
        names = sorted(
            {*self.workers.names(), *(name for name in self.registry.names() if name.startswith("worker-"))}
        )
        states: dict[str, str] = {}
        for name in names:
            record = self.registry.get(name)
            if record is None or not record.is_running():
                states[name] = STOPPED
                continue
            try:
                self.workers.probe(name)
                states[name] = RUNNING
            except NotReadyYet:
                states[name] = UNRESPONSIVE
        return states

    def _forget_stale_records(self) -> list[str]:
        stale = []
        for name in self.registry.names():
            record = self.registry.get(name)
            if record is not None and not record.is_running():
                self.registry.forget(name)
                stale.append(name)
        return stale

    def _require_ports_for(self, services: set[str]) -> None:
        ports: dict[str, tuple[str, int]] = {}
        settings = self.settings
        if "postgres" in services:
            ports["postgres.port"] = (settings.postgres.host, settings.postgres.port)
        if "kafka" in services:
            ports["kafka.port"] = (settings.kafka.host, settings.kafka.port)
            ports["kafka.controller_port"] = (settings.kafka.host, settings.kafka.controller_port)
        if "connect" in services:
            ports["connect.port"] = (settings.connect.host, settings.connect.port)
        if "api" in services:
            ports["api.port"] = (settings.api.host, settings.api.port)
        require_free_ports(ports)

    # -- down ----------------------------------------------------------------------------------
    def down(self, *, purge: bool = False, progress: ProgressCallback = lambda _: None) -> list[str]:
        """Stop every service (newest first) and any stray process of this state directory; refused
        while another ``up`` or ``down`` of it runs."""
        if not self.paths.run.exists():
            # No `up` ever ran here (it makes this folder before anything else): there is nothing
            # to lock, and the state directory is not created just to hold a lock file.
            return self._down(purge=purge, progress=progress)
        with stack_lock(self.paths.stack_lock, "down"):
            return self._down(purge=purge, progress=progress)

    def _down(self, *, purge: bool, progress: ProgressCallback) -> list[str]:
        stopped = []
        for name in [*self.worker_states(), *reversed(self.service_names())]:
            if self._stop_service(name):
                stopped.append(name)
                progress(f"{name}: stopped")
        for process in self._stray_processes():
            stop_process_tree(process, timeout_s=10)
        if purge:
            shutil.rmtree(self.paths.root, ignore_errors=True)
            shutil.rmtree(self.paths.postgres_socket_dir, ignore_errors=True)
            progress(f"removed {self.paths.root}")
        return stopped

    def _stop_service(self, name: str) -> bool:
        if name == "postgres":
            return self.postgres.stop()
        record = self.registry.get(name)
        if record is None:
            return False
        process = record.process()
        if process is not None:
            stop_process_tree(process, timeout_s=30)
        self.registry.forget(name)
        return process is not None

    def _stray_processes(self) -> list[psutil.Process]:
        """Processes tagged with this state directory (JVMs, stream workers, the API) or serving its
        Postgres data. Whole arguments are compared, so another state directory whose path merely
        starts with this one's (``.tidewire2``), or an editor open on a file of it, is never taken."""
        return [
            process
            for process in psutil.process_iter(["cmdline"])
            if is_stack_process(process.info.get("cmdline") or [], self.paths)
        ]

    # -- status --------------------------------------------------------------------------------
    @staticmethod
    def service_names() -> list[str]:
        return ["postgres", "kafka", "connect", "api"]

    def service_states(self) -> dict[str, str]:
        states: dict[str, str] = {}
        states["postgres"] = RUNNING if self.postgres.status().running else STOPPED
        for name, probe in (
            ("kafka", self.kafka.probe),
            ("connect", self.connect.probe),
            ("api", self.api.probe),
        ):
            record = self.registry.get(name)
            if record is None or not record.is_running():
                states[name] = STOPPED
                continue
            try:
                probe()
                states[name] = RUNNING
            except NotReadyYet:
                states[name] = UNRESPONSIVE
        return states

    def status(self) -> dict[str, Any]:
        """The document `tidewire status --json` prints (keys are a documented contract)."""
        settings = self.settings
        postgres = settings.postgres
        return {
            "postgres_dsn": f"postgresql://{postgres.user}@{postgres.host}:{postgres.port}/{postgres.database}",
            "kafka_bootstrap": settings.kafka.bootstrap,
            "connect_url": settings.connect.url,
            "api_url": settings.api.url,
            "state_dir": str(self.paths.root),
            "services": {**self.service_states(), **self.worker_states()},
            "logs": {
                name: str(self.paths.log_file(name))
                for name in [*self.service_names(), *self.worker_states()]
            },
        }

    def require_running(self) -> None:
        down = [name for name, state in self.service_states().items() if state != RUNNING]
        if down:
            raise PrerequisiteError(f"not running: {', '.join(down)}; start the stack with `tidewire up`")


def is_stack_process(arguments: Sequence[str], paths: StatePaths) -> bool:
    """Whether a command line (``arguments``) is one of the stack of ``paths``: a JVM started with
    ``-Dtidewire.state=<root>``, a worker or the API started with ``--stack <root>``, or the
    postgres server of its data directory (``-D <data>``)."""
    root = str(paths.root)
    if f"-Dtidewire.state={root}" in arguments:
        return True
    if ("--stack", root) in itertools.pairwise(arguments):
        return True
    return is_postmaster_of(arguments, paths.postgres_data)

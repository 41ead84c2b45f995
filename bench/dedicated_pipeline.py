"""The pipeline the benchmark measures: a table, a pipeline and workers of its own, removed afterwards.

The benchmark never writes to the user's tables. It creates ``public.tidewire_bench_documents``
(the columns of ``documents``), declares it as the pipeline ``tidewire-bench`` next to the user's
pipelines (the one connector then captures it too), and runs ``tidewire worker`` processes that
serve only that pipeline, in their own consumer group and with their own ingest, notification and
dead-letter topics (topic prefix ``<prefix>-bench``), so no notification reaches the user's
webhooks or SSE clients and no ingest event of the user reaches the bench table. The stack's own
workers keep serving the user's pipelines and stay idle unless the user writes meanwhile.

:meth:`DedicatedPipeline.remove` undoes all of it: workers stopped, the connector and publication
back to the user's pipelines, the table dropped, the pipeline's vectors and document states
deleted, its topics and consumer group deleted. It also runs before the set-up, so a run that was
killed half-way leaves nothing that disturbs the next one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from bench.errors import BenchmarkError
from connectors.apply import apply_connectors
from streams.offsets import reset_offsets
from streams.topics import ensure_topics, worker_topics
from tidewire.errors import ServiceError
from tidewire.kafka_clients import admin_client
from tidewire.pipeline_spec import PipelineSpec
from tidewire.runtime.processes import read_log_tail
from tidewire.runtime.state import StatePaths
from tidewire.settings import Settings

BENCH_PIPELINE = "tidewire-bench"
BENCH_TABLE = "public.tidewire_bench_documents"
BENCH_TENANT = "tidewire-bench"
# The columns of the default `documents` table: the benchmark measures the default pipeline's work.
_CREATE_TABLE = f"""
CREATE TABLE {BENCH_TABLE} (
  id         text PRIMARY KEY,
  tenant_id  text NOT NULL DEFAULT 'default',
  title      text,
  body       text,
  metadata   jsonb NOT NULL DEFAULT '{{}}',
  updated_at timestamptz NOT NULL DEFAULT now()
)
"""
_WORKER_STOP_TIMEOUT_S = 30.0
_KAFKA_TIMEOUT_S = 30.0


def bench_settings(settings: Settings) -> Settings:
    """The settings of the benchmark's workers: only the bench pipeline, its own group and topics."""
    spec = PipelineSpec(name=BENCH_PIPELINE, source_table=BENCH_TABLE)
    return settings.model_copy(
        update={
            "pipelines": [spec],
            "streams": settings.streams.model_copy(
                update={"app_id": f"{settings.streams.app_id}-bench", "webhooks": []}
            ),
            "topics": settings.topics.model_copy(update={"prefix": f"{settings.topics.prefix}-bench"}),
        }
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class BenchWorker:
    """One ``tidewire worker`` process of the bench pipeline."""

    popen: subprocess.Popen[bytes]
    metrics_port: int
    log_file: Path

    def is_ready(self) -> bool:
        try:
            text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except requests.RequestException:
            return False
        return "\ntidewire_worker_ready 1.0" in "\n" + text


@dataclass
class DedicatedPipeline:
    """Set up, serve and remove the benchmark's own pipeline on a running stack."""

    settings: Settings  # the user's settings, as the CLI read them
    config_file: Path | None = None  # the --config the CLI got, passed on to the workers
    progress: Callable[[str], None] = lambda _message: None
    workers: list[BenchWorker] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.worker_settings = bench_settings(self.settings)
        self.spec = self.worker_settings.pipelines[0]
        self.cdc_topic = worker_topics(self.worker_settings)[0]

    @property
    def group(self) -> str:
        """The consumer group of the bench workers (its lag is the benchmark's lag)."""
        return self.worker_settings.streams.app_id

    # -- set-up ---------------------------------------------------------------------------------
    def set_up(self, worker_count: int) -> None:
        """Everything the benchmark needs, on the running stack (call :meth:`remove` first, for leftovers).

        1. Refuse if the user's own settings already use the bench pipeline's name or table.
        2. Create the table; add it to the connector (publication and captured tables).
        3. Create the bench topics; the bench group starts at their end.
        4. Start ``worker_count`` workers and wait until each has loaded the model and joined.
        """
        # 1. Collisions
        for pipeline in self.settings.pipelines:
            if pipeline.name == BENCH_PIPELINE or pipeline.source_table == BENCH_TABLE:
                raise BenchmarkError(
                    f"pipeline {pipeline.name!r} ({pipeline.source_table}) is the benchmark's own "
                    f"({BENCH_PIPELINE}, {BENCH_TABLE}); rename it in tidewire.toml to run the benchmark"
                )
        # 2. Table and connector
        self.progress(f"creating {BENCH_TABLE} and adding it to the connector")
        self._execute(_CREATE_TABLE)
        apply_connectors(self._connector_settings())
        # 3. Topics and offsets
        topics = worker_topics(self.worker_settings)
        created = ensure_topics(self.worker_settings, topics)
        # New topics are empty, so the group starts at their end anyway (and a topic this new may
        # not answer offset requests yet); topics left by an earlier run may hold its events.
        left_over = [topic for topic in topics if topic not in created]
        if left_over:
            reset_offsets(self.worker_settings, self.group, left_over, "latest")
        # 4. Workers
        for index in range(worker_count):
            self.progress(f"starting bench worker {index + 1}/{worker_count}")
            self.workers.append(self._start_worker(index))
        for worker in self.workers:
            self._wait_ready(worker)

    def _connector_settings(self) -> Settings:
        return self.settings.model_copy(update={"pipelines": [*self.settings.pipelines, self.spec]})

    def _start_worker(self, index: int) -> BenchWorker:
        port = _free_port()
        log_file = StatePaths(self.settings.state_dir).log_file(f"bench-worker-{index}")
        log_file.parent.mkdir(parents=True, exist_ok=True)
        streams = self.worker_settings.streams
        environment = {
            **os.environ,
            # Highest precedence after keyword arguments: these override the user's file and env.
            "TIDEWIRE_PIPELINES": json.dumps([self.spec.model_dump(mode="json")]),
            "TIDEWIRE_STREAMS__APP_ID": streams.app_id,
            "TIDEWIRE_STREAMS__WEBHOOKS": "[]",
            "TIDEWIRE_TOPICS__PREFIX": self.worker_settings.topics.prefix,
        }
        config = ["--config", str(self.config_file)] if self.config_file else []
        command = [
            sys.executable, "-c", "from tidewire.cli import run; run()", *config,
            "worker", "--web-port", "0", "--metrics-port", str(port),
            # Marks it as this stack's: `tidewire down` stops it should the benchmark die first.
            "--stack", str(self.settings.state_dir),
        ]  # fmt: skip
        with open(log_file, "ab") as log:
            popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=environment,
            )
        return BenchWorker(popen=popen, metrics_port=port, log_file=log_file)

    def _wait_ready(self, worker: BenchWorker) -> None:
        timeout_s = self.settings.streams.startup_timeout_s
        deadline = time.monotonic() + timeout_s
        while not worker.is_ready():
            if worker.popen.poll() is not None:
                raise BenchmarkError(
                    f"a bench worker exited with status {worker.popen.returncode}; see {worker.log_file}\n"
                    f"{read_log_tail(worker.log_file)}"
                )
            if time.monotonic() > deadline:
                raise BenchmarkError(
                    f"a bench worker was not ready after {timeout_s:.0f}s; see {worker.log_file}"
                )
            time.sleep(0.5)

    # -- removal --------------------------------------------------------------------------------
    def stop_workers(self) -> None:
        """SIGTERM every bench worker (its process group), SIGKILL after a grace period."""
        for worker in self.workers:
            if worker.popen.poll() is None:
                os.killpg(worker.popen.pid, signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.popen.wait(timeout=_WORKER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(worker.popen.pid, signal.SIGKILL)
                worker.popen.wait(timeout=10)
        self.workers = []

    def remove(self) -> None:
        """Undo the set-up (idempotent; see the module docstring), leaving the user's pipelines as they were.

        1. Stop the workers.
        2. Connector and publication back to the user's pipelines (only if the bench table is captured).
        3. Drop the table; delete the pipeline's vectors and document states.
        4. Delete the bench topics and the consumer group.
        """
        # 1. Workers
        self.stop_workers()
        # 2. Connector
        if self._table_exists():
            self.progress("removing the bench table from the connector")
            apply_connectors(self.settings)
        # 3. Table and vectors
        self._execute(f"DROP TABLE IF EXISTS {BENCH_TABLE}")
        self._execute("DELETE FROM public.tidewire_chunks WHERE pipeline = %s", (BENCH_PIPELINE,))
        self._execute("DELETE FROM public.tidewire_document_state WHERE pipeline = %s", (BENCH_PIPELINE,))
        # 4. Kafka
        self._delete_topics_and_group()

    def _table_exists(self) -> bool:
        with self._connect() as connection:
            row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (BENCH_TABLE,)).fetchone()
        return bool(row and row[0])

    def _delete_topics_and_group(self) -> None:
        admin = admin_client(self.settings.kafka.bootstrap)
        try:
            existing = set(admin.list_topics(timeout=_KAFKA_TIMEOUT_S).topics)
            topics = [topic for topic in worker_topics(self.worker_settings) if topic in existing]
            if topics:
                for future in admin.delete_topics(topics, operation_timeout=_KAFKA_TIMEOUT_S).values():
                    future.result()
                self._wait_until_deleted(admin, topics)
            groups = admin.delete_consumer_groups([self.group], request_timeout=_KAFKA_TIMEOUT_S)
            for future in groups.values():
                try:
                    future.result()
                except KafkaException as error:
                    # Never committed: nothing to delete. Still has members (a worker that was
                    # killed): the broker drops them after the session timeout, and the next run
                    # moves the group's offsets to the end anyway.
                    if error.args[0].code() not in (
                        KafkaError.GROUP_ID_NOT_FOUND,
                        KafkaError.NON_EMPTY_GROUP,
                    ):
                        raise
        except KafkaException as error:
            raise ServiceError(
                f"cannot remove the benchmark's topics or consumer group {self.group} from Kafka at "
                f"{self.settings.kafka.bootstrap}: {error.args[0].str()}"
            ) from None

    @staticmethod
    def _wait_until_deleted(admin: AdminClient, topics: list[str]) -> None:
        # Deletion completes asynchronously; a set-up right after must not find the old topics.
        deadline = time.monotonic() + _KAFKA_TIMEOUT_S
        while set(topics) & set(admin.list_topics(timeout=_KAFKA_TIMEOUT_S).topics):
            if time.monotonic() > deadline:
                raise BenchmarkError(
                    f"Kafka has not deleted the topics {', '.join(topics)} after {_KAFKA_TIMEOUT_S:.0f}s"
                )
            time.sleep(0.5)

    # -- database -------------------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        try:
            return psycopg.connect(self.settings.postgres.dsn(), autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as error:
            raise ServiceError.postgres_unreachable(self.settings.postgres, error) from None

    def _execute(self, statement: str, parameters: tuple[object, ...] | None = None) -> None:
        with self._connect() as connection:
            connection.execute(statement, parameters)

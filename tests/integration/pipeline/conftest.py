"""Stream workers of the pipeline tests, each group with its own consumer group and pipeline name.

The shared stack (session ``local_stack``) may run its own ``worker-0`` on the default pipeline;
these tests never touch it. A :class:`WorkerGroup` writes a ``tidewire.toml`` that declares a
pipeline with a unique name over ``public.documents`` and a unique ``streams.app_id``, so its
vectors (``tidewire_chunks.pipeline = <name>``) and its offsets are its own, then runs real
``tidewire worker`` processes with it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from models.build import require_manifest
from models.chunking import TextChunker
from models.tokenizer import TextTokenizer
from streams.document_text import build_text
from streams.offsets import reset_offsets
from tests.conftest import REPO_ROOT
from tests.integration.conftest import TIDEWIRE, forget_pipeline_rows, fresh_test_prefix
from tidewire.pipeline_spec import PipelineSpec
from tidewire.runtime.stack import LocalStack
from tidewire.settings import Settings

WORKER_READY_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(predicate: Callable[[], Any], *, timeout_s: float, what: str, interval_s: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


@dataclass
class WorkerProcess:
    popen: subprocess.Popen[bytes]
    metrics_port: int
    log_file: Path

    def metric(self, name: str, **labels: str) -> float:
        """Current value of a sample (0 when absent); counters by their ``_total`` name."""
        text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0

    def is_ready(self) -> bool:
        try:
            return self.metric("tidewire_worker_ready") == 1.0
        except requests.RequestException:
            return False

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-4000:]


@dataclass
class WorkerGroup:
    """Workers of one consumer group over one test pipeline (``public.documents``)."""

    directory: Path
    settings: Settings
    pipeline: str
    app_id: str
    extra_toml: str = ""
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def config_file(self) -> Path:
        return self.directory / f"{self.app_id}.toml"

    def write_config(self) -> None:
        self.config_file.write_text(
            f'[streams]\napp_id = "{self.app_id}"\nbatch_max_wait_s = 0.05\n'
            "retry_attempts = 4\nretry_initial_backoff_s = 0.2\nretry_max_backoff_s = 1.0\n"
            f"{self.extra_toml}\n"
            f'[[pipelines]]\nname = "{self.pipeline}"\nsource_table = "public.documents"\n'
        )

    def environment(self) -> dict[str, str]:
        """Variables for a ``tidewire`` process of this group (a worker, or a command such as replay).

        The group's config file replaces the session's (``TIDEWIRE_CONFIG``), so the session stack's
        address and credentials go along as variables, which outrank any file: without them a
        session whose stack runs on other ports would send its workers to the default stack.
        """
        postgres = self.settings.postgres
        return {
            "TIDEWIRE_CONFIG": str(self.config_file),
            "TIDEWIRE_STATE_DIR": str(self.settings.state_dir),
            "TIDEWIRE_POSTGRES__HOST": postgres.host,
            "TIDEWIRE_POSTGRES__PORT": str(postgres.port),
            "TIDEWIRE_POSTGRES__DATABASE": postgres.database,
            "TIDEWIRE_POSTGRES__USER": postgres.user,
            "TIDEWIRE_POSTGRES__PASSWORD": postgres.password.get_secret_value(),
            "TIDEWIRE_KAFKA__BOOTSTRAP_SERVERS": self.settings.kafka.bootstrap,
        }

    def start(self, *, wait: bool = True) -> WorkerProcess:
        if not self.config_file.exists():
            self.write_config()
        if not self.workers:
            # A new group would start from the beginning of the shared topics; the tests only
            # need their own changes, so the group starts at the end.
            topics = self.settings.topics
            reset_offsets(
                self.settings,
                self.app_id,
                [topics.cdc_topic("public", "documents"), topics.ingest, topics.notifications],
                "latest",
            )
        port = free_port()
        log_file = self.directory / f"{self.app_id}-worker-{len(self.workers)}.log"
        with open(log_file, "ab") as log:
            popen = subprocess.Popen(
                [TIDEWIRE, "worker", "--web-port", "0", "--metrics-port", str(port)],
                cwd=REPO_ROOT,
                env={**os.environ, **self.environment()},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = WorkerProcess(popen=popen, metrics_port=port, log_file=log_file)
        self.workers.append(worker)
        if wait:
            self.wait_ready(worker)
        return worker

    def wait_ready(self, worker: WorkerProcess) -> None:
        deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
        while not worker.is_ready():
            if worker.popen.poll() is not None:
                pytest.fail(f"worker exited with {worker.popen.returncode}:\n{worker.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"worker not ready after {WORKER_READY_TIMEOUT_S}s:\n{worker.log()}")
            time.sleep(0.3)

    def kill(self, worker: WorkerProcess, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the worker; after a SIGTERM it gets 20 s before the SIGKILL."""
        if worker.popen.poll() is not None:
            return
        os.killpg(worker.popen.pid, sig)
        try:
            worker.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.popen.pid, signal.SIGKILL)
            worker.popen.wait(timeout=20)

    def stop_all(self) -> None:
        for worker in self.workers:
            if worker.popen.poll() is None:
                self.kill(worker, signal.SIGTERM)


@pytest.fixture(scope="session")
def worker_group_factory(
    local_stack: LocalStack, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., WorkerGroup]]:
    """Make a :class:`WorkerGroup` (unique pipeline and consumer group); all are stopped at the end."""
    groups: list[WorkerGroup] = []
    directory = tmp_path_factory.mktemp("workers")

    def make(extra_toml: str = "") -> WorkerGroup:
        suffix = uuid.uuid4().hex[:10]
        group = WorkerGroup(
            directory=directory,
            settings=settings,
            pipeline=f"itest-{suffix}",
            app_id=f"tidewire-itest-{suffix}",
            extra_toml=extra_toml,
        )
        groups.append(group)
        return group

    yield make
    for group in groups:
        group.stop_all()
        forget_pipeline_rows(settings, group.pipeline)


@pytest.fixture(scope="module")
def worker_group(worker_group_factory: Callable[..., WorkerGroup]) -> Iterator[WorkerGroup]:
    """One running worker shared by the tests of a module."""
    group = worker_group_factory()
    group.start()
    yield group
    group.stop_all()


@pytest.fixture(scope="session")
def db(local_stack: LocalStack, settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="session")
def chunker(settings: Settings) -> TextChunker:
    directory, manifest = require_manifest(settings.embedding.model_dir, settings.embedding.model_id)
    tokenizer = TextTokenizer(directory / manifest.tokenizer_file, manifest.max_tokens)
    spec = PipelineSpec()
    return TextChunker(
        tokenizer, chunk_tokens=spec.chunking.max_tokens, overlap_tokens=spec.chunking.overlap_tokens
    )


@pytest.fixture
def new_id() -> Callable[[str], str]:
    prefix = fresh_test_prefix()
    return lambda name: f"{prefix}{name}"


@dataclass(frozen=True)
class IndexState:
    """What the vector table holds for one document of one pipeline."""

    chunks: list[str]
    metadata: dict[str, Any] | None
    tenant_id: str | None
    source_lsn: int | None
    indexed_at: Any
    deleted: bool | None


def index_state(db: psycopg.Connection[Any], pipeline: str, document_id: str) -> IndexState:
    chunks = db.execute(
        "SELECT chunk_text, metadata, tenant_id FROM tidewire_chunks"
        " WHERE pipeline = %s AND document_id = %s ORDER BY chunk_index",
        (pipeline, document_id),
    ).fetchall()
    state = db.execute(
        "SELECT source_lsn, indexed_at, deleted, tenant_id FROM tidewire_document_state"
        " WHERE pipeline = %s AND document_id = %s",
        (pipeline, document_id),
    ).fetchone()
    return IndexState(
        chunks=[row[0] for row in chunks],
        metadata=chunks[0][1] if chunks else None,
        tenant_id=state[3] if state else None,
        source_lsn=state[0] if state else None,
        indexed_at=state[1] if state else None,
        deleted=state[2] if state else None,
    )


def expected_chunks(db: psycopg.Connection[Any], chunker: TextChunker, document_id: str) -> list[str] | None:
    """A fresh chunking of the document's current text; None when the row does not exist."""
    row = db.execute("SELECT title, body FROM public.documents WHERE id = %s", (document_id,)).fetchone()
    if row is None:
        return None
    text = build_text(PipelineSpec(), {"title": row[0], "body": row[1]})
    return [chunk.text for chunk in chunker.chunk(text)]


def index_matches_source(
    db: psycopg.Connection[Any],
    chunker: TextChunker,
    pipeline: str,
    document_ids: list[str],
    *,
    present: bool,
) -> bool:
    """Every document's chunks equal a fresh chunking of its current text (none for a missing row);
    ``present``: the rows must exist (so a row not written yet does not count as "deleted")."""
    for document_id in document_ids:
        expected = expected_chunks(db, chunker, document_id)
        state = index_state(db, pipeline, document_id)
        if expected is None and present:
            return False
        if expected is None:
            if state.chunks or state.deleted is False:
                return False
        elif state.chunks != expected or state.source_lsn is None:
            return False
    return True


def wait_until_indexed(
    db: psycopg.Connection[Any],
    chunker: TextChunker,
    pipeline: str,
    document_ids: list[str],
    *,
    timeout_s: float = 90,
    present: bool = True,
) -> None:
    wait_for(
        lambda: index_matches_source(db, chunker, pipeline, document_ids, present=present),
        timeout_s=timeout_s,
        what=f"{len(document_ids)} documents of {pipeline} to match the source table",
        interval_s=0.3,
    )


class TopicTail:
    """Messages produced to a topic after this object was created (read without a consumer group)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.topic = topic
        self._consumer = Consumer(
            {"bootstrap.servers": settings.kafka.bootstrap, "group.id": f"itest-tail-{uuid.uuid4().hex[:8]}",
             "enable.auto.commit": False}
        )  # fmt: skip
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        starts = []
        for partition in partitions:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            starts.append(TopicPartition(topic, partition, high))
        self._consumer.assign(starts)
        self.messages: list[Any] = []

    def collect(self, predicate: Callable[[list[Any]], bool], *, timeout_s: float, what: str) -> list[Any]:
        """Read until ``predicate(messages so far)`` holds; fail at the deadline."""
        deadline = time.monotonic() + timeout_s
        while not predicate(self.messages):
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what} on {self.topic}")
            message = self._consumer.poll(0.5)
            if message is not None and message.error() is None:
                self.messages.append(message)
        return self.messages

    def close(self) -> None:
        self._consumer.close()


@pytest.fixture
def tail(settings: Settings) -> Iterator[Callable[[str], TopicTail]]:
    tails: list[TopicTail] = []

    def make(topic: str) -> TopicTail:
        created = TopicTail(settings, topic)
        tails.append(created)
        return created

    yield make
    for created in tails:
        created.close()


@pytest.fixture(scope="session")
def producer(local_stack: LocalStack, settings: Settings) -> Iterator[Any]:
    from confluent_kafka import Producer

    # murmur2 like Kafka's Java clients (and Debezium): the same key lands on the same partition.
    created = Producer({"bootstrap.servers": settings.kafka.bootstrap, "partitioner": "murmur2_random"})
    yield created
    created.flush(10)

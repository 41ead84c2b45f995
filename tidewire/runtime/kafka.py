"""An Apache Kafka 4 broker in KRaft mode: one node that is both broker and controller."""

from __future__ import annotations

import base64
import subprocess
import uuid

from confluent_kafka import KafkaException

from tidewire.errors import ServiceError
from tidewire.kafka_clients import admin_client
from tidewire.runtime.jars import JarLayout
from tidewire.runtime.java_service import launch, write_properties
from tidewire.runtime.prerequisites import JavaRuntime
from tidewire.runtime.processes import ProcessRecord, ProcessRegistry
from tidewire.runtime.readiness import NotReadyYet, port_accepts_connections, wait_until_ready
from tidewire.runtime.state import StatePaths
from tidewire.settings import KafkaSettings


def new_cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes in URL-safe base64, never starting with '-'.

    The storage tool would read an id that starts with '-' as an option and refuse to format
    (one id in 64 does); Kafka's own ``Uuid.randomUuid`` draws again in that case, and so do we.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaBroker:
    """The single-node KRaft broker of the local stack."""

    name = "kafka"
    main_class = "kafka.Kafka"

    def __init__(
        self, settings: KafkaSettings, paths: StatePaths, jars: JarLayout, registry: ProcessRegistry
    ) -> None:
        self.settings = settings
        self.paths = paths
        self.jars = jars
        self.registry = registry
        self.config_file = paths.config / "kafka-server.properties"

    def properties(self) -> dict[str, str]:
        host, port, controller_port = self.settings.host, self.settings.port, self.settings.controller_port
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{controller_port}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.paths.kafka_data),
            "num.partitions": str(self.settings.default_partitions),
            # One broker: every internal topic has one replica.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "12",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.retention.hours": "168",
            "num.io.threads": "4",
            "num.network.threads": "2",
        }

    def _format_storage_if_needed(self, java: JavaRuntime) -> None:
        if (self.paths.kafka_data / "meta.properties").exists():
            return
        self.paths.kafka_data.mkdir(parents=True, exist_ok=True)
        cluster_id = new_cluster_id()
        command = [
            str(java.executable), "-Xmx256m", f"-Dlog4j2.configurationFile={self.paths.config / 'log4j2.properties'}",
            "-cp", self.jars.classpath(), "kafka.tools.StorageTool",
            "format", "--cluster-id", cluster_id, "--config", str(self.config_file),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise ServiceError(f"formatting Kafka storage failed: {detail[-1] if detail else 'no output'}")

    def start(self, java: JavaRuntime) -> ProcessRecord:
        write_properties(self.config_file, self.properties())
        self._format_storage_if_needed(java)
        return launch(self, java)

    @property
    def heap(self) -> str:
        return self.settings.heap

    def probe(self) -> None:
        """Ready when the broker answers a metadata request."""
        if not port_accepts_connections(self.settings.host, self.settings.port):
            raise NotReadyYet(f"nothing listens on {self.settings.bootstrap} yet")
        admin = admin_client(self.settings.bootstrap)
        try:
            metadata = admin.list_topics(timeout=3)
        except KafkaException as error:
            raise NotReadyYet(str(error)) from None
        if not metadata.brokers:
            raise NotReadyYet("no broker in the metadata yet")

    def wait_ready(self, record: ProcessRecord | None, timeout_s: float = 90) -> None:
        problem = wait_until_ready(self.probe, timeout_s=timeout_s, process=record)
        if problem:
            raise ServiceError(f"kafka is not ready: {problem}; see {self.paths.log_file(self.name)}")

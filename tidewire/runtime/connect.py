"""Kafka Connect in distributed mode with the Debezium PostgreSQL plugin, REST on loopback."""

from __future__ import annotations

import requests

from tidewire.errors import ServiceError
from tidewire.runtime.jars import JarLayout
from tidewire.runtime.java_service import launch, write_properties
from tidewire.runtime.prerequisites import JavaRuntime
from tidewire.runtime.processes import ProcessRecord, ProcessRegistry
from tidewire.runtime.readiness import NotReadyYet, wait_until_ready
from tidewire.runtime.state import StatePaths
from tidewire.settings import ConnectSettings, KafkaSettings

DEBEZIUM_POSTGRES_CLASS = "io.debezium.connector.postgresql.PostgresConnector"


class ConnectWorker:
    """One distributed-mode Connect worker; more can join the same group elsewhere."""

    name = "connect"
    main_class = "org.apache.kafka.connect.cli.ConnectDistributed"

    def __init__(
        self,
        settings: ConnectSettings,
        kafka: KafkaSettings,
        paths: StatePaths,
        jars: JarLayout,
        registry: ProcessRegistry,
    ) -> None:
        self.settings = settings
        self.kafka = kafka
        self.paths = paths
        self.jars = jars
        self.registry = registry
        self.config_file = paths.config / "connect-distributed.properties"

    def properties(self) -> dict[str, str]:
        group = self.settings.group_id
        return {
            "bootstrap.servers": self.kafka.bootstrap,
            "group.id": group,
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "false",
            "value.converter.schemas.enable": "false",
            "config.storage.topic": f"{group}-configs",
            "offset.storage.topic": f"{group}-offsets",
            "status.storage.topic": f"{group}-status",
            "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            "offset.storage.partitions": "5",
            "status.storage.partitions": "3",
            # Debezium confirms the replication slot position when offsets flush: flush often.
            "offset.flush.interval.ms": "1000",
            "listeners": f"http://{self.settings.host}:{self.settings.port}",
            "rest.advertised.host.name": self.settings.host,
            "rest.advertised.port": str(self.settings.port),
            "plugin.path": str(self.jars.plugin_path),
            "plugin.discovery": "hybrid_warn",
        }

    def start(self, java: JavaRuntime) -> ProcessRecord:
        write_properties(self.config_file, self.properties())
        return launch(self, java)

    @property
    def heap(self) -> str:
        return self.settings.heap

    def probe(self) -> None:
        """Ready when the REST API answers and lists the Debezium PostgreSQL connector plugin."""
        try:
            response = requests.get(f"{self.settings.url}/connector-plugins", timeout=3)
        except requests.RequestException as error:
            raise NotReadyYet(type(error).__name__) from None
        if response.status_code != 200:
            raise NotReadyYet(f"HTTP {response.status_code}")
        classes = {plugin.get("class") for plugin in response.json()}
        if DEBEZIUM_POSTGRES_CLASS not in classes:
            raise NotReadyYet("the Debezium PostgreSQL plugin is not loaded")

    def wait_ready(self, record: ProcessRecord | None, timeout_s: float = 180) -> None:
        problem = wait_until_ready(self.probe, timeout_s=timeout_s, process=record, interval_s=0.5)
        if problem:
            raise ServiceError(f"kafka connect is not ready: {problem}; see {self.paths.log_file(self.name)}")

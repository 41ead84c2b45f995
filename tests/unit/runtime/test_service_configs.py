"""The configs the runtime writes for Kafka, Connect and Debezium follow the settings."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from connectors.debezium_config import default_connector_spec, render_connector_config
from tidewire.runtime.connect import ConnectWorker
from tidewire.runtime.jars import JarLayout
from tidewire.runtime.kafka import KafkaBroker, new_cluster_id
from tidewire.runtime.processes import ProcessRegistry
from tidewire.runtime.state import StatePaths
from tidewire.settings import Settings


def _settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", kafka={"port": 19092, "controller_port": 19093})  # type: ignore[arg-type]


def test_kafka_listens_on_the_configured_ports(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    paths = StatePaths(settings.state_dir)
    broker = KafkaBroker(settings.kafka, paths, JarLayout(tmp_path), ProcessRegistry(paths.run))
    properties = broker.properties()
    assert properties["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert properties["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert properties["num.partitions"] == "6"
    assert properties["log.dirs"].startswith(str(settings.state_dir))


def test_connect_points_at_the_broker_and_the_debezium_plugin(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    paths = StatePaths(settings.state_dir)
    jars = JarLayout(tmp_path / "jars")
    worker = ConnectWorker(settings.connect, settings.kafka, paths, jars, ProcessRegistry(paths.run))
    properties = worker.properties()
    assert properties["bootstrap.servers"] == "127.0.0.1:19092"
    assert properties["plugin.path"] == str(tmp_path / "jars" / "plugins")
    assert properties["listeners"] == "http://127.0.0.1:8083"


def test_the_debezium_config_uses_pgoutput_heartbeats_and_the_replication_role(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    config = render_connector_config(default_connector_spec(), settings)
    assert config["plugin.name"] == "pgoutput"
    assert config["database.user"] == settings.postgres.replication_user
    assert config["table.include.list"].split(",")[0] == "public.documents"
    assert config["heartbeat.action.query"].startswith("UPDATE public.tidewire_heartbeat")
    assert int(config["poll.interval.ms"]) < 500
    assert config["slot.name"] == "tidewire_documents"
    assert all(isinstance(value, str) for value in config.values())


def test_a_long_state_directory_gets_a_short_socket_directory(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path / ("x" * 120))
    assert len(str(paths.postgres_socket_dir)) < 80
    assert StatePaths(Path("/s")).postgres_socket_dir == Path("/s/postgres/socket")


def test_a_kraft_cluster_id_never_reads_as_an_option(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xf8 0x... encodes to "-..." in URL-safe base64: the first draw must be thrown away.
    draws = iter([uuid.UUID(bytes=b"\xf8" + b"\x00" * 15), uuid.UUID(bytes=b"\x01" * 16)])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))
    cluster_id = new_cluster_id()
    assert cluster_id == "AQEBAQEBAQEBAQEBAQEBAQ"
    assert len(cluster_id) == 22

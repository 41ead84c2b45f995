"""Rendering the Debezium PostgreSQL connector config of a set of captured tables."""

from __future__ import annotations

from dataclasses import dataclass

from tidewire.settings import Settings

CONNECTOR_CLASS = "io.debezium.connector.postgresql.PostgresConnector"
PUBLICATION = "tidewire"
HEARTBEAT_TABLE = "public.tidewire_heartbeat"
SIGNAL_TABLE = "public.tidewire_signal"


@dataclass(frozen=True)
class ConnectorSpec:
    """What one connector captures: a name (also its slot's) and the tables, as ``schema.table``."""

    name: str
    tables: tuple[str, ...]

    @property
    def slot_name(self) -> str:
        # Slot names allow lower-case letters, digits and underscores only.
        return "".join(ch if ch.isalnum() else "_" for ch in self.name.lower())


def default_connector_spec() -> ConnectorSpec:
    """The connector of the default pipeline: ``public.documents``."""
    return ConnectorSpec(name="tidewire-documents", tables=("public.documents",))


def render_connector_config(spec: ConnectorSpec, settings: Settings) -> dict[str, str]:
    """The connector config Kafka Connect receives (all values are strings)."""
    postgres = settings.postgres
    captured = (*spec.tables, SIGNAL_TABLE)
    return {
        "connector.class": CONNECTOR_CLASS,
        "tasks.max": "1",
        "plugin.name": "pgoutput",
        "database.hostname": postgres.host,
        "database.port": str(postgres.port),
        "database.user": postgres.replication_user,
        "database.password": postgres.replication_password.get_secret_value(),
        "database.dbname": postgres.database,
        "topic.prefix": settings.topics.cdc_prefix,
        "slot.name": spec.slot_name,
        "publication.name": PUBLICATION,
        # The publication is created by the migrations (the table owner); Debezium must not alter it.
        "publication.autocreate.mode": "disabled",
        "table.include.list": ",".join(captured),
        "signal.data.collection": SIGNAL_TABLE,
        "heartbeat.interval.ms": "10000",
        "heartbeat.action.query": f"UPDATE {HEARTBEAT_TABLE} SET beat_at = now() WHERE id = 1",
        "poll.interval.ms": "100",
        "snapshot.mode": "initial",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
        "decimal.handling.mode": "string",
        "time.precision.mode": "connect",
        "tombstones.on.delete": "true",
        "topic.creation.default.replication.factor": "1",
        "topic.creation.default.partitions": str(settings.kafka.default_partitions),
    }

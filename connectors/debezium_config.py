"""Rendering the Debezium PostgreSQL connector config from the pipeline specs.

One connector captures the source tables of every pipeline, through one slot and the one
publication ``tidewire``: Postgres decodes the WAL once, however many pipelines there are. It keeps
the name ``tidewire-documents`` (slot ``tidewire_documents``) that it had when only the default
table was captured: a new name would mean a new slot, a full re-snapshot, and an orphaned slot
holding WAL. docs/pipelines.md explains each setting.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidewire.pipeline_spec import PipelineSpec, default_pipelines
from tidewire.settings import Settings

CONNECTOR_CLASS = "io.debezium.connector.postgresql.PostgresConnector"
CONNECTOR_NAME = "tidewire-documents"
PUBLICATION = "tidewire"
HEARTBEAT_TABLE = "public.tidewire_heartbeat"
SIGNAL_TABLE = "public.tidewire_signal"
# Debezium sends this literal instead of a TOASTed value that an UPDATE left unchanged (with
# REPLICA IDENTITY DEFAULT the WAL does not carry it). The streams side never embeds it: it re-reads
# the row (tidewire.source_rows) or keeps the stored text.
UNAVAILABLE_VALUE_PLACEHOLDER = "__tidewire_unavailable__"
HEARTBEAT_INTERVAL_MS = 10_000
POLL_INTERVAL_MS = 100


@dataclass(frozen=True)
class ConnectorSpec:
    """What one connector captures: a name (also its slot's) and the tables, as ``schema.table``."""

    name: str
    tables: tuple[str, ...]

    @property
    def slot_name(self) -> str:
        # Slot names allow lower-case letters, digits and underscores only.
        return "".join(ch if ch.isalnum() else "_" for ch in self.name.lower())


def connector_spec(pipelines: list[PipelineSpec]) -> ConnectorSpec:
    """The connector of all pipelines: their source tables, in declaration order."""
    return ConnectorSpec(name=CONNECTOR_NAME, tables=tuple(pipeline.source_table for pipeline in pipelines))


def publication_tables(pipelines: list[PipelineSpec]) -> tuple[str, ...]:
    """Exactly what the publication holds: the source tables, the heartbeat and the signal table."""
    return (*(pipeline.source_table for pipeline in pipelines), HEARTBEAT_TABLE, SIGNAL_TABLE)


def render_connector_config(spec: ConnectorSpec, settings: Settings) -> dict[str, str]:
    """The connector config Kafka Connect receives (all values are strings)."""
    postgres = settings.postgres
    # The heartbeat table is published but not captured: its updates only move the slot on.
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
        # The table owner keeps the publication in sync (connectors/publication.py); the
        # replication role owns no table and must not try.
        "publication.autocreate.mode": "disabled",
        "table.include.list": ",".join(captured),
        "signal.data.collection": SIGNAL_TABLE,
        "signal.enabled.channels": "source",
        "heartbeat.interval.ms": str(HEARTBEAT_INTERVAL_MS),
        "heartbeat.action.query": f"UPDATE {HEARTBEAT_TABLE} SET beat_at = now() WHERE id = 1",
        "poll.interval.ms": str(POLL_INTERVAL_MS),
        "snapshot.mode": "initial",
        "unavailable.value.placeholder": UNAVAILABLE_VALUE_PLACEHOLDER,
        # Debezium skips truncates by default; the vector store must see them.
        "skipped.operations": "none",
        "tombstones.on.delete": "true",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
        "decimal.handling.mode": "string",
        "time.precision.mode": "connect",
        "topic.creation.default.replication.factor": "1",
        "topic.creation.default.partitions": str(settings.kafka.default_partitions),
    }


def default_connector_spec() -> ConnectorSpec:
    """The connector of the default pipeline (``public.documents``) alone."""
    return connector_spec(default_pipelines())

"""Debezium signals through the signalling table: incremental snapshots on demand (re-index).

A row inserted into ``public.tidewire_signal`` travels through the WAL to the connector, which then
reads the named tables again in chunks, interleaved with live changes, and emits their rows as
``op = "r"`` events on the usual CDC topics. Live changes keep flowing, and a row changed meanwhile
is never overwritten by its older snapshot read (Debezium de-duplicates within each chunk window).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from connectors.debezium_config import SIGNAL_TABLE
from tidewire.errors import ServiceError
from tidewire.pipeline_spec import PipelineSpec
from tidewire.settings import PostgresSettings

# tidewire_signal.data is varchar(4096): longer id lists are split over several signals.
_MAX_SIGNAL_DATA = 4000


@dataclass(frozen=True)
class SnapshotSignal:
    """One execute-snapshot signal that was written: its id, table, and how many ids it filters on."""

    signal_id: str
    pipeline: str
    table: str
    document_count: int | None  # None: the whole table


def request_incremental_snapshot(
    postgres: PostgresSettings, spec: PipelineSpec, document_ids: Sequence[str] = ()
) -> list[SnapshotSignal]:
    """Ask the connector to snapshot ``spec``'s table again (only ``document_ids``, when given)."""
    try:
        with psycopg.connect(postgres.dsn(), connect_timeout=10) as connection, connection.transaction():
            payloads = _payloads(connection, spec, document_ids)
            signals = []
            for payload, count in payloads:
                signal_id = f"reindex-{uuid.uuid4()}"
                connection.execute(
                    sql.SQL("INSERT INTO {} (id, type, data) VALUES (%s, 'execute-snapshot', %s)").format(
                        sql.Identifier(*SIGNAL_TABLE.split("."))
                    ),
                    (signal_id, payload),
                )
                signals.append(SnapshotSignal(signal_id, spec.name, spec.source_table, count))
            return signals
    except psycopg.OperationalError as error:
        raise ServiceError.postgres_unreachable(postgres, error, "to signal a snapshot") from None


def _payloads(
    connection: psycopg.Connection[tuple[object, ...]], spec: PipelineSpec, document_ids: Sequence[str]
) -> list[tuple[str, int | None]]:
    base: dict[str, object] = {"data-collections": [spec.source_table], "type": "incremental"}
    if not document_ids:
        return [(json.dumps(base), None)]
    # The filter is SQL that Debezium appends to its snapshot query: every id a quoted literal, left
    # untyped so that Postgres reads it as the key's own type (and the primary key index applies).
    column = sql.Identifier(spec.primary_key).as_string(connection)
    literals = [
        sql.Literal(str(document_id)).as_string(connection) for document_id in dict.fromkeys(document_ids)
    ]
    payloads: list[tuple[str, int | None]] = []
    batch: list[str] = []
    for literal in [*literals, None]:
        candidate = [*batch, literal] if literal is not None else batch
        payload = _filtered(base, spec, column, candidate)
        if literal is not None and len(payload) <= _MAX_SIGNAL_DATA:
            batch = candidate
            continue
        if batch:
            payloads.append((_filtered(base, spec, column, batch), len(batch)))
        batch = [literal] if literal is not None else []
    return payloads


def _filtered(base: dict[str, object], spec: PipelineSpec, column: str, literals: list[str]) -> str:
    condition = f"{column} IN ({', '.join(literals)})"
    return json.dumps(
        {**base, "additional-conditions": [{"data-collection": spec.source_table, "filter": condition}]}
    )

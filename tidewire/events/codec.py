"""Turning events into Kafka message values and back.

Two wire formats, one interface (:class:`EventCodec`):

- :class:`SingleObjectCodec` — Avro single-object encoding, used when no Schema Registry is
  configured: ``C3 01``, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer
  schema's Parsing Canonical Form, then the Avro binary body. The fingerprint is looked up
  among the current and released schemas in ``schemas/avro/``.
- :class:`~tidewire.events.schema_registry.SchemaRegistryCodec` — the Confluent wire format
  (``00``, a 4-byte big-endian schema id, the Avro binary body), when
  ``kafka.schema_registry_url`` is set.

Either way a message written with any released version of a schema is read as the current
version (Avro schema resolution), and a message that cannot be read raises
:class:`~tidewire.events.errors.EventDecodeError`, never another exception.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from tidewire.events.errors import EventDecodeError, EventEncodeError
from tidewire.events.models import Event, EventT
from tidewire.events.schemas import EventSchema, SchemaCatalog, default_catalog
from tidewire.settings import KafkaSettings

SINGLE_OBJECT_MARKER = b"\xc3\x01"
SINGLE_OBJECT_HEADER_LENGTH = len(SINGLE_OBJECT_MARKER) + 8


class EventCodec(ABC):
    """Encodes events as Kafka message values and decodes them back.

    ``topic`` is the topic the value is produced to or consumed from; the Schema Registry
    codec derives its subject from it (``<topic>-value``), the single-object codec ignores it.
    """

    @abstractmethod
    def encode(self, event: Event, *, topic: str) -> bytes:
        """The message value for ``event``; :class:`EventEncodeError` if it does not fit its schema."""

    @abstractmethod
    def decode(self, data: bytes | None, event_type: type[EventT], *, topic: str) -> EventT:
        """The event in ``data``, resolved to the current schema of ``event_type``.

        Raises :class:`EventDecodeError` for bytes that are not such an event and
        :class:`~tidewire.events.errors.EventValidationError` for an event that breaks its contract.
        """


class SingleObjectCodec(EventCodec):
    """Avro single-object encoding; the writer schema is identified by its fingerprint."""

    def __init__(self, catalog: SchemaCatalog) -> None:
        self._catalog = catalog

    def encode(self, event: Event, *, topic: str) -> bytes:
        schema = self._catalog.current(event.schema_name)
        return SINGLE_OBJECT_MARKER + schema.fingerprint + write_avro_body(schema, event.to_record())

    def decode(self, data: bytes | None, event_type: type[EventT], *, topic: str) -> EventT:
        """Decode in four steps, each with its own error code.

        1. Check the framing (length and marker).
        2. Find the writer schema by fingerprint.
        3. Check that it is a version of ``event_type``'s schema.
        4. Read the body with the writer schema, resolved to the current one.
        """
        # 1. Framing.
        if data is None:
            raise EventDecodeError(
                f"message on {topic} has no value (a tombstone), not an event", code="event_empty"
            )
        data = bytes(data)
        if len(data) < SINGLE_OBJECT_HEADER_LENGTH:
            raise EventDecodeError(
                f"message on {topic} is {len(data)} bytes, shorter than the single-object header",
                code="event_truncated",
            )
        if data[:2] != SINGLE_OBJECT_MARKER:
            hint = (
                "; it looks like Confluent Schema Registry framing: set kafka.schema_registry_url"
                if data[0] == 0
                else ""
            )
            raise EventDecodeError(
                f"message on {topic} does not start with the Avro single-object marker C3 01{hint}",
                code="event_bad_marker",
            )
        # 2. Writer schema.
        fingerprint = data[len(SINGLE_OBJECT_MARKER) : SINGLE_OBJECT_HEADER_LENGTH]
        writer = self._catalog.by_fingerprint(fingerprint)
        if writer is None:
            raise EventDecodeError(
                f"message on {topic} was written with an unknown schema (fingerprint {fingerprint.hex()}); "
                "its producer uses a schema that is not in schemas/avro/ or its history",
                code="event_unknown_schema",
            )
        # 3. Event type.
        if writer.name != event_type.schema_name:
            raise EventDecodeError(
                f"message on {topic} is a {writer.name}, not a {event_type.schema_name}",
                code="event_wrong_type",
            )
        # 4. Body.
        reader = self._catalog.current(event_type.schema_name)
        record = read_avro_body(data[SINGLE_OBJECT_HEADER_LENGTH:], writer, reader, topic=topic)
        return event_type.from_record(record)


def write_avro_body(schema: EventSchema, record: Mapping[str, Any]) -> bytes:
    """The Avro binary encoding of ``record``; :class:`EventEncodeError` if it does not fit ``schema``."""
    buffer = io.BytesIO()
    try:
        schemaless_writer(buffer, schema.parsed, record, strict=True)
    except Exception as error:  # fastavro raises ValueError, TypeError, AttributeError... for a bad record
        raise EventEncodeError(f"{schema.name} does not fit its Avro schema: {error}") from error
    return buffer.getvalue()


def read_avro_body(body: bytes, writer: EventSchema, reader: EventSchema, *, topic: str) -> dict[str, Any]:
    """Read an Avro binary body written with ``writer`` as ``reader``.

    Raises :class:`EventDecodeError` (``event_malformed``) when the bytes do not match the
    writer schema, including when bytes are left over after the record.
    """
    buffer = io.BytesIO(body)
    try:
        record = schemaless_reader(buffer, writer.parsed, None if reader is writer else reader.parsed)
    except Exception as error:
        # On corrupt input fastavro raises whatever the bad byte leads to (EOFError,
        # IndexError, UnicodeDecodeError, ValueError, OverflowError, MemoryError...): all of
        # them mean the same thing here, so they become one typed error for the dead letter.
        raise EventDecodeError(
            f"message on {topic} is not a valid {writer.name} body: {type(error).__name__}: {error}",
            code="event_malformed",
        ) from error
    if buffer.tell() != len(body):
        raise EventDecodeError(
            f"message on {topic} has {len(body) - buffer.tell()} bytes after its {writer.name} record",
            code="event_malformed",
        )
    if not isinstance(record, dict):
        raise EventDecodeError(f"message on {topic} is not a {writer.name} record", code="event_malformed")
    return record


def make_event_codec(kafka: KafkaSettings, catalog: SchemaCatalog | None = None) -> EventCodec:
    """The codec the settings ask for: Schema Registry when ``kafka.schema_registry_url`` is set,
    single-object encoding otherwise. ``catalog`` defaults to the repository's ``schemas/avro/``."""
    catalog = catalog or default_catalog()
    if kafka.schema_registry_url:
        # Imported here: the registry client pulls in an HTTP and OAuth stack (half a second of
        # import time) that deployments without a registry never need.
        from tidewire.events.schema_registry import SchemaRegistryCodec

        return SchemaRegistryCodec.connect(kafka.schema_registry_url, catalog)
    return SingleObjectCodec(catalog)

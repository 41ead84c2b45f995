"""Events in the Confluent wire format, with schemas kept in a Confluent Schema Registry.

A value is ``00``, the 4-byte big-endian id of the writer schema in the registry, then the
Avro binary body; schemas are registered under the ``<topic>-value`` subject (TopicNameStrategy),
which is what Kafka Connect, ksqlDB and other Confluent clients expect.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from tidewire.events.codec import EventCodec
from tidewire.events.errors import (
    EventDecodeError,
    EventEncodeError,
    SchemaRegistryUnavailableError,
)
from tidewire.events.models import Event, EventT
from tidewire.events.schemas import EventSchema, SchemaCatalog

CONFLUENT_MAGIC_BYTE = 0
CONFLUENT_HEADER_LENGTH = 5
_SCHEMA_NOT_FOUND_HTTP_STATUS = 404
_SUBJECT_STRATEGY = {"subject.name.strategy.type": "TOPIC"}


class SchemaRegistryCodec(EventCodec):
    """The Confluent wire format through confluent-kafka's registry client and Avro serde.

    With ``auto_register`` (the default) the current schema is registered under
    ``<topic>-value`` on first use, and the registry's compatibility rules decide whether it
    may evolve; without it the schema must already be registered.
    """

    def __init__(
        self, client: SchemaRegistryClient, catalog: SchemaCatalog, *, auto_register: bool = True
    ) -> None:
        self._client = client
        self._catalog = catalog
        self._auto_register = auto_register
        self._serializers: dict[str, AvroSerializer] = {}
        self._deserializers: dict[str, AvroDeserializer] = {}
        self._schema_ids: dict[tuple[str, str], int] = {}

    @classmethod
    def connect(
        cls,
        url: str,
        catalog: SchemaCatalog,
        *,
        auto_register: bool = True,
        timeout_s: float = 10.0,
        max_retries: int = 2,
    ) -> SchemaRegistryCodec:
        """A codec talking to the registry at ``url`` (comma-separated for several). Connects lazily."""
        client = SchemaRegistryClient({"url": url, "timeout": timeout_s, "max.retries": max_retries})
        return cls(client, catalog, auto_register=auto_register)

    def encode(self, event: Event, *, topic: str) -> bytes:
        """Encode in two steps.

        1. Make sure the current schema has an id under ``<topic>-value`` (one registry call per
           subject per process; the client caches it).
        2. Serialize with confluent-kafka's AvroSerializer, which frames the body with that id.
        """
        schema = self._catalog.current(event.schema_name)
        # 1. Schema id.
        self._schema_id(schema, subject=f"{topic}-value")
        # 2. Body.
        serializer = self._serializers.get(schema.name)
        if serializer is None:
            serializer = AvroSerializer(
                self._client,
                schema.text,
                conf={"auto.register.schemas": self._auto_register, **_SUBJECT_STRATEGY},
            )
            self._serializers[schema.name] = serializer
        try:
            value = serializer(event.to_record(), SerializationContext(topic, MessageField.VALUE))
        except SchemaRegistryError as error:
            raise _registry_failure(error, action=f"register {schema.name} for {topic}") from error
        except Exception as error:  # fastavro's ValueError, TypeError... for a record that does not fit
            raise EventEncodeError(f"{schema.name} does not fit its Avro schema: {error}") from error
        if value is None:
            raise EventEncodeError(f"{schema.name} serialized to nothing")
        return value

    def decode(self, data: bytes | None, event_type: type[EventT], *, topic: str) -> EventT:
        """Decode in four steps, each with its own error code.

        1. Check the framing (length and magic byte) and read the schema id.
        2. Fetch the writer schema by id (cached): unknown id → ``event_unknown_schema``,
           registry down → :class:`SchemaRegistryUnavailableError` (retry, do not dead-letter).
        3. Check that it is ``event_type``'s schema.
        4. Read the body with AvroDeserializer, resolved to the current schema.
        """
        # 1. Framing.
        if data is None:
            raise EventDecodeError(
                f"message on {topic} has no value (a tombstone), not an event", code="event_empty"
            )
        data = bytes(data)
        if len(data) <= CONFLUENT_HEADER_LENGTH:
            raise EventDecodeError(
                f"message on {topic} is {len(data)} bytes, too short for the Confluent wire format",
                code="event_truncated",
            )
        if data[0] != CONFLUENT_MAGIC_BYTE:
            hint = "; it looks like Avro single-object encoding" if data[:2] == b"\xc3\x01" else ""
            raise EventDecodeError(
                f"message on {topic} does not start with the Confluent magic byte 00{hint}",
                code="event_bad_marker",
            )
        (schema_id,) = struct.unpack(">I", data[1:CONFLUENT_HEADER_LENGTH])
        subject = f"{topic}-value"
        # 2. Writer schema.
        try:
            writer = self._client.get_schema(schema_id, subject)
        except SchemaRegistryError as error:
            if error.http_status_code == _SCHEMA_NOT_FOUND_HTTP_STATUS:
                raise EventDecodeError(
                    f"message on {topic} names schema id {schema_id}, which the Schema Registry does not know",
                    code="event_unknown_schema",
                ) from error
            # Anything else is the registry's problem (down, overloaded, refusing our
            # credentials), not the message's: retry rather than dead-letter it.
            raise SchemaRegistryUnavailableError(
                f"Schema Registry failed to return schema {schema_id}: {error}"
            ) from error
        except Exception as error:  # httpx transport errors: refused, reset, timed out
            raise SchemaRegistryUnavailableError(
                f"Schema Registry unreachable while fetching schema {schema_id}: {error}"
            ) from error
        # 3. Event type.
        reader = self._catalog.current(event_type.schema_name)
        writer_name = _record_full_name(writer.schema_str)
        if writer_name != reader.full_name:
            raise EventDecodeError(
                f"message on {topic} is a {writer_name or 'non-record'} (schema id {schema_id}), "
                f"not a {reader.full_name}",
                code="event_wrong_type",
            )
        # 4. Body.
        deserializer = self._deserializer(reader)
        try:
            record = deserializer(data, SerializationContext(topic, MessageField.VALUE))
        except Exception as error:
            # As for single-object decoding: whatever fastavro raises on corrupt input means
            # one thing, so it becomes one typed error.
            raise EventDecodeError(
                f"message on {topic} is not a valid {writer_name} body: {type(error).__name__}: {error}",
                code="event_malformed",
            ) from error
        if not isinstance(record, dict):
            raise EventDecodeError(
                f"message on {topic} is not a {writer_name} record", code="event_malformed"
            )
        return event_type.from_record(record)

    def _schema_id(self, schema: EventSchema, *, subject: str) -> int:
        key = (subject, schema.name)
        if key not in self._schema_ids:
            registry_schema = Schema(schema.text, "AVRO")
            schema_id: int | None
            try:
                if self._auto_register:
                    schema_id = self._client.register_schema(subject, registry_schema)
                else:
                    schema_id = self._client.lookup_schema(subject, registry_schema).schema_id
            except SchemaRegistryError as error:
                raise _registry_failure(error, action=f"register {schema.name} under {subject}") from error
            except Exception as error:  # httpx transport errors: refused, reset, timed out
                raise SchemaRegistryUnavailableError(
                    f"Schema Registry unreachable while registering {schema.name} under {subject}: {error}"
                ) from error
            if schema_id is None:
                raise EventEncodeError(f"Schema Registry returned no id for {schema.name} under {subject}")
            self._schema_ids[key] = schema_id
        return self._schema_ids[key]

    def _deserializer(self, reader: EventSchema) -> AvroDeserializer:
        deserializer = self._deserializers.get(reader.name)
        if deserializer is None:
            deserializer = AvroDeserializer(self._client, reader.text, conf=dict(_SUBJECT_STRATEGY))
            self._deserializers[reader.name] = deserializer
        return deserializer


def _registry_failure(error: SchemaRegistryError, *, action: str) -> Exception:
    """A registry error while encoding, as Tidewire's: a server-side problem is retryable, a refusal is not."""
    status = error.http_status_code
    if status is None or status >= 500 or status in (401, 403, 408, 429):
        return SchemaRegistryUnavailableError(f"Schema Registry failed to {action}: {error}")
    # 409 (incompatible with the subject's history), 422 (invalid schema) and the like are
    # refusals: retrying sends the same schema and gets the same answer.
    return EventEncodeError(f"Schema Registry refused to {action}: {error}")


def _record_full_name(schema_text: str | None) -> str | None:
    """``namespace.name`` of a record schema given as JSON text; ``None`` for anything else."""
    try:
        definition: Any = json.loads(schema_text or "")
    except ValueError:
        return None
    if not isinstance(definition, dict) or not isinstance(definition.get("name"), str):
        return None
    name: str = definition["name"]
    namespace = definition.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"

"""The Confluent wire format against a Schema Registry served over real HTTP on loopback."""

from __future__ import annotations

import io
import json
import socket
import struct

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro import parse_schema, schemaless_writer

from tests.unit.events.conftest import (
    FIELDS_ADDED_SINCE_PREVIOUS_VERSION,
    TOPIC_OF_EVENT,
    EvolvedCatalog,
    make_ingest_document,
    make_notification,
)
from tests.unit.events.schema_registry_server import RunningRegistry
from tidewire.events import (
    Event,
    EventDecodeError,
    EventEncodeError,
    IngestDocument,
    IngestOperation,
    InvalidEventError,
    Notification,
    SchemaCatalog,
    SchemaRegistryUnavailableError,
    SingleObjectCodec,
    make_event_codec,
)
from tidewire.events.schema_registry import SchemaRegistryCodec
from tidewire.settings import KafkaSettings

INGEST_TOPIC = TOPIC_OF_EVENT["IngestDocument"]


def _codec(registry: RunningRegistry, catalog: SchemaCatalog, **options: object) -> SchemaRegistryCodec:
    # No retries: the failure tests should fail at once rather than back off.
    return SchemaRegistryCodec.connect(registry.url, catalog, max_retries=0, **options)  # type: ignore[arg-type]


def _confluent_frame(schema_id: int, body: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + body


def test_round_trip_registers_under_the_topic_subject(
    schema_registry: RunningRegistry, catalog: SchemaCatalog, sample_event: Event
) -> None:
    topic = TOPIC_OF_EVENT[sample_event.schema_name]
    codec = _codec(schema_registry, catalog)

    data = codec.encode(sample_event, topic=topic)

    (schema_id,) = schema_registry.state.subjects[f"{topic}-value"]
    assert data[:5] == _confluent_frame(schema_id, b"")
    assert (
        json.loads(schema_registry.state.schemas[schema_id])
        == catalog.current(sample_event.schema_name).definition
    )
    assert codec.decode(data, type(sample_event), topic=topic) == sample_event


def test_a_fresh_consumer_fetches_the_writer_schema_once(
    schema_registry: RunningRegistry, catalog: SchemaCatalog
) -> None:
    data = _codec(schema_registry, catalog).encode(make_ingest_document(), topic=INGEST_TOPIC)
    consumer = _codec(schema_registry, catalog)
    schema_registry.state.requests.clear()

    for _ in range(3):
        assert consumer.decode(data, IngestDocument, topic=INGEST_TOPIC) == make_ingest_document()

    assert schema_registry.state.requests == [("GET", "/schemas/ids/1")]


def test_encoding_registers_once_per_subject(
    schema_registry: RunningRegistry, catalog: SchemaCatalog
) -> None:
    codec = _codec(schema_registry, catalog)
    for index in range(3):
        codec.encode(make_ingest_document(document_id=f"doc-{index}"), topic=INGEST_TOPIC)
    registrations = [request for request in schema_registry.state.requests if request[0] == "POST"]
    assert registrations == [("POST", f"/subjects/{INGEST_TOPIC}-value/versions")]


def test_decodes_a_message_written_with_the_previous_schema_version(
    schema_registry: RunningRegistry, evolved_catalog: EvolvedCatalog
) -> None:
    previous = evolved_catalog.previous
    schema_id = schema_registry.state.register(f"{INGEST_TOPIC}-value", previous.text)
    record = {
        key: value
        for key, value in make_ingest_document().to_record().items()
        if key not in FIELDS_ADDED_SINCE_PREVIOUS_VERSION
    }
    body = io.BytesIO()
    schemaless_writer(body, parse_schema(dict(previous.definition), named_schemas={}), record)

    decoded = _codec(schema_registry, evolved_catalog.catalog).decode(
        _confluent_frame(schema_id, body.getvalue()), IngestDocument, topic=INGEST_TOPIC
    )

    assert decoded == make_ingest_document(operation=IngestOperation.UPSERT, source=None, pipeline=None)


def test_plain_confluent_clients_interoperate(
    schema_registry: RunningRegistry, catalog: SchemaCatalog
) -> None:
    """What docs/events.md tells upstream writers to do, read by Tidewire, and the reverse."""
    schema_text = catalog.current("IngestDocument").text
    client = SchemaRegistryClient({"url": schema_registry.url})
    context = SerializationContext(INGEST_TOPIC, MessageField.VALUE)
    serializer = AvroSerializer(client, schema_text, conf={"subject.name.strategy.type": "TOPIC"})
    deserializer = AvroDeserializer(client, schema_text, conf={"subject.name.strategy.type": "TOPIC"})
    codec = _codec(schema_registry, catalog)
    event = make_ingest_document()

    from_upstream = serializer(event.to_record(), context)
    assert codec.decode(from_upstream, IngestDocument, topic=INGEST_TOPIC) == event
    assert IngestDocument.from_record(deserializer(codec.encode(event, topic=INGEST_TOPIC), context)) == event


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (None, "event_empty"),
        (b"\x00\x00\x00", "event_truncated"),
        (b"\xc3\x01" + b"\x00" * 12, "event_bad_marker"),
        (_confluent_frame(4242, b"\x02a"), "event_unknown_schema"),
    ],
    ids=["tombstone", "short", "single-object", "unknown-id"],
)
def test_undecodable_bytes_raise_a_typed_error_with_a_stable_code(
    schema_registry: RunningRegistry, catalog: SchemaCatalog, data: bytes | None, code: str
) -> None:
    with pytest.raises(EventDecodeError) as raised:
        _codec(schema_registry, catalog).decode(data, IngestDocument, topic=INGEST_TOPIC)
    assert raised.value.code == code


def test_another_event_type_is_refused_by_name(
    schema_registry: RunningRegistry, catalog: SchemaCatalog
) -> None:
    codec = _codec(schema_registry, catalog)
    data = codec.encode(make_notification(), topic=INGEST_TOPIC)
    with pytest.raises(EventDecodeError, match=r"is a dev\.tidewire\.events\.Notification") as raised:
        codec.decode(data, IngestDocument, topic=INGEST_TOPIC)
    assert raised.value.code == "event_wrong_type"


def test_corrupted_bodies_raise_only_invalid_event_errors(
    schema_registry: RunningRegistry, catalog: SchemaCatalog
) -> None:
    codec = _codec(schema_registry, catalog)
    data = codec.encode(make_notification(), topic="t")
    for length in range(6, len(data)):
        with pytest.raises(EventDecodeError) as raised:
            codec.decode(data[:length], Notification, topic="t")
        assert raised.value.code == "event_malformed"
    for position in range(5, len(data)):
        corrupted = bytearray(data)
        corrupted[position] ^= 0xFF
        try:
            codec.decode(bytes(corrupted), Notification, topic="t")
        except InvalidEventError as error:
            assert error.code.startswith("event_")


def test_a_failing_registry_is_retryable_not_a_dead_letter(
    schema_registry: RunningRegistry, catalog: SchemaCatalog
) -> None:
    data = _codec(schema_registry, catalog).encode(make_ingest_document(), topic=INGEST_TOPIC)
    schema_registry.state.fail_with_status = 503
    fresh = _codec(schema_registry, catalog)

    with pytest.raises(SchemaRegistryUnavailableError) as raised:
        fresh.decode(data, IngestDocument, topic=INGEST_TOPIC)
    assert not isinstance(raised.value, InvalidEventError)
    assert raised.value.retry_after_s > 0
    with pytest.raises(SchemaRegistryUnavailableError):
        fresh.encode(make_ingest_document(), topic=INGEST_TOPIC)


def test_an_unreachable_registry_is_retryable(catalog: SchemaCatalog) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    codec = SchemaRegistryCodec.connect(
        f"http://127.0.0.1:{closed_port}", catalog, max_retries=0, timeout_s=2
    )
    with pytest.raises(SchemaRegistryUnavailableError, match="unreachable"):
        codec.encode(make_ingest_document(), topic=INGEST_TOPIC)
    with pytest.raises(SchemaRegistryUnavailableError, match="unreachable"):
        codec.decode(_confluent_frame(1, b"\x02a"), IngestDocument, topic=INGEST_TOPIC)


def test_without_auto_registration_an_unregistered_schema_is_refused(
    schema_registry: RunningRegistry, catalog: SchemaCatalog
) -> None:
    codec = _codec(schema_registry, catalog, auto_register=False)
    with pytest.raises(EventEncodeError, match="refused"):
        codec.encode(make_ingest_document(), topic=INGEST_TOPIC)

    schema_registry.state.register(f"{INGEST_TOPIC}-value", catalog.current("IngestDocument").text)
    data = codec.encode(make_ingest_document(), topic=INGEST_TOPIC)
    assert codec.decode(data, IngestDocument, topic=INGEST_TOPIC) == make_ingest_document()


def test_factory_picks_the_registry_codec_only_when_a_url_is_configured(
    schema_registry: RunningRegistry, catalog: SchemaCatalog
) -> None:
    assert isinstance(make_event_codec(KafkaSettings(), catalog), SingleObjectCodec)
    codec = make_event_codec(KafkaSettings(schema_registry_url=schema_registry.url), catalog)
    assert isinstance(codec, SchemaRegistryCodec)
    # Connecting is lazy: building the codec made no request.
    assert schema_registry.state.requests == []

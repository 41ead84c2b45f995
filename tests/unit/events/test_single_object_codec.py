"""Avro single-object encoding: round trips, the header against the spec, evolution, bad bytes."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime

import pytest
from fastavro import parse_schema, schemaless_writer

from tests.unit.events.avro_reference import parsing_canonical_form, sample_record, single_object_header
from tests.unit.events.conftest import (
    FIELDS_ADDED_SINCE_PREVIOUS_VERSION,
    SAMPLE_EVENTS,
    TOPIC_OF_EVENT,
    EvolvedCatalog,
    make_ingest_document,
    make_notification,
)
from tidewire.events import (
    EVENT_TYPES,
    Event,
    EventDecodeError,
    EventValidationError,
    IngestDocument,
    IngestOperation,
    InvalidEventError,
    Notification,
    SchemaCatalog,
    SingleObjectCodec,
    default_catalog,
)

INGEST_TOPIC = TOPIC_OF_EVENT["IngestDocument"]


@pytest.fixture(scope="module")
def codec() -> SingleObjectCodec:
    return SingleObjectCodec(default_catalog())


def _independent_encoding(definition: dict, record: dict) -> bytes:
    """Single-object bytes built from the spec and a separately parsed schema, not the codec."""
    body = io.BytesIO()
    schemaless_writer(body, parse_schema(definition, named_schemas={}), record)
    return single_object_header(parsing_canonical_form(definition)) + body.getvalue()


def test_round_trip(codec: SingleObjectCodec, sample_event: Event) -> None:
    topic = TOPIC_OF_EVENT[sample_event.schema_name]
    data = codec.encode(sample_event, topic=topic)
    assert codec.decode(data, type(sample_event), topic=topic) == sample_event


def test_bytes_match_an_independent_encoding(
    codec: SingleObjectCodec, catalog: SchemaCatalog, sample_event: Event
) -> None:
    definition = dict(catalog.current(sample_event.schema_name).definition)
    expected = _independent_encoding(definition, sample_event.to_record())
    data = codec.encode(sample_event, topic=TOPIC_OF_EVENT[sample_event.schema_name])
    assert data[:2] == b"\xc3\x01"
    assert data[:10] == expected[:10]
    assert data == expected


def test_decodes_a_message_written_with_the_previous_schema_version(evolved_catalog: EvolvedCatalog) -> None:
    codec = SingleObjectCodec(evolved_catalog.catalog)
    previous = dict(evolved_catalog.previous.definition)
    record = {
        key: value
        for key, value in make_ingest_document().to_record().items()
        if key not in FIELDS_ADDED_SINCE_PREVIOUS_VERSION
    }
    data = _independent_encoding(previous, record)
    assert data[2:10] == evolved_catalog.previous.fingerprint

    decoded = codec.decode(data, IngestDocument, topic=INGEST_TOPIC)

    assert decoded == make_ingest_document(operation=IngestOperation.UPSERT, source=None, pipeline=None)


def test_every_released_version_decodes_with_the_current_codec(
    codec: SingleObjectCodec, catalog: SchemaCatalog
) -> None:
    for event_type in EVENT_TYPES:
        for released in catalog.history(event_type.schema_name):
            definition = dict(released.definition)
            data = _independent_encoding(definition, sample_record(definition))
            decoded = codec.decode(data, event_type, topic=TOPIC_OF_EVENT[event_type.schema_name])
            assert isinstance(decoded, event_type), f"{event_type.schema_name} v{released.version}"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (None, "event_empty"),
        (b"", "event_truncated"),
        (b"\xc3\x01\x00", "event_truncated"),
        (b"\x00\x00\x00\x00\x01" + b"\x02" * 20, "event_bad_marker"),
        (b'{"document_id": "json is not avro"}', "event_bad_marker"),
        (b"\xc3\x01" + b"\xde\xad\xbe\xef" * 2 + b"\x02a", "event_unknown_schema"),
    ],
    ids=["tombstone", "empty", "short-header", "confluent-framing", "json", "unknown-fingerprint"],
)
def test_undecodable_bytes_raise_a_typed_error_with_a_stable_code(
    codec: SingleObjectCodec, data: bytes | None, code: str
) -> None:
    with pytest.raises(EventDecodeError) as raised:
        codec.decode(data, IngestDocument, topic=INGEST_TOPIC)
    assert raised.value.code == code
    assert raised.value.reason


def test_confluent_framing_gets_a_hint_to_configure_the_registry(codec: SingleObjectCodec) -> None:
    with pytest.raises(EventDecodeError, match="schema_registry_url"):
        codec.decode(b"\x00\x00\x00\x00\x07" + b"\x02" * 20, IngestDocument, topic=INGEST_TOPIC)


def test_another_event_type_is_refused_by_name(codec: SingleObjectCodec) -> None:
    data = codec.encode(make_notification(), topic=INGEST_TOPIC)
    with pytest.raises(EventDecodeError, match="is a Notification, not a IngestDocument") as raised:
        codec.decode(data, IngestDocument, topic=INGEST_TOPIC)
    assert raised.value.code == "event_wrong_type"


def test_trailing_bytes_are_malformed(codec: SingleObjectCodec) -> None:
    data = codec.encode(make_ingest_document(), topic=INGEST_TOPIC)
    with pytest.raises(EventDecodeError, match="bytes after") as raised:
        codec.decode(data + b"\x00", IngestDocument, topic=INGEST_TOPIC)
    assert raised.value.code == "event_malformed"


@pytest.mark.parametrize("sample_name", sorted(SAMPLE_EVENTS))
def test_every_truncation_is_a_typed_error(codec: SingleObjectCodec, sample_name: str) -> None:
    event = SAMPLE_EVENTS[sample_name]
    data = codec.encode(event, topic="t")
    for length in range(len(data)):
        with pytest.raises(EventDecodeError):
            codec.decode(data[:length], type(event), topic="t")


@pytest.mark.parametrize("sample_name", sorted(SAMPLE_EVENTS))
def test_corrupted_bodies_raise_only_invalid_event_errors(codec: SingleObjectCodec, sample_name: str) -> None:
    # Keep the header valid so that the corruption reaches the Avro body reader, the part
    # that could otherwise leak fastavro's own exceptions.
    event = SAMPLE_EVENTS[sample_name]
    data = bytearray(codec.encode(event, topic="t"))
    rng = random.Random(sample_name)
    for _ in range(400):
        corrupted = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            corrupted[rng.randrange(10, len(corrupted))] = rng.randrange(256)
        if rng.random() < 0.3:
            corrupted += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        try:
            decoded = codec.decode(bytes(corrupted), type(event), topic="t")
        except InvalidEventError as error:
            assert error.code.startswith("event_")
        else:
            assert isinstance(decoded, type(event))


def test_random_garbage_raises_only_decode_errors(codec: SingleObjectCodec) -> None:
    rng = random.Random(7)
    for _ in range(500):
        garbage = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
        with pytest.raises(EventDecodeError):
            codec.decode(garbage, Notification, topic="t")


def test_a_well_formed_event_with_invalid_content_raises_a_validation_error(
    codec: SingleObjectCodec, catalog: SchemaCatalog
) -> None:
    definition = dict(catalog.current("IngestDocument").definition)
    record = make_ingest_document().to_record() | {"metadata_json": "[1, 2]"}
    with pytest.raises(EventValidationError, match="must be a JSON object") as raised:
        codec.decode(_independent_encoding(definition, record), IngestDocument, topic=INGEST_TOPIC)
    assert raised.value.field == "metadata_json"


def test_millisecond_timestamps_keep_millisecond_precision(codec: SingleObjectCodec) -> None:
    event = make_ingest_document(event_time=datetime(2025, 1, 1, 0, 0, 0, 123_456, tzinfo=UTC))
    decoded = codec.decode(codec.encode(event, topic=INGEST_TOPIC), IngestDocument, topic=INGEST_TOPIC)
    assert decoded.event_time == datetime(2025, 1, 1, 0, 0, 0, 123_000, tzinfo=UTC)

"""Fixtures for the event-contract tests: one valid event of each type, the schema catalog,
and a stand-in Schema Registry served over real HTTP."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.unit.events.schema_registry_server import RunningRegistry, running_schema_registry
from tidewire.events import (
    DeadLetter,
    Event,
    FailureStage,
    IngestDocument,
    MessageHeader,
    Notification,
    NotificationType,
    SchemaCatalog,
    default_catalog,
)
from tidewire.events.schemas import DEFAULT_SCHEMA_DIR, EventSchema
from tidewire.settings import TopicSettings

# Millisecond precision: timestamp-millis fields keep no more than that, so a round trip is exact.
EVENT_TIME = datetime(2025, 3, 14, 15, 9, 26, 535_000, tzinfo=UTC)


def make_ingest_document(**overrides: object) -> IngestDocument:
    fields: dict[str, object] = {
        "document_id": "kjv-gen-1-1",
        "tenant_id": "acme",
        "title": "Genesis 1:1",
        "body": "In the beginning God created the heaven and the earth.",
        "metadata": {"book": "Genesis", "chapter": 1, "verse": 1, "tags": ["kjv", "torah"], "score": 0.5},
        "event_time": EVENT_TIME,
        "source": "cms",
        "pipeline": "default",
    }
    fields.update(overrides)
    return IngestDocument(**fields)  # type: ignore[arg-type]


def make_notification(**overrides: object) -> Notification:
    fields: dict[str, object] = {
        "event_type": NotificationType.INDEXED,
        "tenant_id": "acme",
        "document_id": "kjv-gen-1-1",
        "pipeline": "default",
        "chunks": 3,
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "source_committed_at": datetime(2025, 3, 14, 15, 9, 26, 535_897, tzinfo=UTC),
        "indexed_at": datetime(2025, 3, 14, 15, 9, 27, 12_345, tzinfo=UTC),
        "freshness_ms": 476,
        "source_lsn": 0x16B3748,
    }
    fields.update(overrides)
    return Notification(**fields)  # type: ignore[arg-type]


def make_dead_letter(**overrides: object) -> DeadLetter:
    fields: dict[str, object] = {
        "topic": "tidewire.ingest",
        "partition": 4,
        "offset": 1_234_567_890_123,
        "timestamp": EVENT_TIME,
        "key": b"kjv-gen-1-1",
        "value": b"\xc3\x01\x00garbage\xff",
        "headers": (MessageHeader("trace-id", b"abc"), MessageHeader("trace-id", None)),
        "stage": FailureStage.DECODE,
        "error_code": "event_unknown_schema",
        "error_class": "tidewire.events.errors.EventDecodeError",
        "reason": "message on tidewire.ingest was written with an unknown schema",
        "attempts": 1,
        "failed_at": EVENT_TIME,
        "pipeline": None,
        "destination": None,
    }
    fields.update(overrides)
    return DeadLetter(**fields)  # type: ignore[arg-type]


SAMPLE_EVENTS: dict[str, Event] = {
    "IngestDocument": make_ingest_document(),
    "IngestDocument-minimal": IngestDocument(document_id="a", event_time=EVENT_TIME),
    "Notification": make_notification(),
    "Notification-deleted": make_notification(
        event_type=NotificationType.DELETED, chunks=0, source_lsn=None, document_id="gone"
    ),
    "DeadLetter": make_dead_letter(),
    "DeadLetter-deliver": make_dead_letter(
        stage=FailureStage.DELIVER,
        key=None,
        value=None,
        headers=(),
        timestamp=None,
        attempts=8,
        error_class=None,
        pipeline="default",
        destination="https://hooks.example.com/tidewire",
    ),
}


@pytest.fixture(scope="session")
def catalog() -> SchemaCatalog:
    return default_catalog()


@pytest.fixture(params=sorted(SAMPLE_EVENTS), ids=str)
def sample_event(request: pytest.FixtureRequest) -> Event:
    """One valid event of each type, and edge variants (nulls, empty lists, DELETED)."""
    return SAMPLE_EVENTS[request.param]


@pytest.fixture
def schema_registry() -> Iterator[RunningRegistry]:
    with running_schema_registry() as registry:
        yield registry


TOPICS = TopicSettings()
TOPIC_OF_EVENT = {
    "IngestDocument": TOPICS.ingest,
    "Notification": TOPICS.notifications,
    "DeadLetter": TOPICS.dead_letter,
}

# Fields a plausible earlier IngestDocument lacked; each has a default in the current schema,
# which is what makes adding them backward compatible.
FIELDS_ADDED_SINCE_PREVIOUS_VERSION = ("operation", "source", "pipeline")


@dataclass(frozen=True)
class EvolvedCatalog:
    """A schema directory in which IngestDocument has two released versions."""

    catalog: SchemaCatalog
    previous: EventSchema
    """v1: the current schema without ``FIELDS_ADDED_SINCE_PREVIOUS_VERSION``."""


@pytest.fixture
def evolved_catalog(tmp_path: Path) -> EvolvedCatalog:
    directory = tmp_path / "avro"
    shutil.copytree(DEFAULT_SCHEMA_DIR, directory)
    current = json.loads((directory / "IngestDocument.avsc").read_text())
    previous = {
        **current,
        "fields": [
            field for field in current["fields"] if field["name"] not in FIELDS_ADDED_SINCE_PREVIOUS_VERSION
        ],
    }
    history = directory / "history" / "IngestDocument"
    (history / "v1.avsc").write_text(json.dumps(previous))
    (history / "v2.avsc").write_text(json.dumps(current))
    catalog = SchemaCatalog.from_directory(directory)
    return EvolvedCatalog(catalog=catalog, previous=catalog.history("IngestDocument")[0])

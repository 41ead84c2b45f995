"""The events Tidewire accepts and produces, as typed dataclasses.

Each event maps one to one onto its schema in ``schemas/avro/<Name>.avsc``: ``to_record``
gives the plain dict fastavro writes, ``from_record`` takes the dict fastavro reads (already
resolved to the current schema). Constructing an event validates it, so an event that exists
satisfies its contract, whether it was built in Python or decoded from Kafka.

Avro enum symbols cannot contain dots or be lower case by convention; the Python enums keep
the public names as their values (``NotificationType.INDEXED.value == "document.indexed"``)
and the Avro symbol as their member name.
"""

from __future__ import annotations

import enum
import json
import math
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Self, TypeAlias, TypeVar

from tidewire.errors import TidewireError
from tidewire.events.errors import EventValidationError

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
JsonObject: TypeAlias = "dict[str, JsonValue]"

# Limits of the IngestDocument contract (docs/events.md). The body limit keeps the whole
# message under Kafka's default 1 MB message size; the others keep the source table sane.
MAX_DOCUMENT_ID_CHARS = 512
MAX_TITLE_CHARS = 1_000
MAX_BODY_BYTES = 900_000
MAX_METADATA_BYTES = 65_536
MAX_SOURCE_CHARS = 200
# Tenant and pipeline names end up in SQL identifiers, topic names and metric labels.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DEFAULT_TENANT = "default"


class IngestOperation(enum.Enum):
    """What an :class:`IngestDocument` asks for. Avro symbol: the member name."""

    UPSERT = "upsert"
    DELETE = "delete"


class NotificationType(enum.Enum):
    """Kind of index change. The value is the public event name (SSE ``event:``, webhooks)."""

    INDEXED = "document.indexed"
    DELETED = "document.deleted"

    @property
    def event_name(self) -> str:
        """Public name of the event, e.g. ``"document.indexed"``."""
        return self.value

    @classmethod
    def from_event_name(cls, event_name: str) -> NotificationType:
        """The member for a public name; ``ValueError`` for an unknown one."""
        return cls(event_name)


class FailureStage(enum.Enum):
    """Processing stage at which a message became a dead letter. Avro symbol: the member name."""

    DECODE = "decode"
    VALIDATE = "validate"
    EMBED = "embed"
    WRITE = "write"
    DELIVER = "deliver"


class Event(ABC):
    """An event with an Avro schema in ``schemas/avro/<schema_name>.avsc``."""

    schema_name: ClassVar[str]

    @abstractmethod
    def to_record(self) -> dict[str, Any]:
        """The event as the plain dict its current Avro schema describes."""

    @classmethod
    @abstractmethod
    def from_record(cls, record: Mapping[str, Any]) -> Self:
        """Build the event from a dict read with its current schema; validates like the constructor."""

    @abstractmethod
    def message_key(self) -> bytes | None:
        """Kafka key to produce the event with, so that one document's events share a partition."""


EventT = TypeVar("EventT", bound=Event)


@dataclass(frozen=True, kw_only=True)
class IngestDocument(Event):
    """A document an upstream system asks Tidewire to index (topic ``tidewire.ingest``).

    ``metadata`` is a JSON object; on the wire it travels as the JSON-encoded string
    ``metadata_json``. Raises :class:`EventValidationError` when a field breaks the contract.
    """

    schema_name: ClassVar[str] = "IngestDocument"

    document_id: str
    event_time: datetime
    tenant_id: str = DEFAULT_TENANT
    operation: IngestOperation = IngestOperation.UPSERT
    title: str | None = None
    body: str | None = None
    metadata: JsonObject = field(default_factory=dict)
    source: str | None = None
    pipeline: str | None = None

    def __post_init__(self) -> None:
        _check_text("document_id", self.document_id, max_chars=MAX_DOCUMENT_ID_CHARS, identifier=True)
        _check_name("tenant_id", self.tenant_id)
        if self.pipeline is not None:
            _check_name("pipeline", self.pipeline)
        if self.source is not None:
            _check_text("source", self.source, max_chars=MAX_SOURCE_CHARS, identifier=True)
        if self.title is not None:
            _check_text("title", self.title, max_chars=MAX_TITLE_CHARS, identifier=False)
        if self.body is not None:
            _check_text("body", self.body, max_bytes=MAX_BODY_BYTES, identifier=False)
        _check_metadata(self.metadata)
        _check_aware("event_time", self.event_time)

    def to_record(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "tenant_id": self.tenant_id,
            "operation": self.operation.name,
            "title": self.title,
            "body": self.body,
            "metadata_json": encode_metadata(self.metadata),
            "event_time": self.event_time,
            "source": self.source,
            "pipeline": self.pipeline,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Self:
        return cls(
            document_id=record["document_id"],
            tenant_id=record["tenant_id"],
            operation=_enum_member(IngestOperation, record["operation"], "operation"),
            title=record["title"],
            body=record["body"],
            metadata=decode_metadata(record["metadata_json"]),
            event_time=record["event_time"],
            source=record["source"],
            pipeline=record["pipeline"],
        )

    def message_key(self) -> bytes:
        return self.document_id.encode()


@dataclass(frozen=True, kw_only=True)
class Notification(Event):
    """A committed change to the vector index (topic ``tidewire.notifications``)."""

    schema_name: ClassVar[str] = "Notification"

    event_type: NotificationType
    tenant_id: str
    document_id: str
    pipeline: str
    chunks: int
    model: str
    source_committed_at: datetime
    indexed_at: datetime
    freshness_ms: int
    source_lsn: int | None = None

    def __post_init__(self) -> None:
        _check_text("document_id", self.document_id, max_chars=MAX_DOCUMENT_ID_CHARS, identifier=True)
        _check_name("tenant_id", self.tenant_id)
        _check_name("pipeline", self.pipeline)
        if self.chunks < 0 or (self.event_type is NotificationType.DELETED and self.chunks != 0):
            raise EventValidationError(
                f"chunks must be 0 for {self.event_type.event_name} and never negative, got {self.chunks}",
                field="chunks",
            )
        _check_aware("source_committed_at", self.source_committed_at)
        _check_aware("indexed_at", self.indexed_at)

    @classmethod
    def for_change(
        cls,
        *,
        event_type: NotificationType,
        tenant_id: str,
        document_id: str,
        pipeline: str,
        chunks: int,
        model: str,
        source_committed_at: datetime,
        indexed_at: datetime,
        source_lsn: int | None = None,
    ) -> Notification:
        """A notification whose ``freshness_ms`` is measured from the two timestamps.

        Freshness is clamped at 0: a negative value only means the Postgres and worker clocks
        disagree, and a histogram of freshness has no use for it.
        """
        freshness = (indexed_at - source_committed_at) // timedelta(milliseconds=1)
        return cls(
            event_type=event_type,
            tenant_id=tenant_id,
            document_id=document_id,
            pipeline=pipeline,
            chunks=chunks,
            model=model,
            source_committed_at=source_committed_at,
            indexed_at=indexed_at,
            freshness_ms=max(0, freshness),
            source_lsn=source_lsn,
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "event_type": self.event_type.name,
            "tenant_id": self.tenant_id,
            "document_id": self.document_id,
            "pipeline": self.pipeline,
            "chunks": self.chunks,
            "model": self.model,
            "source_committed_at": self.source_committed_at,
            "indexed_at": self.indexed_at,
            "freshness_ms": self.freshness_ms,
            "source_lsn": self.source_lsn,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Self:
        return cls(
            event_type=_enum_member(NotificationType, record["event_type"], "event_type"),
            tenant_id=record["tenant_id"],
            document_id=record["document_id"],
            pipeline=record["pipeline"],
            chunks=record["chunks"],
            model=record["model"],
            source_committed_at=record["source_committed_at"],
            indexed_at=record["indexed_at"],
            freshness_ms=record["freshness_ms"],
            source_lsn=record["source_lsn"],
        )

    def message_key(self) -> bytes:
        return self.document_id.encode()


@dataclass(frozen=True)
class MessageHeader:
    """One Kafka header of a dead-lettered message."""

    name: str
    value: bytes | None


@dataclass(frozen=True, kw_only=True)
class DeadLetter(Event):
    """A message Tidewire gave up on, with the original bytes and the reason (topic ``tidewire.dlq``)."""

    schema_name: ClassVar[str] = "DeadLetter"

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    stage: FailureStage
    error_code: str
    reason: str
    failed_at: datetime
    error_class: str | None = None
    attempts: int = 1
    headers: tuple[MessageHeader, ...] = ()
    timestamp: datetime | None = None
    pipeline: str | None = None
    destination: str | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise EventValidationError(f"attempts must be at least 1, got {self.attempts}", field="attempts")
        _check_aware("failed_at", self.failed_at)
        if self.timestamp is not None:
            _check_aware("timestamp", self.timestamp)

    @classmethod
    def from_failure(
        cls,
        *,
        error: BaseException,
        stage: FailureStage,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        failed_at: datetime,
        headers: Sequence[tuple[str, bytes | None]] | None = None,
        timestamp: datetime | None = None,
        attempts: int = 1,
        pipeline: str | None = None,
        destination: str | None = None,
    ) -> DeadLetter:
        """A dead letter for ``error``: its stable code (``unexpected_error`` for an exception
        that is not a :class:`TidewireError`), its class and its first line as the reason.

        ``headers`` takes confluent-kafka's ``Message.headers()`` as is.
        """
        code = error.code if isinstance(error, TidewireError) else "unexpected_error"
        lines = str(error).strip().splitlines()
        return cls(
            topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            value=value,
            stage=stage,
            error_code=code,
            error_class=f"{type(error).__module__}.{type(error).__qualname__}",
            reason=lines[0] if lines else type(error).__name__,
            failed_at=failed_at,
            attempts=attempts,
            headers=tuple(MessageHeader(name, header_value) for name, header_value in headers or ()),
            timestamp=timestamp,
            pipeline=pipeline,
            destination=destination,
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp,
            "key": self.key,
            "value": self.value,
            "headers": [{"name": header.name, "value": header.value} for header in self.headers],
            "stage": self.stage.name,
            "error_code": self.error_code,
            "error_class": self.error_class,
            "reason": self.reason,
            "attempts": self.attempts,
            "failed_at": self.failed_at,
            "pipeline": self.pipeline,
            "destination": self.destination,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Self:
        return cls(
            topic=record["topic"],
            partition=record["partition"],
            offset=record["offset"],
            timestamp=record["timestamp"],
            key=record["key"],
            value=record["value"],
            headers=tuple(MessageHeader(header["name"], header["value"]) for header in record["headers"]),
            stage=_enum_member(FailureStage, record["stage"], "stage"),
            error_code=record["error_code"],
            error_class=record["error_class"],
            reason=record["reason"],
            attempts=record["attempts"],
            failed_at=record["failed_at"],
            pipeline=record["pipeline"],
            destination=record["destination"],
        )

    def message_key(self) -> bytes | None:
        # The original key: a re-driven message lands on the partition it came from.
        return self.key


EVENT_TYPES: tuple[type[Event], ...] = (IngestDocument, Notification, DeadLetter)


def encode_metadata(metadata: JsonObject) -> str:
    """The metadata object as the compact JSON text of ``metadata_json``."""
    return json.dumps(metadata, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def decode_metadata(metadata_json: str) -> JsonObject:
    """Parse ``metadata_json``; :class:`EventValidationError` unless it is a JSON object jsonb accepts."""
    if len(metadata_json.encode()) > MAX_METADATA_BYTES:
        raise EventValidationError(
            f"metadata_json is over {MAX_METADATA_BYTES} bytes; move large values into the body",
            field="metadata_json",
        )
    try:
        metadata = json.loads(metadata_json, parse_constant=_reject_json_constant)
    except ValueError as error:
        raise EventValidationError(
            f"metadata_json is not valid JSON ({error}); send a JSON object such as {{}}",
            field="metadata_json",
        ) from None
    if not isinstance(metadata, dict):
        raise EventValidationError(
            f"metadata_json must be a JSON object, not {type(metadata).__name__}", field="metadata_json"
        )
    return metadata


def _reject_json_constant(constant: str) -> JsonValue:
    raise ValueError(f"{constant} is not JSON")


def _check_metadata(metadata: JsonObject) -> None:
    if not isinstance(metadata, dict):
        raise EventValidationError("metadata must be a JSON object (a dict)", field="metadata")
    problem = jsonb_refusal(metadata, path="metadata")
    if problem is not None:
        raise EventValidationError(problem, field="metadata")
    if len(encode_metadata(metadata).encode()) > MAX_METADATA_BYTES:
        raise EventValidationError(
            f"metadata is over {MAX_METADATA_BYTES} bytes as JSON; move large values into the body",
            field="metadata",
        )


def jsonb_refusal(value: object, *, path: str) -> str | None:
    """Why Postgres's jsonb would refuse ``value`` (named ``path`` in the reason), or None.

    jsonb refuses NaN, Infinity and the NUL character, which Python's json reads and writes; finding
    them before the database turns a failed write later into a clear dead letter now.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path} has a non-string key {key!r}"
            problem = jsonb_refusal(key, path=path) or jsonb_refusal(item, path=f"{path}.{key}")
            if problem is not None:
                return problem
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problem = jsonb_refusal(item, path=f"{path}[{index}]")
            if problem is not None:
                return problem
    elif isinstance(value, str):
        if "\x00" in value:
            return f"{path} contains a NUL character (\\u0000), which jsonb cannot store"
    elif isinstance(value, float):
        if not math.isfinite(value):
            return f"{path} is {value}: NaN or Infinity, which jsonb cannot store"
    elif value is not None and not isinstance(value, bool | int):
        return f"{path} is a {type(value).__name__}, not a JSON value"
    return None


def _check_text(
    field_name: str,
    value: str,
    *,
    max_chars: int | None = None,
    max_bytes: int | None = None,
    identifier: bool,
) -> None:
    # An identifier (id, source) must be non-empty and free of control characters; free text
    # (title, body) may be empty and hold newlines and tabs.
    if not isinstance(value, str):
        raise EventValidationError(
            f"{field_name} must be a string, not {type(value).__name__}", field=field_name
        )
    if identifier and not value:
        raise EventValidationError(f"{field_name} must not be empty", field=field_name)
    if max_chars is not None and len(value) > max_chars:
        raise EventValidationError(
            f"{field_name} is {len(value)} characters, over the limit of {max_chars}", field=field_name
        )
    if max_bytes is not None and (size := len(value.encode())) > max_bytes:
        raise EventValidationError(
            f"{field_name} is {size} bytes as UTF-8, over the limit of {max_bytes}", field=field_name
        )
    # Postgres text cannot hold NUL at all.
    if "\x00" in value:
        raise EventValidationError(
            f"{field_name} contains a NUL character, which Postgres cannot store", field=field_name
        )
    if identifier and any(unicodedata.category(char) == "Cc" for char in value):
        raise EventValidationError(f"{field_name} contains control characters", field=field_name)


def _check_name(field_name: str, value: str) -> None:
    if not isinstance(value, str) or NAME_PATTERN.fullmatch(value) is None:
        raise EventValidationError(
            f"{field_name} {value!r} is not a valid name: 1 to 64 characters from A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit",
            field=field_name,
        )


def _check_aware(field_name: str, value: datetime) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise EventValidationError(
            f"{field_name} must be a timezone-aware datetime (e.g. datetime.now(UTC))", field=field_name
        )


_EnumT = TypeVar("_EnumT", bound=enum.Enum)


def _enum_member(enum_type: type[_EnumT], symbol: str, field_name: str) -> _EnumT:
    try:
        return enum_type[symbol]
    except KeyError:
        raise EventValidationError(
            f"{field_name} {symbol!r} is not one of {', '.join(enum_type.__members__)}", field=field_name
        ) from None

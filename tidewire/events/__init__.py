"""Tidewire's event contracts: the Avro schemas in ``schemas/avro/``, typed events, codecs.

Typical use at an entry point::

    codec = make_event_codec(settings.kafka)
    value = codec.encode(notification, topic=settings.topics.notifications)
    event = codec.decode(message.value(), IngestDocument, topic=message.topic())

The Schema Registry codec lives in :mod:`tidewire.events.schema_registry` and is imported only
when a registry is configured.
"""

from tidewire.events.codec import (
    SINGLE_OBJECT_MARKER,
    EventCodec,
    SingleObjectCodec,
    make_event_codec,
)
from tidewire.events.errors import (
    EventDecodeError,
    EventEncodeError,
    EventError,
    EventSchemaError,
    EventValidationError,
    InvalidEventError,
    SchemaRegistryUnavailableError,
)
from tidewire.events.models import (
    EVENT_TYPES,
    DeadLetter,
    Event,
    FailureStage,
    IngestDocument,
    IngestOperation,
    MessageHeader,
    Notification,
    NotificationType,
)
from tidewire.events.schemas import EVENT_NAMESPACE, EventSchema, SchemaCatalog, default_catalog

__all__ = [
    "EVENT_NAMESPACE",
    "EVENT_TYPES",
    "SINGLE_OBJECT_MARKER",
    "DeadLetter",
    "Event",
    "EventCodec",
    "EventDecodeError",
    "EventEncodeError",
    "EventError",
    "EventSchema",
    "EventSchemaError",
    "EventValidationError",
    "FailureStage",
    "IngestDocument",
    "IngestOperation",
    "InvalidEventError",
    "MessageHeader",
    "Notification",
    "NotificationType",
    "SchemaCatalog",
    "SchemaRegistryUnavailableError",
    "SingleObjectCodec",
    "default_catalog",
    "make_event_codec",
]

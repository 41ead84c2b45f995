"""Errors of the event contracts: schemas, encoding, decoding and validation.

The stream processors route on the class, not the message:

- :class:`InvalidEventError` (and its subclasses :class:`EventDecodeError` and
  :class:`EventValidationError`) means *this message* can never be processed: send it to the
  dead-letter topic with ``code`` and ``reason`` and move on.
- :class:`SchemaRegistryUnavailableError` means the Schema Registry could not be asked: the
  message may be fine, so retry after ``retry_after_s`` instead of dead-lettering it.
- :class:`EventSchemaError` means the ``.avsc`` files themselves are missing or broken: a
  deployment problem, raised when the catalog loads.
"""

from __future__ import annotations

from tidewire.errors import TidewireError


class EventError(TidewireError):
    """Root of the event-contract errors."""

    code = "event_error"


class EventSchemaError(EventError):
    """An ``.avsc`` file is missing, unreadable or not a valid Avro schema."""

    code = "event_schema_invalid"


class EventEncodeError(EventError):
    """An event could not be serialized: its record does not fit its schema."""

    code = "event_encode_error"


class InvalidEventError(EventError):
    """A message that will never be processed however often it is retried: dead-letter it.

    ``reason`` is the one-line explanation that goes into the dead letter.
    """

    code = "event_invalid"

    @property
    def reason(self) -> str:
        return self.message


class EventDecodeError(InvalidEventError):
    """The bytes are not an event Tidewire can read.

    Codes: ``event_truncated`` (too short for its framing), ``event_bad_marker`` (not Avro
    single-object or Confluent framing), ``event_unknown_schema`` (writer schema not known),
    ``event_wrong_type`` (a valid event of another type), ``event_malformed`` (the Avro body does
    not match its writer schema).
    """

    code = "event_decode_error"


class EventValidationError(InvalidEventError):
    """A well-formed event whose content breaks the contract (an empty id, metadata that is not a
    JSON object, a body over the size limit, ...). ``field`` names the offending field."""

    code = "event_validation_error"

    def __init__(self, message: str, *, field: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class SchemaRegistryUnavailableError(EventError):
    """The Schema Registry did not answer (or answered 5xx): retry later, do not dead-letter."""

    code = "schema_registry_unavailable"

    def __init__(self, message: str, *, retry_after_s: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

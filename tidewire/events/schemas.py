"""The Avro schemas of Tidewire's events, loaded once from ``schemas/avro/``.

Layout of the schema directory::

    schemas/avro/<EventName>.avsc               the current schema (what Tidewire writes and reads)
    schemas/avro/history/<EventName>/v<N>.avsc  every released version, v1 first

A reader resolves any released version to the current schema, so the single-object codec
can decode a message by the fingerprint of whichever version wrote it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from tidewire.events.errors import EventSchemaError

EVENT_NAMESPACE = "dev.tidewire.events"

# The repository root is three levels above this file (tidewire/events/schemas.py); the
# project installs itself editable (`make setup`), so this is also where an installed
# Tidewire finds its contracts. Other layouts pass their directory explicitly.
DEFAULT_SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "avro"

_HISTORY_FILE = re.compile(r"^v([1-9][0-9]*)\.avsc$")


@dataclass(frozen=True)
class EventSchema:
    """One version of one event's schema, with what encoding needs precomputed."""

    name: str
    """Event name, also the file name: ``IngestDocument``."""
    version: int | None
    """Released version number from ``history/<name>/v<N>.avsc``; ``None`` for the current file."""
    definition: Mapping[str, Any] = field(repr=False)
    """The schema as written in the file (plain JSON)."""
    parsed: dict[str, Any] = field(repr=False)
    """The schema as fastavro parsed it, for ``schemaless_writer`` / ``schemaless_reader``."""
    canonical_form: str = field(repr=False)
    """Avro Parsing Canonical Form: what the fingerprint is computed over."""
    fingerprint: bytes
    """CRC-64-AVRO fingerprint of the canonical form, 8 bytes little-endian (single-object header)."""

    @property
    def full_name(self) -> str:
        return f"{self.definition.get('namespace', '')}.{self.definition['name']}".lstrip(".")

    @property
    def text(self) -> str:
        """The definition as compact JSON, for the Schema Registry."""
        return json.dumps(self.definition, separators=(",", ":"))


def load_schema_file(path: Path, *, name: str, version: int | None) -> EventSchema:
    """Read, parse and fingerprint one ``.avsc`` file.

    Raises :class:`EventSchemaError` naming the file when it is unreadable or not valid Avro.
    """
    try:
        definition = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise EventSchemaError(f"cannot read Avro schema {path}: {error}") from error
    return build_event_schema(definition, name=name, version=version, origin=str(path))


def build_event_schema(
    definition: Mapping[str, Any], *, name: str, version: int | None, origin: str = "<memory>"
) -> EventSchema:
    """Parse and fingerprint a schema given as JSON data; ``origin`` names it in errors."""
    if not isinstance(definition, Mapping) or definition.get("type") != "record":
        raise EventSchemaError(f"Avro schema {origin} must be a record schema")
    if definition.get("name") != name:
        raise EventSchemaError(f"Avro schema {origin} must be named {name!r}, not {definition.get('name')!r}")
    try:
        # A fresh named-type registry per schema: two versions of one event share record
        # and enum names, which fastavro would otherwise treat as redefinitions.
        parsed = fastavro.parse_schema(dict(definition), named_schemas={})
        if not isinstance(parsed, dict):
            raise TypeError("not a record")
        canonical_form = to_parsing_canonical_form(dict(definition))
    except Exception as error:  # fastavro raises SchemaParseError, ValueError, KeyError, TypeError...
        raise EventSchemaError(f"Avro schema {origin} is invalid: {error}") from error
    # fastavro's CRC-64-AVRO hex already lists the bytes little-endian, the order the
    # single-object header uses (as Java's SchemaNormalization.parsingFingerprint does).
    fingerprint_bytes = bytes.fromhex(fingerprint(canonical_form, "CRC-64-AVRO"))
    return EventSchema(
        name=name,
        version=version,
        definition=definition,
        parsed=parsed,
        canonical_form=canonical_form,
        fingerprint=fingerprint_bytes,
    )


class SchemaCatalog:
    """Every event's current schema and released versions, indexed by name and by fingerprint."""

    def __init__(self, current: Mapping[str, EventSchema], history: Mapping[str, list[EventSchema]]) -> None:
        self._current = dict(current)
        self._history = {name: sorted(versions, key=_version_number) for name, versions in history.items()}
        self._by_fingerprint: dict[bytes, EventSchema] = {}
        for name, schema in self._current.items():
            for version in [*self._history.get(name, []), schema]:
                # An unchanged current schema has the fingerprint of its latest release: keep
                # the current entry, which is the same schema.
                self._by_fingerprint[version.fingerprint] = version

    @classmethod
    def from_directory(cls, directory: Path = DEFAULT_SCHEMA_DIR) -> SchemaCatalog:
        """Load ``<directory>/*.avsc`` and ``<directory>/history/<name>/v<N>.avsc``.

        Raises :class:`EventSchemaError` when the directory has no schemas, a file is invalid,
        or a history folder has no current schema or a gap in its version numbers.
        """
        if not directory.is_dir():
            raise EventSchemaError(
                f"Avro schema directory {directory} does not exist; "
                "run Tidewire from its repository (pip install -e .) or pass the schemas/avro path"
            )
        current = {
            path.stem: load_schema_file(path, name=path.stem, version=None)
            for path in sorted(directory.glob("*.avsc"))
        }
        if not current:
            raise EventSchemaError(f"no .avsc files in {directory}")
        history: dict[str, list[EventSchema]] = {}
        history_dir = directory / "history"
        if history_dir.is_dir():
            for event_dir in sorted(path for path in history_dir.iterdir() if path.is_dir()):
                if event_dir.name not in current:
                    raise EventSchemaError(f"{event_dir} has no current schema {event_dir.name}.avsc")
                history[event_dir.name] = _load_history(event_dir)
        return cls(current, history)

    @property
    def names(self) -> list[str]:
        """Names of the events, sorted."""
        return sorted(self._current)

    def current(self, name: str) -> EventSchema:
        """The current schema of an event; :class:`EventSchemaError` when there is none."""
        try:
            return self._current[name]
        except KeyError:
            raise EventSchemaError(
                f"no Avro schema for event {name!r}; known: {', '.join(self.names)}"
            ) from None

    def history(self, name: str) -> list[EventSchema]:
        """Released versions of an event, oldest first (empty when none was released)."""
        return list(self._history.get(name, []))

    def by_fingerprint(self, fingerprint: bytes) -> EventSchema | None:
        """The schema (current or released) with this single-object fingerprint, if any."""
        return self._by_fingerprint.get(fingerprint)


def _load_history(event_dir: Path) -> list[EventSchema]:
    versions = []
    for path in sorted(event_dir.iterdir()):
        match = _HISTORY_FILE.match(path.name)
        if match is None:
            raise EventSchemaError(f"unexpected file {path}; history files are named v<N>.avsc")
        versions.append(load_schema_file(path, name=event_dir.name, version=int(match.group(1))))
    numbers = sorted(_version_number(schema) for schema in versions)
    if numbers != list(range(1, len(numbers) + 1)):
        raise EventSchemaError(f"{event_dir} must hold v1.avsc to v{len(numbers)}.avsc without gaps")
    return versions


def _version_number(schema: EventSchema) -> int:
    return schema.version or 0


@functools.cache
def default_catalog() -> SchemaCatalog:
    """The catalog of the repository's ``schemas/avro/``, loaded on first use and then shared."""
    return SchemaCatalog.from_directory(DEFAULT_SCHEMA_DIR)

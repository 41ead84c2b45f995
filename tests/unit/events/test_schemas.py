"""The .avsc files and the catalog that loads them: names, docs, fingerprints, Python parity."""

from __future__ import annotations

import enum
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.unit.events.avro_reference import crc64_avro, parsing_canonical_form
from tests.unit.events.conftest import SAMPLE_EVENTS
from tidewire.events import (
    EVENT_NAMESPACE,
    EVENT_TYPES,
    EventSchemaError,
    FailureStage,
    IngestOperation,
    NotificationType,
    SchemaCatalog,
)
from tidewire.events.schemas import DEFAULT_SCHEMA_DIR

EVENT_NAMES = sorted(event_type.schema_name for event_type in EVENT_TYPES)


def test_every_event_type_has_exactly_one_current_schema(catalog: SchemaCatalog) -> None:
    assert catalog.names == EVENT_NAMES


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_every_schema_has_the_namespace_and_a_doc_on_every_type_and_field(name: str) -> None:
    definition = json.loads((DEFAULT_SCHEMA_DIR / f"{name}.avsc").read_text())
    assert definition["namespace"] == EVENT_NAMESPACE
    assert _undocumented(definition, path=name) == []


def _undocumented(schema: Any, *, path: str) -> list[str]:
    """Paths of named types and record fields without a non-empty ``doc``."""
    if isinstance(schema, list):
        return [missing for branch in schema for missing in _undocumented(branch, path=path)]
    if not isinstance(schema, dict):
        return []
    missing = []
    if schema.get("type") in ("record", "enum", "fixed") and not schema.get("doc"):
        missing.append(path)
    for field in schema.get("fields", []):
        field_path = f"{path}.{field['name']}"
        if not field.get("doc"):
            missing.append(field_path)
        missing.extend(_undocumented(field["type"], path=field_path))
    for nested in ("items", "values"):
        if nested in schema:
            missing.extend(_undocumented(schema[nested], path=f"{path}[{nested}]"))
    if isinstance(schema.get("type"), dict | list):
        missing.extend(_undocumented(schema["type"], path=path))
    return missing


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_every_event_has_a_released_history_from_v1(catalog: SchemaCatalog, name: str) -> None:
    history = catalog.history(name)
    assert history, f"release {name} as schemas/avro/history/{name}/v1.avsc"
    assert [schema.version for schema in history] == list(range(1, len(history) + 1))


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_fingerprint_matches_an_independent_canonical_form_and_crc64(
    catalog: SchemaCatalog, name: str
) -> None:
    for schema in [*catalog.history(name), catalog.current(name)]:
        canonical_form = parsing_canonical_form(dict(schema.definition))
        assert schema.canonical_form == canonical_form
        assert schema.fingerprint == crc64_avro(canonical_form.encode()).to_bytes(8, "little")
        assert catalog.by_fingerprint(schema.fingerprint) is not None


@pytest.mark.parametrize(
    ("canonical_form", "signed_fingerprint"),
    [
        # Published in Apache Avro's share/test/data/schema-tests.txt (signed 64-bit values).
        ('"null"', 7195948357588979594),
        ('"boolean"', -6970731678124411036),
        ('"int"', 8247732601305521295),
        ('"long"', -3434872931120570953),
        ('{"name":"foo","type":"fixed","size":15}', 1756455273707447556),
        ('{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}', 7843277075252814651),
    ],
)
def test_reference_crc64_avro_reproduces_the_avro_project_vectors(
    canonical_form: str, signed_fingerprint: int
) -> None:
    assert crc64_avro(canonical_form.encode()) == signed_fingerprint & 0xFFFF_FFFF_FFFF_FFFF


@pytest.mark.parametrize(
    ("python_enum", "schema_name", "enum_field"),
    [
        (IngestOperation, "IngestDocument", "operation"),
        (NotificationType, "Notification", "event_type"),
        (FailureStage, "DeadLetter", "stage"),
    ],
)
def test_python_enums_have_exactly_the_avro_symbols(
    catalog: SchemaCatalog, python_enum: type[enum.Enum], schema_name: str, enum_field: str
) -> None:
    fields = {field["name"]: field for field in catalog.current(schema_name).definition["fields"]}
    assert list(python_enum.__members__) == fields[enum_field]["type"]["symbols"]


def test_notification_types_map_to_the_public_event_names() -> None:
    assert NotificationType.INDEXED.event_name == "document.indexed"
    assert NotificationType.DELETED.event_name == "document.deleted"
    assert NotificationType.from_event_name("document.deleted") is NotificationType.DELETED
    with pytest.raises(ValueError):
        NotificationType.from_event_name("INDEXED")


@pytest.mark.parametrize("sample_name", sorted(SAMPLE_EVENTS))
def test_to_record_gives_exactly_the_schema_fields(catalog: SchemaCatalog, sample_name: str) -> None:
    event = SAMPLE_EVENTS[sample_name]
    field_names = [field["name"] for field in catalog.current(event.schema_name).definition["fields"]]
    assert sorted(event.to_record()) == sorted(field_names)


def _copy_schemas(tmp_path: Path) -> Path:
    directory = tmp_path / "avro"
    shutil.copytree(DEFAULT_SCHEMA_DIR, directory)
    return directory


def test_catalog_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(EventSchemaError, match="does not exist"):
        SchemaCatalog.from_directory(tmp_path / "nowhere")


def test_catalog_names_the_file_that_is_not_json(tmp_path: Path) -> None:
    directory = _copy_schemas(tmp_path)
    (directory / "Notification.avsc").write_text("{not json")
    with pytest.raises(EventSchemaError, match=r"Notification\.avsc"):
        SchemaCatalog.from_directory(directory)


def test_catalog_refuses_a_schema_whose_name_differs_from_its_file(tmp_path: Path) -> None:
    directory = _copy_schemas(tmp_path)
    shutil.copy(directory / "Notification.avsc", directory / "Renamed.avsc")
    with pytest.raises(EventSchemaError, match="must be named 'Renamed'"):
        SchemaCatalog.from_directory(directory)


def test_catalog_refuses_an_invalid_avro_schema(tmp_path: Path) -> None:
    directory = _copy_schemas(tmp_path)
    definition = json.loads((directory / "DeadLetter.avsc").read_text())
    definition["fields"][0]["type"] = "no.such.Type"
    (directory / "DeadLetter.avsc").write_text(json.dumps(definition))
    with pytest.raises(EventSchemaError, match="is invalid"):
        SchemaCatalog.from_directory(directory)


def test_catalog_refuses_a_gap_in_the_history(tmp_path: Path) -> None:
    directory = _copy_schemas(tmp_path)
    (directory / "history" / "IngestDocument" / "v1.avsc").rename(
        directory / "history" / "IngestDocument" / "v2.avsc"
    )
    with pytest.raises(EventSchemaError, match="without gaps"):
        SchemaCatalog.from_directory(directory)


def test_catalog_refuses_history_without_a_current_schema(tmp_path: Path) -> None:
    directory = _copy_schemas(tmp_path)
    (directory / "Notification.avsc").unlink()
    with pytest.raises(EventSchemaError, match="has no current schema"):
        SchemaCatalog.from_directory(directory)


def test_unknown_event_name_is_a_typed_error(catalog: SchemaCatalog) -> None:
    with pytest.raises(EventSchemaError, match="known: DeadLetter, IngestDocument, Notification"):
        catalog.current("Nope")

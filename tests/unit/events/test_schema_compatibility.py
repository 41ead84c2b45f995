"""Backward compatibility: the current schema of every event reads data written by every
released version in ``schemas/avro/history/``.

Two independent checks, both required: Apache Avro's own ReaderWriterCompatibilityChecker
(the schema-resolution rules, statically), and an actual round trip — a record written with
each released version by fastavro and read back with the current schema.

To change a schema: edit ``schemas/avro/<Name>.avsc`` (new fields need a default), run these
tests, and on release copy it to ``history/<Name>/v<N+1>.avsc``.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from fastavro import schemaless_reader, schemaless_writer

from tests.unit.events.avro_reference import sample_record
from tests.unit.events.conftest import FIELDS_ADDED_SINCE_PREVIOUS_VERSION, EvolvedCatalog
from tidewire.events import SchemaCatalog
from tidewire.events.schemas import DEFAULT_SCHEMA_DIR, EventSchema


def incompatibilities(reader: EventSchema, writer: EventSchema) -> list[str]:
    """Why ``reader`` cannot read data written with ``writer``, per Apache Avro's checker (empty if it can)."""
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(reader.text), avro.schema.parse(writer.text)
    )
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = ", ".join(sorted(kind.value for kind in result.incompatibilities))
    return [f"{kinds}: {', '.join(sorted(result.messages))} at {', '.join(sorted(result.locations))}"]


def unreadable_sample(reader: EventSchema, writer: EventSchema) -> str | None:
    """Write a sample record with ``writer``, read it with ``reader``; the error, if any."""
    buffer = io.BytesIO()
    schemaless_writer(buffer, writer.parsed, sample_record(dict(writer.definition)))
    buffer.seek(0)
    try:
        schemaless_reader(buffer, writer.parsed, reader.parsed)
    except Exception as error:  # any failure to resolve is the finding
        return f"{type(error).__name__}: {error}"
    return None


def backward_compatibility_problems(catalog: SchemaCatalog) -> list[str]:
    """Every way in which a current schema cannot read a released version of itself."""
    problems = []
    for name in catalog.names:
        current = catalog.current(name)
        for released in catalog.history(name):
            label = f"{name}.avsc cannot read history/{name}/v{released.version}.avsc"
            problems += [f"{label}: {problem}" for problem in incompatibilities(current, released)]
            if (error := unreadable_sample(current, released)) is not None:
                problems.append(f"{label} (sample record): {error}")
    return problems


def test_every_current_schema_reads_every_released_version(catalog: SchemaCatalog) -> None:
    assert backward_compatibility_problems(catalog) == []


def test_adding_fields_with_defaults_is_backward_compatible(evolved_catalog: EvolvedCatalog) -> None:
    assert backward_compatibility_problems(evolved_catalog.catalog) == []
    current = evolved_catalog.catalog.current("IngestDocument")
    buffer = io.BytesIO()
    schemaless_writer(
        buffer, evolved_catalog.previous.parsed, sample_record(dict(evolved_catalog.previous.definition))
    )
    buffer.seek(0)
    record = schemaless_reader(buffer, evolved_catalog.previous.parsed, current.parsed)
    assert isinstance(record, dict)
    assert {name: record[name] for name in FIELDS_ADDED_SINCE_PREVIOUS_VERSION} == {
        "operation": "UPSERT",
        "source": None,
        "pipeline": None,
    }


def _edit_current(tmp_path: Path, name: str, edit: Any) -> SchemaCatalog:
    """A copy of the schema directory whose current ``name`` schema has been changed by ``edit``."""
    directory = tmp_path / "avro"
    shutil.copytree(DEFAULT_SCHEMA_DIR, directory)
    path = directory / f"{name}.avsc"
    definition = json.loads(path.read_text())
    edit(definition)
    path.write_text(json.dumps(definition))
    return SchemaCatalog.from_directory(directory)


def _field(definition: dict[str, Any], field_name: str) -> dict[str, Any]:
    return next(field for field in definition["fields"] if field["name"] == field_name)


@pytest.mark.parametrize(
    ("name", "edit", "expected"),
    [
        (
            "IngestDocument",
            lambda d: d["fields"].append({"name": "language", "type": "string", "doc": "no default"}),
            "reader_field_missing_default_value",
        ),
        (
            "IngestDocument",
            lambda d: _field(d, "document_id").update(type="long"),
            "type_mismatch",
        ),
        (
            "Notification",
            lambda d: _field(d, "event_type")["type"].update(symbols=["INDEXED"]),
            "missing_enum_symbols",
        ),
        (
            "DeadLetter",
            lambda d: _field(d, "key").update(type="bytes", default=""),
            # The sample record takes the non-null branch and so still reads: only the static
            # checker sees that a null key could not.
            "reader type: bytes not compatible with writer type: null",
        ),
        (
            "Notification",
            lambda d: _field(d, "chunks").update(type="string"),
            "type_mismatch",
        ),
    ],
    ids=["new-required-field", "changed-type", "removed-enum-symbol", "no-longer-nullable", "int-to-string"],
)
def test_incompatible_changes_are_detected(tmp_path: Path, name: str, edit: Any, expected: str) -> None:
    problems = backward_compatibility_problems(_edit_current(tmp_path, name, edit))
    assert problems, "the check let an incompatible change through"
    assert any(expected in problem for problem in problems), problems
    assert all(problem.startswith(f"{name}.avsc cannot read history/{name}/v1.avsc") for problem in problems)

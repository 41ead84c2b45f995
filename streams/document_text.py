"""What a row becomes in the index: its text, the hash of that text, its tenant and its metadata.

Pure functions of a :class:`~tidewire.pipeline_spec.PipelineSpec` and a row as Debezium sent it.
"""

from __future__ import annotations

import hashlib
import json
import string
from typing import Any

from connectors.debezium_config import UNAVAILABLE_VALUE_PLACEHOLDER
from streams.errors import PoisonEventError
from tidewire.events import FailureStage
from tidewire.events.models import NAME_PATTERN, jsonb_refusal
from tidewire.pipeline_spec import PipelineSpec


def build_text(spec: PipelineSpec, row: dict[str, Any]) -> str:
    """The text to embed: the template with each column's value (None → ""), stripped.

    A template column missing from the row is a :class:`PoisonEventError`: the spec does not
    match the table, and no retry will change that.
    """
    parts: list[str] = []
    for literal, field, _format_spec, _conversion in string.Formatter().parse(spec.text_template):
        parts.append(literal)
        if field is None:
            continue
        if field not in row:
            raise PoisonEventError(
                f"column {field!r} of the text template is not in the row of {spec.source_table}",
                stage=FailureStage.VALIDATE,
                code="cdc_missing_column",
            )
        parts.append(_as_text(row[field]))
    return "".join(parts).strip()


def text_hash(text: str) -> str:
    """sha256 hex of the embedded text: equal hashes mean the stored vectors are still right."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def tenant_of(spec: PipelineSpec, row: dict[str, Any]) -> str:
    """The row's tenant: the tenant column's value, or the pipeline's default tenant."""
    if spec.tenant_column is None:
        return spec.default_tenant
    value = row.get(spec.tenant_column)
    if value is None or value == "":
        return spec.default_tenant
    tenant = str(value)
    if not NAME_PATTERN.fullmatch(tenant):
        raise PoisonEventError(
            f"tenant {tenant[:80]!r} is not a valid tenant name (letters, digits, '.', '_', '-')",
            stage=FailureStage.VALIDATE,
            code="cdc_invalid_tenant",
        )
    return tenant


def metadata_of(spec: PipelineSpec, row: dict[str, Any]) -> dict[str, Any]:
    """The JSON object stored with every chunk of the row.

    A metadata column holding a JSON object (Debezium sends ``jsonb`` as its JSON text) is merged
    into the result, so ``metadata = {"lang": "en"}`` is searchable as ``lang``; any other value is
    stored under its column name.
    """
    metadata: dict[str, Any] = {}
    for column in spec.metadata_columns:
        value = row.get(column)
        parsed = _json_object_or_none(value)
        if parsed is not None:
            metadata.update(parsed)
        elif value is not None:
            metadata[column] = value
    # A row re-read from Postgres may hold dates or decimals; the stored metadata is plain JSON.
    plain: dict[str, Any] = json.loads(json.dumps(metadata, default=str))
    problem = jsonb_refusal(plain, path="metadata")
    if problem is not None:
        raise PoisonEventError(problem, stage=FailureStage.VALIDATE, code="cdc_invalid_metadata")
    return plain


def carries_placeholder(spec: PipelineSpec, row: dict[str, Any]) -> bool:
    """Whether a column the index reads arrived as Debezium's unchanged-TOAST placeholder (the
    connector's ``unavailable.value.placeholder``): an unchanged TOASTed value the update event
    does not carry. It must never be embedded."""
    columns = [*spec.template_columns, *spec.metadata_columns]
    if spec.tenant_column:
        columns.append(spec.tenant_column)
    return any(row.get(column) == UNAVAILABLE_VALUE_PLACEHOLDER for column in columns)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _json_object_or_none(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.startswith("{"):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None

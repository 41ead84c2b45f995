"""Pipeline specs: which source table becomes which vectors, declared in ``tidewire.toml``.

```toml
[[pipelines]]
name = "documents"
source_table = "public.documents"
primary_key = "id"
tenant_column = "tenant_id"
text_template = "{title}\\n\\n{body}"
metadata_columns = ["metadata"]
```

The default (no ``[[pipelines]]`` at all) is exactly the pipeline above. Checks that need
no database run when settings load; checks against the live table (columns exist, the
primary key is what the spec says) run in :mod:`tidewire.pipeline_validation`.
"""

from __future__ import annotations

import re
import string
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PIPELINE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


class ChunkingSpec(BaseModel):
    """Token-aware chunking of the embedded text (same tokenizer as the model)."""

    kind: Literal["tokens"] = "tokens"
    max_tokens: int = Field(default=256, ge=16, le=256)
    overlap_tokens: int = Field(default=32, ge=0)

    @model_validator(mode="after")
    def _overlap_below_max(self) -> ChunkingSpec:
        if self.overlap_tokens >= self.max_tokens:
            raise ValueError("chunking.overlap_tokens must be smaller than chunking.max_tokens")
        return self


class PipelineSpec(BaseModel):
    """One source table kept in sync with its vectors."""

    model_config = {"extra": "forbid"}

    name: str = "documents"
    source_table: str = "public.documents"
    primary_key: str = "id"
    tenant_column: str | None = "tenant_id"
    default_tenant: str = "default"
    text_template: str = "{title}\n\n{body}"
    metadata_columns: list[str] = Field(default_factory=lambda: ["metadata"])
    chunking: ChunkingSpec = ChunkingSpec()
    model: str = "sentence-transformers/all-MiniLM-L6-v2"

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _PIPELINE_NAME.match(value):
            raise ValueError(f"pipeline name {value!r} must be lower-case letters, digits, '-' or '_'")
        return value

    @field_validator("source_table")
    @classmethod
    def _qualified_table(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) != 2 or not all(_IDENTIFIER.match(part) for part in parts):
            raise ValueError(
                f"source_table {value!r} must be schema.table in lower case, e.g. public.documents"
            )
        return value

    @field_validator("tenant_column", mode="before")
    @classmethod
    def _empty_means_no_tenant(cls, value: object) -> object:
        # TOML has no null: `tenant_column = ""` is how a file says "no tenant column".
        return None if value == "" else value

    @field_validator("primary_key", "tenant_column")
    @classmethod
    def _column_name(cls, value: str | None) -> str | None:
        if value is not None and not _IDENTIFIER.match(value):
            raise ValueError(f"{value!r} is not a plain lower-case column name")
        return value

    @field_validator("metadata_columns")
    @classmethod
    def _metadata_column_names(cls, value: list[str]) -> list[str]:
        for column in value:
            if not _IDENTIFIER.match(column):
                raise ValueError(f"metadata column {column!r} is not a plain lower-case column name")
        duplicates = sorted({column for column in value if value.count(column) > 1})
        if duplicates:
            raise ValueError(f"metadata_columns lists {', '.join(duplicates)} more than once")
        return value

    @field_validator("text_template")
    @classmethod
    def _template_fields(cls, value: str) -> str:
        try:
            fields = [field for _, field, _, _ in string.Formatter().parse(value) if field is not None]
        except ValueError as error:
            raise ValueError(f"text_template is not a valid template: {error}") from None
        if not fields:
            raise ValueError("text_template must name at least one column, e.g. '{title}\\n\\n{body}'")
        for field in fields:
            if not _IDENTIFIER.match(field):
                raise ValueError(f"text_template field {{{field}}} must be a plain column name")
        return value

    @property
    def schema_name(self) -> str:
        return self.source_table.split(".")[0]

    @property
    def table_name(self) -> str:
        return self.source_table.split(".")[1]

    @property
    def template_columns(self) -> list[str]:
        """The columns the text template reads, in order of first use."""
        seen: list[str] = []
        for _, field, _, _ in string.Formatter().parse(self.text_template):
            if field is not None and field not in seen:
                seen.append(field)
        return seen


def default_pipelines() -> list[PipelineSpec]:
    return [PipelineSpec()]

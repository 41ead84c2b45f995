"""PipelineSpec: the static checks that run when settings load (no database needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tidewire.errors import ConfigurationError
from tidewire.pipeline_spec import PipelineSpec, default_pipelines
from tidewire.settings import load_settings


def test_the_default_pipeline_is_the_documents_table() -> None:
    (spec,) = default_pipelines()
    assert (spec.name, spec.source_table, spec.primary_key, spec.tenant_column) == (
        "documents",
        "public.documents",
        "id",
        "tenant_id",
    )
    assert (spec.schema_name, spec.table_name) == ("public", "documents")
    assert spec.template_columns == ["title", "body"]
    assert spec.metadata_columns == ["metadata"]
    assert spec.chunking.max_tokens == 256 and spec.chunking.overlap_tokens == 32


def test_template_columns_are_listed_once_in_order_of_use() -> None:
    spec = PipelineSpec(text_template="{title} {body}\n{title} by {author}")
    assert spec.template_columns == ["title", "body", "author"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "Bad Name", "must be lower-case letters"),
        ("name", "", "must be lower-case letters"),
        ("source_table", "documents", "must be schema.table"),
        ("source_table", "public.Documents", "must be schema.table"),
        ("source_table", "a.b.c", "must be schema.table"),
        ("primary_key", "Id", "not a plain lower-case column name"),
        ("tenant_column", "tenant-id", "not a plain lower-case column name"),
        ("metadata_columns", ["ok", "not ok"], "metadata column 'not ok'"),
        ("metadata_columns", ["tags", "tags"], "lists tags more than once"),
        ("text_template", "no fields at all", "must name at least one column"),
        ("text_template", "{title", "not a valid template"),
        ("text_template", "{title.upper}", "must be a plain column name"),
        ("text_template", "{0}", "must be a plain column name"),
        ("text_template", "{}", "must be a plain column name"),
    ],
)
def test_invalid_fields_are_rejected_with_a_message_naming_them(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        PipelineSpec(**{field: value})


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="source_tabel"):
        PipelineSpec(source_tabel="public.documents")  # type: ignore[call-arg]


def test_chunk_overlap_must_be_below_the_chunk_size() -> None:
    with pytest.raises(ValidationError, match="overlap_tokens must be smaller"):
        PipelineSpec(chunking={"max_tokens": 64, "overlap_tokens": 64})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="less than or equal to 256"):
        PipelineSpec(chunking={"max_tokens": 512})  # type: ignore[arg-type]


def test_a_pipeline_may_have_no_tenant_column() -> None:
    assert PipelineSpec(tenant_column=None).tenant_column is None
    # TOML has no null: an empty string says the same.
    assert PipelineSpec(tenant_column="").tenant_column is None


def test_pipelines_from_tidewire_toml(clean_tidewire_environment: Path) -> None:
    (clean_tidewire_environment / "tidewire.toml").write_text(
        """
[[pipelines]]
name = "documents"

[[pipelines]]
name = "articles"
source_table = "content.articles"
primary_key = "article_id"
tenant_column = "org"
text_template = "{headline}\\n\\n{lede}"
metadata_columns = ["section", "tags"]
chunking = { max_tokens = 128, overlap_tokens = 16 }
"""
    )
    settings = load_settings()
    assert [p.name for p in settings.pipelines] == ["documents", "articles"]
    articles = settings.pipeline("articles")
    assert articles.template_columns == ["headline", "lede"]
    assert articles.chunking.max_tokens == 128


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[[pipelines]]\nname = "a"\n[[pipelines]]\nname = "a"\nsource_table = "public.other"\n',
            "share the name a",
        ),
        ('[[pipelines]]\nname = "a"\n[[pipelines]]\nname = "b"\n', "share the source_table public.documents"),
        ('[[pipelines]]\nname = "a"\ntext_template = "{Title}"\n', r"pipelines\.0\.text_template"),
        ("pipelines = []\n", "at least one"),
    ],
)
def test_invalid_pipeline_files_give_one_line_naming_the_setting(
    clean_tidewire_environment: Path, toml: str, message: str
) -> None:
    (clean_tidewire_environment / "tidewire.toml").write_text(toml)
    with pytest.raises(ConfigurationError, match=message) as caught:
        load_settings()
    assert "\n" not in str(caught.value)


def test_an_unknown_pipeline_name_lists_the_known_ones(clean_tidewire_environment: Path) -> None:
    with pytest.raises(ConfigurationError, match="no pipeline named 'nope'; known pipelines: documents"):
        load_settings().pipeline("nope")

"""Text, hash, tenant and metadata of a row, and the unchanged-TOAST placeholder."""

from __future__ import annotations

import hashlib

import pytest

from connectors.debezium_config import UNAVAILABLE_VALUE_PLACEHOLDER
from streams.document_text import (
    build_text,
    carries_placeholder,
    metadata_of,
    tenant_of,
    text_hash,
)
from streams.errors import PoisonEventError
from tidewire.pipeline_spec import PipelineSpec

SPEC = PipelineSpec()


def test_template_joins_title_and_body_with_a_blank_line() -> None:
    assert build_text(SPEC, {"title": "Genesis 1:1", "body": "In the beginning"}) == (
        "Genesis 1:1\n\nIn the beginning"
    )


def test_none_columns_become_empty_and_the_text_is_stripped() -> None:
    assert build_text(SPEC, {"title": None, "body": "  only body \n"}) == "only body"
    assert build_text(SPEC, {"title": None, "body": None}) == ""
    assert build_text(SPEC, {"title": "  ", "body": ""}) == ""


def test_non_text_values_are_rendered_stably() -> None:
    spec = PipelineSpec(text_template="{title} #{rank}")
    assert build_text(spec, {"title": "x", "rank": 3}) == "x #3"


def test_a_template_column_missing_from_the_row_is_poison() -> None:
    with pytest.raises(PoisonEventError, match="'body'"):
        build_text(SPEC, {"title": "x"})


def test_text_hash_is_sha256_of_utf8() -> None:
    assert text_hash("é") == hashlib.sha256("é".encode()).hexdigest()


def test_tenant_comes_from_the_tenant_column_or_the_default() -> None:
    assert tenant_of(SPEC, {"tenant_id": "acme"}) == "acme"
    assert tenant_of(SPEC, {"tenant_id": None}) == "default"
    assert tenant_of(PipelineSpec(tenant_column=None, default_tenant="solo"), {"tenant_id": "x"}) == "solo"
    with pytest.raises(PoisonEventError, match="not a valid tenant"):
        tenant_of(SPEC, {"tenant_id": "two words"})


def test_json_object_metadata_is_merged_and_other_columns_keep_their_name() -> None:
    spec = PipelineSpec(metadata_columns=["metadata", "lang", "missing"])
    row = {"metadata": '{"source": "kjv", "n": 1}', "lang": "en"}
    assert metadata_of(spec, row) == {"source": "kjv", "n": 1, "lang": "en"}
    assert metadata_of(SPEC, {"metadata": {"already": "parsed"}}) == {"already": "parsed"}
    assert metadata_of(SPEC, {"metadata": "{not json"}) == {"metadata": "{not json"}


def test_placeholder_is_detected_in_any_column_the_index_reads() -> None:
    assert carries_placeholder(SPEC, {"title": "t", "body": UNAVAILABLE_VALUE_PLACEHOLDER})
    assert carries_placeholder(SPEC, {"title": "t", "body": "b", "metadata": UNAVAILABLE_VALUE_PLACEHOLDER})
    assert not carries_placeholder(
        SPEC, {"title": "t", "body": "b", "updated_at": UNAVAILABLE_VALUE_PLACEHOLDER}
    )


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ('{"score": NaN}', "NaN or Infinity"),
        ('{"score": -Infinity}', "NaN or Infinity"),
        ('{"note": "a\\u0000b"}', "NUL"),
        ({"tags": ["ok", "x\x00"]}, "NUL"),
        ({"x\x00": 1}, "NUL"),
    ],
)
def test_metadata_jsonb_cannot_store_is_poison(value: object, what: str) -> None:
    with pytest.raises(PoisonEventError) as caught:
        metadata_of(SPEC, {"metadata": value})
    assert what in caught.value.reason and caught.value.code == "cdc_invalid_metadata"


def test_a_literal_backslash_u0000_is_just_text() -> None:
    assert metadata_of(SPEC, {"metadata": {"path": "C:\\u0000"}}) == {"path": "C:\\u0000"}

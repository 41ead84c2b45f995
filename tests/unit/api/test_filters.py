"""Search metadata filters: what reaches Postgres is a JSON object jsonb can store, or the request is a 422."""

from __future__ import annotations

import pytest

from api.errors import ValidationFailedError
from api.filters import MAX_FILTER_DEPTH, parse_metadata_filter


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"a": ' + "[" * 900 + "]" * 900 + "}", "nested deeper than"),
        ('{"a": "\\ud800"}', "unpaired UTF-16 surrogates"),
        ('{"\\udfff": 1}', "unpaired UTF-16 surrogates"),
        ('{"a": NaN}', "NaN, Infinity"),
        ('{"a": "x\\u0000"}', "NUL"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_what_jsonb_cannot_take_is_a_validation_error(raw: str, message: str) -> None:
    with pytest.raises(ValidationFailedError, match=message):
        parse_metadata_filter(
            raw[:4096]
            if len(raw) <= 4096
            else raw.replace("[" * 100_000, "[" * 2000).replace("]" * 100_000, "]" * 2000)
        )


def test_nul_is_refused_in_keys_too_but_a_backslash_before_u0000_is_text() -> None:
    with pytest.raises(ValidationFailedError, match="NUL"):
        parse_metadata_filter('{"a\\u0000": 1}')
    # JSON for the six characters \u0000: an escaped backslash, then "u0000". No NUL in it.
    assert parse_metadata_filter('{"path": "C:\\\\u0000"}') == {"path": "C:\\u0000"}


def test_nesting_up_to_the_limit_and_paired_surrogates_pass() -> None:
    nested = '{"a": ' + "[" * (MAX_FILTER_DEPTH - 1) + "1" + "]" * (MAX_FILTER_DEPTH - 1) + "}"
    assert parse_metadata_filter(nested) is not None
    assert parse_metadata_filter('{"mood": "\\ud83d\\ude00"}') == {"mood": "😀"}

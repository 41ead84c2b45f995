"""Metadata filters for search: a JSON object the chunk's metadata must contain (``@>``).

The client sends ``filter={"lang": "en", "tags": ["law"]}``; it travels to Postgres only as a
bound ``jsonb`` parameter of ``metadata @> %s``, never as SQL text, so quotes, semicolons,
JSON-path syntax or any unicode are plain data. Size and depth are bounded.
"""

from __future__ import annotations

import json
import math
from typing import Any

from api.errors import ValidationFailedError
from tidewire.events.models import jsonb_refusal

MAX_FILTER_CHARS = 4_096
MAX_FILTER_DEPTH = 4


def parse_metadata_filter(raw: str | None) -> dict[str, Any] | None:
    """The filter object, or None; :class:`ValidationFailedError` (422) for anything else."""
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_FILTER_CHARS:
        raise ValidationFailedError(f"query.filter: at most {MAX_FILTER_CHARS} characters")
    try:
        value = json.loads(raw, parse_constant=_not_a_number, parse_float=_finite_number)
    except _NotANumberError:
        raise ValidationFailedError(
            "query.filter: NaN, Infinity and numbers beyond ±1.8e308 are not allowed"
        ) from None
    except (ValueError, RecursionError):
        raise ValidationFailedError('query.filter: must be a JSON object, e.g. {"lang":"en"}') from None
    if not isinstance(value, dict):
        raise ValidationFailedError('query.filter: must be a JSON object, e.g. {"lang":"en"}')
    if _deeper_than(value, MAX_FILTER_DEPTH):
        raise ValidationFailedError(f"query.filter: nested deeper than {MAX_FILTER_DEPTH} levels")
    if _holds_surrogate(value):
        # Valid JSON text, but no character: jsonb (UTF-8) cannot store an unpaired \ud800.
        raise ValidationFailedError(
            "query.filter: unpaired UTF-16 surrogates (\\ud800-\\udfff) are not allowed"
        )
    # On the parsed value, not the text: a filter on the literal text backslash-u0000 holds no NUL.
    refusal = jsonb_refusal(value, path="query.filter")
    if refusal is not None:
        raise ValidationFailedError(refusal)
    return value


class _NotANumberError(ValueError):
    """Python's json reads NaN and Infinity (and overflows 1e400 to infinity); jsonb stores neither."""


def _not_a_number(constant: str) -> float:
    raise _NotANumberError(constant)


def _finite_number(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _NotANumberError(text)
    return number


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` levels. It stops at the limit: a filter nested a
    thousand levels deep is refused, not walked into the interpreter's recursion limit."""
    if not isinstance(value, dict | list):
        return False
    if limit == 0:
        return True
    items = value.values() if isinstance(value, dict) else value
    return any(_deeper_than(item, limit - 1) for item in items)


def _holds_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_holds_surrogate(key) or _holds_surrogate(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_surrogate(item) for item in value)
    return False

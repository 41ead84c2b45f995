"""``GET /v1/search``.

The answer is written as bytes here rather than through the response model: the ``hits`` array
is serialized once (and kept in the search response cache, so a repeated search re-serializes
nothing), and only ``took_ms`` differs between two answers to the same search.
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from api.deps import get_principal, services_of
from api.errors import ValidationFailedError
from api.filters import parse_metadata_filter
from api.schemas import ERROR_RESPONSES, SearchHitPublic, SearchPublic, SearchQuery
from api.search import ReadAfter
from api.search_cache import search_key

router = APIRouter(prefix="/v1", tags=["search"])
SEARCH_PATH = "/v1/search"
_HITS = TypeAdapter(list[SearchHitPublic])


def _openapi_parameters() -> list[dict[str, Any]]:
    """``SearchQuery`` as OpenAPI query parameters (what FastAPI would list for ``Query()``)."""
    schema = SearchQuery.model_json_schema()
    required = set(schema.get("required", ()))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "description": field.get("description", ""),
            "schema": {key: value for key, value in field.items() if key != "description"},
        }
        for name, field in schema["properties"].items()
    ]


async def search_query(request: Request) -> SearchQuery:
    """The validated query parameters (422 ``query.<name>`` otherwise).

    Validated here in one pydantic call rather than declared as FastAPI query parameters: FastAPI
    re-inspects each declared parameter's type on every request, which cost more CPU than a
    cached search's whole answer. Like FastAPI, a repeated parameter counts with its last value and
    unknown parameters are ignored."""
    try:
        return SearchQuery.model_validate(dict(request.query_params))
    except ValidationError as error:
        raise RequestValidationError(
            [{**problem, "loc": ("query", *problem["loc"])} for problem in error.errors()]
        ) from None


def checked_filter(query: SearchQuery) -> dict[str, Any] | None:
    """The checks beyond the parameters' own bounds: ``q`` holds text and no NUL; the metadata filter
    parsed. :class:`ValidationFailedError` (422) otherwise."""
    if "\x00" in query.q or not query.q.strip():
        raise ValidationFailedError("query.q: must contain text and no NUL characters")
    return parse_metadata_filter(query.filter)


@router.get(
    SEARCH_PATH.removeprefix(router.prefix),
    response_model=SearchPublic,
    responses=ERROR_RESPONSES,
    openapi_extra={"parameters": _openapi_parameters()},
)
async def search(request: Request) -> Response:
    """The tenant's ``k`` chunks closest to ``q``, best first.

    It declares no FastAPI dependency and calls what ``TenantDep`` and :func:`search_query` do itself,
    in the same order (authentication and rate limit, then the parameters: a request without a valid
    key gets 401 whatever its parameters): resolving declared dependencies costs FastAPI more CPU
    per request than the rest of a cached search.

    0. Authenticate, spend one request of the key's rate limit, validate the parameters.
    1. Validate ``q`` and the filter.
    2. Without ``after``: answer from the search response cache when it holds this search.
    3. With ``after``: wait (bounded) until the token's write is indexed.
    4. Embed, search, serialize the hits, keep them in the cache (not for ``after`` searches).
    """
    started = time.perf_counter()
    # 0. What TenantDep and search_query would do.
    principal = await get_principal(request)
    query = await search_query(request)
    services = services_of(request)
    q, k, mode, after = query.q, query.k, query.mode, query.after
    # 1. Validate.
    metadata_filter = checked_filter(query)
    tenant_id = principal.tenant_id
    cache = services.search_cache
    headers: dict[str, str] = {}
    key = stamp = None
    if after is None and cache.enabled:
        # 2. Cached?
        key = search_key(tenant_id, q, k, mode, metadata_filter)
        cached = cache.get(key)
        if cached is not None:
            services.metrics.search_cache_hits.inc()
            return search_answer(q, services.embedder.model_id, started, cached, headers)
        services.metrics.search_cache_misses.inc()
        # Taken before the search reads the index: an invalidation in between keeps it out.
        stamp = cache.stamp(tenant_id)
    else:
        services.metrics.search_cache_bypasses.inc()
    if after is not None:
        # 3. Read-your-writes.
        token = ReadAfter.parse(after)
        satisfied = await services.search.wait_until_indexed(
            tenant_id, token, max_wait_s=services.settings.read_your_writes_max_wait_s
        )
        headers["Tidewire-Read-After"] = "satisfied" if satisfied else "timeout"
    # 4. Search.
    embedding = await services.embedder.embed(q, tenant_id=tenant_id)
    retrieval = await services.search.retrieve(
        tenant_id, text=q, embedding=embedding, k=k, mode=mode, metadata_filter=metadata_filter
    )
    hits_json = _HITS.dump_json(retrieval.hits)
    if key is not None:
        cache.put(key, hits_json, stamp)
    return search_answer(q, services.embedder.model_id, started, hits_json, headers)


def search_answer(q: str, model: str, started: float, hits_json: bytes, headers: dict[str, str]) -> Response:
    """The ``SearchPublic`` document around already serialized hits."""
    return encoded_search_answer(json_string(q), model_json(model), started, hits_json, headers)


def json_string(text: str) -> bytes:
    """``text`` as a JSON string, UTF-8 encoded."""
    return json.dumps(text, ensure_ascii=False).encode()


@functools.cache
def model_json(model: str) -> bytes:
    """The model's id as a JSON string: one model per process, encoded once."""
    return json_string(model)


def encoded_search_answer(
    q_json: bytes, model_json: bytes, started: float, hits_json: bytes, headers: dict[str, str]
) -> Response:
    """:func:`search_answer` with the query and the model already encoded as JSON strings."""
    took_ms = round((time.perf_counter() - started) * 1000, 2)
    body = b"".join(
        (
            b'{"query":',
            q_json,
            b',"model":',
            model_json,
            b',"took_ms":',
            repr(took_ms).encode(),
            b',"hits":',
            hits_json,
            b"}",
        )
    )
    return Response(body, media_type="application/json", headers=headers)

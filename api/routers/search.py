"""``GET /v1/search``."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from api.deps import ServicesDep, TenantDep
from api.errors import ValidationFailedError
from api.filters import parse_metadata_filter
from api.schemas import ERROR_RESPONSES, MAX_K, MAX_QUERY_CHARS, SearchPublic
from api.search import ReadAfter

router = APIRouter(prefix="/v1", tags=["search"])


@router.get("/search", response_model=SearchPublic, responses=ERROR_RESPONSES)
async def search(
    principal: TenantDep,
    services: ServicesDep,
    response: Response,
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="The query text")],
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    mode: Literal["vector", "hybrid"] = "vector",
    filter: Annotated[
        str | None,
        Query(max_length=4_096, description='JSON object the chunk metadata must contain: {"lang":"en"}'),
    ] = None,
    after: Annotated[
        str | None,
        Query(
            max_length=1_100,
            description="Read-your-writes token: <document_id>@<ISO-8601 time> or "
            "<document_id>@lsn:<pg_lsn> (docs/api.md)",
        ),
    ] = None,
) -> SearchPublic:
    """The tenant's ``k`` chunks closest to ``q``, best first."""
    started = time.perf_counter()
    if "\x00" in q or not q.strip():
        raise ValidationFailedError("query.q: must contain text and no NUL characters")
    metadata_filter = parse_metadata_filter(filter)
    if after is not None:
        token = ReadAfter.parse(after)
        settings = services.settings
        satisfied = await services.search.wait_until_indexed(
            principal.tenant_id, token, max_wait_s=settings.read_your_writes_max_wait_s
        )
        response.headers["Tidewire-Read-After"] = "satisfied" if satisfied else "timeout"
    embedding = await services.embedder.embed(q)
    hits = await services.search.search(
        principal.tenant_id, text=q, embedding=embedding, k=k, mode=mode, metadata_filter=metadata_filter
    )
    return SearchPublic(
        query=q,
        model=services.embedder.model_id,
        took_ms=round((time.perf_counter() - started) * 1000, 2),
        hits=hits,
    )

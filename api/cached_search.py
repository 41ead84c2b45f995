"""Cached searches answered before FastAPI's request handling.

A search the response cache holds (:mod:`api.search_cache`) costs little of its own: a key check,
parameter validation, a dictionary lookup, a few bytes joined. Profiled under load, FastAPI's and
Starlette's handling around it (exception middleware, routing, the request object, the dependency
solver and its exit stack) cost more than all of that.

:class:`CachedSearchShortcut` is a pure ASGI middleware that answers ``GET /v1/search`` itself only
when every check the route makes passes and the answer is cached: a key the verifier already holds
as valid, parameters that validate, no ``after``, a cache hit, then one token of the key's rate
limit. On anything else — a cache miss, an unknown key, a bad parameter, a request over its rate
limit (a refused token is not spent) — it passes the request on untouched, and the route does every
check again and answers as it always does. So the shortcut changes how much a cached answer costs,
never what any request gets.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import Headers, QueryParams
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import Services
from api.errors import RateLimitedError, ValidationFailedError
from api.routers.search import SEARCH_PATH, checked_filter, search_answer
from api.schemas import SearchQuery
from api.search_cache import search_key


class CachedSearchShortcut:
    """Answers cached ``GET /v1/search`` requests; passes everything else on to ``app``."""

    def __init__(self, app: ASGIApp, *, route: Any) -> None:
        self.app = app
        # The route's object, set on the scope as the router would: the access metrics label by it.
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == SEARCH_PATH and scope["method"] == "GET":
            services = getattr(scope["app"].state, "services", None)
            if services is not None:
                answer = cached_answer(services, scope)
                if answer is not None:
                    scope["route"] = self.route
                    await answer(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def cached_answer(services: Services, scope: Scope) -> Response | None:
    """The route's answer to this search when it is cached and every check passes, else None."""
    started = time.perf_counter()
    if not services.search_cache.enabled:
        return None
    principal = services.keys.cached_principal(Headers(scope=scope).get("authorization"))
    if principal is None:
        return None
    try:
        query = SearchQuery.model_validate(dict(QueryParams(scope["query_string"])))
        if query.after is not None:
            return None
        metadata_filter = checked_filter(query)
    except (ValidationError, ValidationFailedError):
        return None
    cached = services.search_cache.get(
        search_key(principal.tenant_id, query.q, query.k, query.mode, metadata_filter)
    )
    if cached is None:
        return None
    try:
        services.limiter.check(principal.key_id)
    except RateLimitedError:
        return None
    services.metrics.search_cache_hits.inc()
    return search_answer(query.q, services.embedder.model_id, started, cached, {})

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

It also remembers the query strings it has parsed and validated (:class:`ParsedSearches`): a popular
search arrives with the same bytes again and again, and parsing and validating them was a twentieth of
a cached answer's CPU.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import Headers, QueryParams
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import Services
from api.errors import RateLimitedError, ValidationFailedError
from api.routers.search import (
    SEARCH_PATH,
    checked_filter,
    encoded_search_answer,
    json_string,
    model_json,
)
from api.schemas import SearchQuery
from api.search_cache import search_key

# Only short query strings are remembered, so the memo stays small whatever clients send.
MEMO_MAX_QUERY_BYTES = 4_096


@dataclass(frozen=True)
class ParsedSearch:
    """A query string that passed every parameter check, with what a cached answer needs of it."""

    query: SearchQuery
    metadata_filter: dict[str, Any] | None
    q_json: bytes


class ParsedSearches:
    """Query strings already parsed and validated (LRU, by their raw bytes): parsing is a pure
    function of the bytes, and a popular search arrives with the same ones again and again."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._memo: OrderedDict[bytes, ParsedSearch] = OrderedDict()

    def parse(self, query_string: bytes) -> ParsedSearch | None:
        """The parsed search; None when a parameter is invalid or it reads after a write."""
        parsed = self._memo.get(query_string)
        if parsed is not None:
            self._memo.move_to_end(query_string)
            return parsed
        try:
            query = SearchQuery.model_validate(dict(QueryParams(query_string)))
            if query.after is not None:
                return None
            parsed = ParsedSearch(query, checked_filter(query), json_string(query.q))
        except (ValidationError, ValidationFailedError):
            return None
        if len(query_string) <= MEMO_MAX_QUERY_BYTES and self.max_entries > 0:
            self._memo[query_string] = parsed
            while len(self._memo) > self.max_entries:
                self._memo.popitem(last=False)
        return parsed


class CachedSearchShortcut:
    """Answers cached ``GET /v1/search`` requests; passes everything else on to ``app``."""

    def __init__(self, app: ASGIApp, *, route: Any, parsed_searches: int = 1_024) -> None:
        self.app = app
        # The route's object, set on the scope as the router would: the access metrics label by it.
        self.route = route
        self.parsed = ParsedSearches(parsed_searches)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == SEARCH_PATH and scope["method"] == "GET":
            services = getattr(scope["app"].state, "services", None)
            if services is not None:
                answer = self.cached_answer(services, scope)
                if answer is not None:
                    scope["route"] = self.route
                    await answer(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def cached_answer(self, services: Services, scope: Scope) -> Response | None:
        """The route's answer to this search when it is cached and every check passes, else None."""
        started = time.perf_counter()
        if not services.search_cache.enabled:
            return None
        principal = services.keys.cached_principal(Headers(scope=scope).get("authorization"))
        if principal is None:
            return None
        parsed = self.parsed.parse(scope["query_string"])
        if parsed is None:
            return None
        query = parsed.query
        cached = services.search_cache.get(
            search_key(principal.tenant_id, query.q, query.k, query.mode, parsed.metadata_filter)
        )
        if cached is None:
            return None
        try:
            services.limiter.check(principal.key_id)
        except RateLimitedError:
            return None
        services.metrics.search_cache_hits.inc()
        return encoded_search_answer(
            parsed.q_json, model_json(services.embedder.model_id), started, cached, {}
        )

"""FastAPI dependencies, as ``Annotated`` aliases: ``ServicesDep``, ``TenantDep``, ``DbDep``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from api.auth import KeyVerifier, Principal
from api.chat.service import ChatService
from api.db import TenantConnection, TenantDatabase
from api.embedding import QueryEmbedder
from api.errors import ServiceUnavailableError
from api.events_stream import NotificationHub
from api.metrics import ApiMetrics
from api.rate_limit import RateLimiter
from api.search import SearchService
from api.search_cache import SearchResultCache
from tidewire.settings import ApiSettings


@dataclass
class Services:
    """Everything the routes use, built by the app's lifespan (``app.state.services``)."""

    settings: ApiSettings
    database: TenantDatabase
    keys: KeyVerifier
    limiter: RateLimiter
    embedder: QueryEmbedder
    search: SearchService
    chat: ChatService
    hub: NotificationHub
    metrics: ApiMetrics
    search_cache: SearchResultCache = field(default_factory=SearchResultCache.disabled)


def services_of(request: Request) -> Services:
    """The app's services; :class:`ServiceUnavailableError` (503) while it starts."""
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        raise ServiceUnavailableError("the API is starting; retry shortly")
    return services


async def get_services(request: Request) -> Services:
    """``ServicesDep``. A coroutine on purpose: FastAPI runs a plain ``def`` dependency in a worker
    thread, a thread hand-off on every request for an attribute lookup."""
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_principal(request: Request) -> Principal:
    """The caller's key and tenant (401 otherwise), after spending one request of its rate limit.

    It looks the services up itself instead of depending on ``ServicesDep``: FastAPI resolves every
    declared sub-dependency on every request, and this one runs on every authenticated request."""
    services = services_of(request)
    principal = await services.keys.verify(request.headers.get("authorization"))
    services.limiter.check(principal.key_id)
    return principal


TenantDep = Annotated[Principal, Depends(get_principal)]


async def get_tenant_connection(
    principal: TenantDep, services: ServicesDep
) -> AsyncIterator[TenantConnection]:
    """A connection in a transaction confined to the caller's tenant, for the request's duration."""
    async with services.database.transaction(principal.tenant_id) as connection:
        yield connection


DbDep = Annotated[TenantConnection, Depends(get_tenant_connection)]

"""``GET /v1/events``: the tenant's index notifications, live, resumable with ``Last-Event-ID``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import ServicesDep, TenantDep
from api.events_stream import HubEvent, NotificationHub, Subscription
from api.metrics import ApiMetrics
from api.schemas import ERROR_RESPONSES
from api.sse import heartbeat, json_event, position_only

router = APIRouter(prefix="/v1", tags=["events"])


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses={**ERROR_RESPONSES, 200: {"content": {"text/event-stream": {}}}},
)
async def events(
    principal: TenantDep,
    services: ServicesDep,
    last_event_id: Annotated[str | None, Header(max_length=2_048)] = None,
) -> EventSourceResponse:
    """``document.indexed`` / ``document.deleted`` events of the caller's tenant. The first message
    carries only an id (the current position), so even a client that saw no event can resume."""
    resume = services.hub.event_ids.decode(principal.tenant_id, last_event_id) if last_event_id else None
    subscription = services.hub.subscribe(principal.tenant_id, resume)
    settings = services.settings
    return EventSourceResponse(
        stream_notifications(services.hub, subscription, services.metrics),
        ping=settings.sse_ping_s,
        ping_message_factory=heartbeat,
        send_timeout=settings.sse_send_timeout_s,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def notification_event(event: HubEvent, event_id: str) -> ServerSentEvent:
    notification = event.notification
    return json_event(
        notification.event_type.event_name,
        {
            "document_id": notification.document_id,
            "chunks": notification.chunks,
            "freshness_ms": notification.freshness_ms,
            "pipeline": notification.pipeline,
            "model": notification.model,
            "indexed_at": notification.indexed_at.isoformat(),
        },
        event_id,
    )


async def stream_notifications(
    hub: NotificationHub, subscription: Subscription, metrics: ApiMetrics
) -> AsyncIterator[ServerSentEvent]:
    metrics.sse_clients.labels("events").inc()
    try:
        if subscription.replay:
            for event, event_id in subscription.replay:
                yield notification_event(event, event_id)
        else:
            yield position_only(hub.encode_start(subscription))
        while True:
            item = await subscription.queue.get()
            if item is None:  # the hub is shutting down
                return
            yield notification_event(*item)
            if subscription.overflowed and subscription.queue.empty():
                return  # cut off for being too slow; it resumes with its Last-Event-ID
    finally:
        hub.unsubscribe(subscription)
        metrics.sse_clients.labels("events").dec()

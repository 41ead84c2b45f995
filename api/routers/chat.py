"""``POST /v1/chat``: a grounded answer streamed as server-sent events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.chat.service import ChatEvent
from api.deps import ServicesDep, TenantDep
from api.errors import ValidationFailedError
from api.metrics import ApiMetrics
from api.schemas import ERROR_RESPONSES, ChatCreate
from api.sse import heartbeat, json_event

router = APIRouter(prefix="/v1", tags=["chat"])


@router.post(
    "/chat",
    response_class=EventSourceResponse,
    responses={
        **ERROR_RESPONSES,
        200: {"content": {"text/event-stream": {}}, "description": "sources, token…, done"},
    },
)
async def chat(body: ChatCreate, principal: TenantDep, services: ServicesDep) -> EventSourceResponse:
    """Events: ``sources`` (the hits used), ``token`` (``{"text"}``) repeated, then ``done``
    (``{"answer_id", "cached", "usage"}``) or ``error``. Ids are ``<stream id>:<sequence>``."""
    if "\x00" in body.question or not body.question.strip():
        raise ValidationFailedError("body.question: must contain text and no NUL characters")
    events = services.chat.answer(principal.tenant_id, body.question, body.k)
    settings = services.settings
    return EventSourceResponse(
        encode_chat(events, services.metrics),
        ping=settings.sse_ping_s,
        ping_message_factory=heartbeat,
        send_timeout=settings.sse_send_timeout_s,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def encode_chat(
    events: AsyncIterator[ChatEvent], metrics: ApiMetrics
) -> AsyncIterator[ServerSentEvent]:
    """Chat events as SSE, numbered ``<stream id>:<n>``."""
    stream_id = uuid.uuid4().hex[:12]
    metrics.sse_clients.labels("chat").inc()
    outcome = "cancelled"
    try:
        sequence = 0
        async for event in events:
            sequence += 1
            if event.kind in ("done", "error"):
                outcome = "cached" if event.data.get("cached") else event.kind
            yield json_event(event.kind, event.data, f"{stream_id}:{sequence}")
    finally:
        metrics.sse_clients.labels("chat").dec()
        metrics.chat_answers.labels(outcome).inc()

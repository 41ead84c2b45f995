"""Server-sent event encoding, kept apart from the streaming (which sse-starlette's
``EventSourceResponse`` does: pings, disconnect detection, send timeouts, shutdown)."""

from __future__ import annotations

import json
from typing import Any

from sse_starlette import ServerSentEvent


def json_event(event: str, data: dict[str, Any], event_id: str) -> ServerSentEvent:
    """An SSE event whose data is one line of compact JSON (no raw newlines can split it)."""
    return ServerSentEvent(
        data=json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str),
        event=event,
        id=event_id,
    )


def position_only(event_id: str) -> ServerSentEvent:
    """An id-only message: it sets the client's Last-Event-ID without dispatching an event."""
    return ServerSentEvent(id=event_id)


def heartbeat() -> ServerSentEvent:
    """A comment line; keeps proxies and clients from timing out an idle stream."""
    return ServerSentEvent(comment="ping")

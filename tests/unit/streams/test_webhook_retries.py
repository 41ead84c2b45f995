"""Webhook retries: a receiver's Retry-After is honoured, and the waits are spread (jitter)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from types import SimpleNamespace

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from streams.dead_letters import Rejection
from streams.messages import MessageRef, RawMessage
from streams.metrics import StreamMetrics
from streams.retry import RetryPolicy
from streams.webhooks_agent import WebhookDeliverer
from tests.unit.api.support import serve_in_thread
from tidewire.events import Notification, NotificationType, make_event_codec
from tidewire.settings import KafkaSettings, WebhookEndpoint

NOW = datetime(2026, 11, 24, tzinfo=UTC)


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[Rejection] = []

    async def send(self, rejections: Sequence[Rejection]) -> None:
        self.sent.extend(rejections)


def receiver(answers: list[Response]) -> Starlette:
    """Answers the deliveries with ``answers`` in turn, then 200."""

    async def deliver(request: Request) -> Response:
        return answers.pop(0) if answers else JSONResponse({"ok": True})

    return Starlette(routes=[Route("/hook", deliver, methods=["POST"])])


def deliver_once(url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[list[float], DeadLetters]:
    """Deliver one notification to ``url``; the waits between attempts (recorded, not slept)."""
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    # Only the retry loop's sleeps: the receiver's server thread keeps the real asyncio.
    monkeypatch.setattr("streams.retry.asyncio", SimpleNamespace(sleep=no_sleep))
    codec = make_event_codec(KafkaSettings())
    notification = Notification(
        event_type=NotificationType.INDEXED,
        tenant_id="acme",
        document_id="d-1",
        pipeline="documents",
        chunks=1,
        model="m",
        source_committed_at=NOW,
        indexed_at=NOW,
        freshness_ms=5,
    )
    message = RawMessage(
        MessageRef("tidewire.notifications", 0, 1), b"d-1", codec.encode(notification, topic="t")
    )
    dead_letters = DeadLetters()

    async def run() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            deliverer = WebhookDeliverer(
                endpoints=[WebhookEndpoint(url=f"{url}/hook", secret="s")],  # type: ignore[arg-type]
                client=client,
                codec=codec,
                topic="t",
                policy=RetryPolicy(attempts=4, initial_backoff_s=0.5, max_backoff_s=30.0, jitter=0.5),
                dead_letters=dead_letters,  # type: ignore[arg-type]
                batch_retry=RetryPolicy(attempts=2, initial_backoff_s=0.01, max_backoff_s=0.01),
                metrics=StreamMetrics.create(),
            )
            await deliverer.process([message])

    asyncio.run(run())
    return waits, dead_letters


def test_a_429s_retry_after_is_the_least_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    answers: list[Response] = [
        JSONResponse({"error": "slow down"}, status_code=429, headers={"Retry-After": "7"}),
        JSONResponse({"error": "down"}, status_code=500),
    ]
    with serve_in_thread(receiver(answers)) as url:
        waits, dead_letters = deliver_once(url, monkeypatch)
    assert dead_letters.sent == []
    assert waits[0] == 7.0  # asked for, longer than the 0.5 s backoff
    assert 0.5 <= waits[1] <= 1.0  # the second backoff (1 s), shortened by up to half


def test_a_retry_after_longer_than_the_longest_backoff_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    answers: list[Response] = [JSONResponse({}, status_code=503, headers={"Retry-After": "86400"})]
    with serve_in_thread(receiver(answers)) as url:
        waits, _ = deliver_once(url, monkeypatch)
    assert waits == [30.0]

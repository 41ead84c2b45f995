"""Webhook retries: a receiver's Retry-After is honoured, and the waits are spread (jitter)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from streams.retry import RetryPolicy
from tests.unit.api.support import serve_in_thread
from tests.unit.streams.webhook_support import DeadLetters, make_deliverer, notification_message
from tidewire.events import make_event_codec
from tidewire.settings import KafkaSettings


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
    dead_letters = DeadLetters()

    async def run() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            deliverer = make_deliverer(
                client,
                [f"{url}/hook"],
                policy=RetryPolicy(attempts=4, initial_backoff_s=0.5, max_backoff_s=30.0, jitter=0.5),
                dead_letters=dead_letters,
            )
            await deliverer.process([notification_message(make_event_codec(KafkaSettings()), "d-1", 1)])

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

"""Which dead letters are re-delivered to their endpoint, and what an endpoint no longer configured gives."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.webhook_redelivery import is_delivery_failure, redeliver
from tidewire.errors import ConfigurationError
from tidewire.events import DeadLetter, FailureStage
from tidewire.settings import Settings


def letter(stage: FailureStage, destination: str | None) -> DeadLetter:
    return DeadLetter(
        topic="tidewire.notifications",
        partition=0,
        offset=1,
        key=b"k",
        value=b"v",
        stage=stage,
        error_code="x",
        reason="y",
        failed_at=datetime(2026, 11, 24, tzinfo=UTC),
        destination=destination,
    )


def test_only_failed_deliveries_with_an_endpoint_are_re_delivered() -> None:
    assert is_delivery_failure(letter(FailureStage.DELIVER, "http://127.0.0.1:1/hook"))
    assert not is_delivery_failure(letter(FailureStage.DELIVER, None))
    assert not is_delivery_failure(letter(FailureStage.VALIDATE, None))


def test_an_endpoint_no_longer_configured_is_named_and_nothing_is_sent() -> None:
    settings = Settings(streams={"webhooks": [{"url": "http://127.0.0.1:1/kept", "secret": "s"}]})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"http://127\.0\.0\.1:1/gone"):
        redeliver(settings, [letter(FailureStage.DELIVER, "http://127.0.0.1:1/gone")])

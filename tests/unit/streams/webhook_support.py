"""What the webhook delivery tests share: notifications as the topic carries them, a dead-letter
recorder, and a deliverer wired to real receivers."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from streams.dead_letters import Rejection
from streams.messages import MessageRef, RawMessage
from streams.metrics import StreamMetrics
from streams.retry import RetryPolicy
from streams.webhook_circuits import EndpointCircuits
from streams.webhooks_agent import WebhookDeliverer
from tests.unit.events.sample_notifications import indexed_notification
from tidewire.events import EventCodec, make_event_codec
from tidewire.settings import KafkaSettings, WebhookEndpoint

TOPIC = "tidewire.notifications"


class DeadLetters:
    """Records the rejections a deliverer dead-letters."""

    def __init__(self) -> None:
        self.sent: list[Rejection] = []

    async def send(self, rejections: Sequence[Rejection]) -> None:
        self.sent.extend(rejections)


def notification_message(codec: EventCodec, document_id: str, offset: int) -> RawMessage:
    """A ``document.indexed`` notification of tenant ``acme``, encoded as the topic carries it."""
    notification = indexed_notification("acme", document_id)
    return RawMessage(
        MessageRef(TOPIC, 0, offset), document_id.encode(), codec.encode(notification, topic=TOPIC)
    )


def make_deliverer(
    client: httpx.AsyncClient,
    urls: Sequence[str],
    *,
    policy: RetryPolicy,
    dead_letters: DeadLetters,
    circuits: EndpointCircuits | None = None,
    codec: EventCodec | None = None,
) -> WebhookDeliverer:
    """A deliverer to ``urls`` (every tenant), dead-lettering into ``dead_letters``."""
    return WebhookDeliverer(
        endpoints=[WebhookEndpoint(url=url, secret="s") for url in urls],  # type: ignore[arg-type]
        client=client,
        codec=codec or make_event_codec(KafkaSettings()),
        topic=TOPIC,
        policy=policy,
        dead_letters=dead_letters,  # type: ignore[arg-type]
        batch_retry=RetryPolicy(attempts=2, initial_backoff_s=0.01, max_backoff_s=0.01),
        metrics=StreamMetrics.create(),
        circuits=circuits or EndpointCircuits(failures_to_open=3, open_s=30.0),
    )

"""The ``webhooks`` agents: every notification, POSTed and signed to each registered endpoint.

Each endpoint has an agent of its own, so an endpoint that is down holds up only its own deliveries.
Deliveries of a batch run concurrently; each is retried with exponential backoff, and after its
last attempt it becomes a dead letter (stage DELIVER, ``destination`` = the endpoint URL) so it can
be re-driven. Only then is the batch acknowledged. An endpoint whose deliveries keep failing every
attempt has its circuit opened (:mod:`streams.webhook_circuits`): its deliveries are dead-lettered
without being tried for a while, so its batches do not each wait for a whole retry schedule.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import replace

import faust
import httpx

from streams.batch_loop import event_batches, process_or_exit, raw_message
from streams.context import StreamContext
from streams.dead_letters import DeadLetterHandler, Rejection
from streams.errors import DeliveryError
from streams.messages import RawMessage
from streams.metrics import StreamMetrics
from streams.retry import RetryPolicy, retrying
from streams.webhook_circuits import Admission, EndpointCircuits
from streams.webhook_signing import delivery_headers, notification_body
from tidewire.events import EventCodec, FailureStage, InvalidEventError, Notification
from tidewire.settings import WebhookEndpoint

logger = logging.getLogger(__name__)

AGENT = "webhooks"


class WebhookDeliverer:
    """Delivers the notifications of one batch to the endpoints that want them."""

    def __init__(
        self,
        *,
        endpoints: Sequence[WebhookEndpoint],
        client: httpx.AsyncClient,
        codec: EventCodec,
        topic: str,
        policy: RetryPolicy,
        dead_letters: DeadLetterHandler,
        batch_retry: RetryPolicy,
        metrics: StreamMetrics,
        circuits: EndpointCircuits,
    ) -> None:
        self._endpoints = endpoints
        self._circuits = circuits
        self._client = client
        self._codec = codec
        self._topic = topic
        self._policy = policy
        self._dead_letters = dead_letters
        self._batch_retry = batch_retry
        self._metrics = metrics

    async def process(self, messages: Sequence[RawMessage]) -> None:
        # Retried as a whole: a Schema Registry that does not answer is no fault of the notifications.
        decoded, rejections = await retrying(
            lambda: self._decode(messages), self._batch_retry, what=f"decoding {len(messages)} notifications"
        )
        deliveries = [
            self._deliver(message, notification, endpoint)
            for message, notification in decoded
            for endpoint in self._endpoints
            if endpoint.tenant is None or endpoint.tenant == notification.tenant_id
        ]
        failures = await asyncio.gather(*deliveries)
        rejections.extend(failure for failure in failures if failure is not None)
        await retrying(
            lambda: self._dead_letters.send(rejections), self._batch_retry, what="dead-lettering deliveries"
        )

    async def _decode(
        self, messages: Sequence[RawMessage]
    ) -> tuple[list[tuple[RawMessage, Notification]], list[Rejection]]:
        decoded: list[tuple[RawMessage, Notification]] = []
        rejections: list[Rejection] = []
        for message in messages:
            try:
                decoded.append((message, self._codec.decode(message.value, Notification, topic=self._topic)))
            except InvalidEventError as error:
                rejections.append(Rejection(message=message, error=error, stage=FailureStage.DECODE))
        return decoded, rejections

    def _asked_wait(self, response: httpx.Response) -> float:
        """The seconds a 429 or 503 asked to wait (``Retry-After``, as seconds), within the policy's
        longest backoff; 0 for any other answer, or a date, or garbage."""
        if response.status_code not in (429, 503):
            return 0.0
        value = response.headers.get("Retry-After", "").strip()
        if not value.isdigit():
            return 0.0
        return min(float(value), self._policy.max_backoff_s)

    async def _deliver(
        self, message: RawMessage, notification: Notification, endpoint: WebhookEndpoint
    ) -> Rejection | None:
        """Deliver with retries (one try when the endpoint's circuit is half-open, none while it is
        open); the rejection to dead-letter when it was not delivered."""
        body = notification_body(notification)
        secret = endpoint.secret.get_secret_value()

        def rejected(error: BaseException, attempts: int) -> Rejection:
            return Rejection(
                message=message,
                error=error,
                stage=FailureStage.DELIVER,
                pipeline=notification.pipeline,
                destination=endpoint.url,
                attempts=attempts,
            )

        async def attempt() -> None:
            # A fresh timestamp (and signature) per attempt: receivers reject stale timestamps.
            headers = delivery_headers(notification, secret, body, int(time.time()))
            try:
                response = await self._client.post(endpoint.url, content=body, headers=headers)
            except httpx.HTTPError as error:
                self._metrics.webhook_deliveries.labels(outcome="error").inc()
                raise DeliveryError(f"POST {endpoint.url} failed: {type(error).__name__}: {error}") from None
            if not response.is_success:
                self._metrics.webhook_deliveries.labels(outcome="refused").inc()
                raise DeliveryError(
                    f"POST {endpoint.url} answered {response.status_code}",
                    retry_after_s=self._asked_wait(response),
                )
            self._metrics.webhook_deliveries.labels(outcome="delivered").inc()

        circuit = self._circuits.of(endpoint.url)
        admission = await circuit.admit()
        if admission is Admission.REFUSE:
            self._metrics.webhook_deliveries.labels(outcome="circuit_open").inc()
            return rejected(
                DeliveryError(
                    f"not tried: {endpoint.url} failed every attempt of its last "
                    f"{circuit.failures_in_a_row} deliveries, so its circuit is open; "
                    "re-deliver with `tidewire dlq replay` once it is back"
                ),
                attempts=0,
            )
        policy = self._policy if admission is Admission.DELIVER else replace(self._policy, attempts=1)
        try:
            await retrying(attempt, policy, what=f"delivering {notification.document_id} to {endpoint.url}")
        except Exception as error:
            circuit.failed(admission)
            return rejected(error.__cause__ or error, attempts=policy.attempts)
        finally:
            if admission is Admission.PROBE:
                circuit.end_probe()  # also when cancelled: the deliveries waiting on it go on
        circuit.succeeded()
        return None


def register_webhooks_agent(app: faust.App, context: StreamContext) -> None:
    """Subscribe one agent per configured endpoint to the notifications topic (none without endpoints).

    Each endpoint has its own agent, so its own batches: an endpoint that is down holds only its own
    deliveries while they are retried, not the other endpoints'. Faust acknowledges a notification once
    every agent has, so the consumer group's offset still waits for every endpoint (at-least-once).
    """
    settings = context.settings
    if not settings.streams.webhooks:
        return  # nothing subscribes to the notifications topic
    topic = app.topic(settings.topics.notifications, value_type=bytes, value_serializer="raw")
    policy = RetryPolicy(
        attempts=settings.streams.webhook_attempts,
        initial_backoff_s=settings.streams.webhook_initial_backoff_s,
        max_backoff_s=settings.streams.webhook_max_backoff_s,
        jitter=0.5,
    )
    for index, endpoint in enumerate(settings.streams.webhooks):
        _register_endpoint_agent(app, context, topic, endpoint, policy, name=f"{AGENT}-{index}")


def _register_endpoint_agent(
    app: faust.App,
    context: StreamContext,
    topic: faust.TopicT,
    endpoint: WebhookEndpoint,
    policy: RetryPolicy,
    *,
    name: str,
) -> None:
    settings = context.settings

    @app.agent(topic, name=name, concurrency=1)
    async def deliver_to_endpoint(stream: faust.StreamT) -> None:  # pragma: no cover - integration tests
        resources = await context.open(app)
        async with httpx.AsyncClient(timeout=settings.streams.webhook_timeout_s) as client:
            deliverer = WebhookDeliverer(
                endpoints=[endpoint],
                client=client,
                codec=resources.codec,
                topic=settings.topics.notifications,
                policy=policy,
                dead_letters=context.dead_letter_handler(resources, AGENT),
                batch_retry=context.retry,
                metrics=context.metrics,
                circuits=EndpointCircuits(
                    failures_to_open=settings.streams.webhook_circuit_failures,
                    open_s=settings.streams.webhook_circuit_open_s,
                ),
            )
            async for events in event_batches(stream, 100, within_s=settings.streams.batch_max_wait_s):
                await process_or_exit(AGENT, [raw_message(event) for event in events], deliverer.process)

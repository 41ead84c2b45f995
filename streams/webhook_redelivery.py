"""Re-delivering a webhook dead letter to the one endpoint that refused it (``tidewire dlq replay``).

A delivery dead letter (stage ``deliver``) names its endpoint (``destination``). Producing it back to
``tidewire.notifications`` would send the notification again to every endpoint and every
``/v1/events`` client, and invalidate the API's caches again; so it is POSTed, freshly signed, to that
endpoint alone, with the endpoint's current secret from the settings.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import httpx

from streams.webhook_signing import delivery_headers, notification_body
from tidewire.errors import ConfigurationError, ServiceError
from tidewire.events import DeadLetter, FailureStage, Notification, make_event_codec
from tidewire.settings import Settings, WebhookEndpoint


def is_delivery_failure(letter: DeadLetter) -> bool:
    """Whether ``letter`` is a webhook delivery that failed (re-delivered, not re-produced)."""
    return letter.stage is FailureStage.DELIVER and letter.destination is not None


def redeliver(settings: Settings, letters: Sequence[DeadLetter]) -> int:
    """POST each delivery dead letter's notification to its endpoint; return how many were accepted.

    Every endpoint must still be configured (its secret signs the delivery). Each letter is tried
    once; the failures are reported together, after the others were delivered.
    """
    endpoints = {endpoint.url: endpoint for endpoint in settings.streams.webhooks}
    missing = sorted({str(letter.destination) for letter in letters if letter.destination not in endpoints})
    if missing:
        raise ConfigurationError(
            f"no [[streams.webhooks]] endpoint {', '.join(missing)} in the settings: "
            "its secret signs the re-delivery; configure it again or leave these dead letters"
        )
    codec = make_event_codec(settings.kafka)
    failures: list[str] = []
    with httpx.Client(timeout=settings.streams.webhook_timeout_s) as client:
        for letter in letters:
            endpoint = endpoints[str(letter.destination)]
            notification = codec.decode(letter.value, Notification, topic=letter.topic)
            problem = _deliver(client, endpoint, notification)
            if problem:
                failures.append(problem)
    if failures:
        raise ServiceError(
            f"re-delivery failed for {len(failures)} of {len(letters)} dead letters: {failures[0]}; "
            "the endpoint's dead letters stay in the DLQ, run it again once it answers"
        )
    return len(letters)


def _deliver(client: httpx.Client, endpoint: WebhookEndpoint, notification: Notification) -> str | None:
    body = notification_body(notification)
    headers = delivery_headers(notification, endpoint.secret.get_secret_value(), body, int(time.time()))
    try:
        response = client.post(endpoint.url, content=body, headers=headers)
    except httpx.HTTPError as error:
        return f"POST {endpoint.url} failed: {type(error).__name__}"
    if not response.is_success:
        return f"POST {endpoint.url} answered {response.status_code}"
    return None

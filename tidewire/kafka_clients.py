"""confluent-kafka clients whose librdkafka log goes to Python logging instead of straight to stderr.

Left alone, librdkafka prints its own lines on the process's stderr: a refused connection, or
"Purging 1 unserved events from background queue" when a client is closed with a request still in
flight. In the CLI that breaks the rule that an error is one line; in the API and the worker it
bypasses the log format and level. Given a ``logger``, librdkafka hands its lines to it instead,
as records of the ``tidewire.kafka.client`` logger: each time the client is polled (a consumer's or
a producer's ``poll``/``flush``, :func:`forward_client_log` for an admin client). Lines still queued
when a client is destroyed are dropped: every failure they describe also reaches the caller as a
``KafkaException``, which the caller turns into a typed error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from tidewire.errors import ServiceError

CLIENT_LOGGER_NAME = "tidewire.kafka.client"
"""The logger that receives librdkafka's lines (its syslog levels mapped to Python's)."""

_client_logger = logging.getLogger(CLIENT_LOGGER_NAME)


def _configuration(bootstrap: str, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, **(extra or {}), "logger": _client_logger}


def admin_client(bootstrap: str, extra: Mapping[str, Any] | None = None) -> AdminClient:
    """An admin client of the cluster at ``bootstrap``; ``extra``: more librdkafka properties."""
    return AdminClient(_configuration(bootstrap, extra))


def producer(bootstrap: str, extra: Mapping[str, Any] | None = None) -> Producer:
    """A producer to the cluster at ``bootstrap``; ``extra``: more librdkafka properties."""
    return Producer(_configuration(bootstrap, extra))


# A message to produce: (topic, key, value).
OutgoingMessage = tuple[str, bytes | None, bytes | None]

_PRODUCE_TIMEOUT_S = 30.0


def produce_and_wait(
    bootstrap: str,
    messages: Sequence[OutgoingMessage],
    *,
    what: str,
    then: str = "check Kafka and run it again",
) -> None:
    """Produce ``messages`` and wait until the brokers acknowledged every one (``acks=all``).

    Keys are hashed with murmur2, as Kafka's Java clients, Debezium and the workers' producer do, so a
    keyed message lands on the partition where its key's other messages are (librdkafka's default
    hash, CRC32, would pick another). Raises :class:`ServiceError` naming ``what`` when any failed,
    followed by ``then``: what the user should know or do.
    """
    if not messages:
        return
    client = producer(bootstrap, {"acks": "all", "partitioner": "murmur2_random"})
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    for topic, key, value in messages:
        client.produce(topic, key=key, value=value, on_delivery=delivered)
    remaining = client.flush(_PRODUCE_TIMEOUT_S)
    if failures or remaining:
        raise ServiceError(
            f"{what} failed for {len(failures) + remaining} of {len(messages)} messages: "
            f"{failures[0] if failures else 'timed out'}; {then}"
        )


def consumer(bootstrap: str, extra: Mapping[str, Any] | None = None) -> Consumer:
    """A consumer of the cluster at ``bootstrap``; ``extra``: more librdkafka properties (``group.id``)."""
    return Consumer(_configuration(bootstrap, extra))


def forward_client_log(admin: AdminClient) -> None:
    """Hand what ``admin`` logged so far to Python logging (a long-lived admin client, between uses:
    its lines would otherwise wait in memory until it is destroyed)."""
    admin.poll(0)

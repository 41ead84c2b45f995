"""The one place where a batch's failure meets Faust's acknowledgement semantics.

``Stream.take_events`` acknowledges the batch it yielded when the consumer's body returns *or
raises* (its ``finally``), and the consumer then commits acknowledged offsets. A batch whose vectors
are not committed must never be acknowledged, so when processing fails for good, or is cancelled
half-way (shutdown, agent crash), the worker process exits at once with :func:`os._exit`: no
``finally`` runs, nothing is acknowledged or committed, and Kafka redelivers the batch to whichever
worker owns the partitions next.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn

from streams.messages import MessageRef, RawMessage

logger = logging.getLogger(__name__)

# EX_TEMPFAIL: the worker stopped for a failure that a restart may not have (sysexits.h).
EXIT_BATCH_FAILED = 75


def raw_message(event: Any) -> RawMessage:
    """The :class:`RawMessage` of a Faust event (its untouched Kafka message)."""
    message = event.message
    headers = tuple((name, value) for name, value in (message.headers or ()))
    timestamp = message.timestamp
    return RawMessage(
        ref=MessageRef(topic=message.topic, partition=message.partition, offset=message.offset),
        key=message.key,
        value=message.value,
        timestamp_ms=int(timestamp * 1000) if timestamp else None,
        headers=headers,
    )


async def process_or_exit(
    agent: str, messages: Sequence[RawMessage], process: Callable[[Sequence[RawMessage]], Awaitable[Any]]
) -> None:
    """Run ``process`` on a batch; return only if it succeeded, else end the process without an ack."""
    try:
        await process(messages)
    except asyncio.CancelledError:
        exit_without_ack(agent, messages, "the batch was cancelled before it was committed")
    except Exception as error:
        exit_without_ack(agent, messages, f"{type(error).__name__}: {error}")


def exit_without_ack(agent: str, messages: Sequence[RawMessage], reason: str) -> NoReturn:
    """Log why, flush the logs, and leave the process before anything can acknowledge the batch."""
    first = messages[0].ref if messages else None
    logger.critical(
        "%s agent: exiting without committing a batch of %d messages (first %s): %s; "
        "the batch is redelivered when a worker owns its partitions again",
        agent, len(messages), first or "-", reason,
    )  # fmt: skip
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(EXIT_BATCH_FAILED)

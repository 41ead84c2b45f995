"""The one place where a batch's failure meets Faust's acknowledgement semantics.

``Stream.take_events`` acknowledges the batch it yielded when the consumer's body returns *or
raises* (its ``finally``), and the consumer then commits acknowledged offsets. A batch whose vectors
are not committed must never be acknowledged, so when processing fails for good, or is cancelled
half-way (shutdown, agent crash), the worker process exits at once with :func:`os._exit`: no
``finally`` runs, nothing is acknowledged or committed, and Kafka redelivers the batch to whichever
worker owns the partitions next.

:class:`CommitBehind` lets the agent embed a batch while the previous one is written: it holds a
batch's Kafka messages (one extra reference each, so Faust's acknowledgement when the loop body
returns does not release them), runs the batch's commit in the background, and acknowledges the
messages only when that commit succeeded. One commit is in flight at most, and commits run in
order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, Generic, NoReturn, TypeVar, cast

import faust

from streams.messages import MessageRef, RawMessage

logger = logging.getLogger(__name__)

# EX_TEMPFAIL: the worker stopped for a failure that a restart may not have (sysexits.h).
EXIT_BATCH_FAILED = 75

Result = TypeVar("Result")


def event_batches(stream: faust.StreamT, max_events: int, *, within_s: float) -> AsyncIterator[Sequence[Any]]:
    """The agent's events in batches (``Stream.take_events``): each as soon as it holds ``max_events``
    or ``within_s`` has passed since its first event."""
    # Agents are handed a StreamT, whose protocol does not declare take_events; the Stream it is does.
    return cast("faust.Stream[Any]", stream).take_events(max_events, within=within_s)


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
    agent: str, messages: Sequence[RawMessage], process: Callable[[Sequence[RawMessage]], Awaitable[Result]]
) -> Result:
    """Run ``process`` on a batch; return its result only if it succeeded, else end the process
    without an ack."""
    try:
        return await process(messages)
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


class CommitBehind(Generic[Result]):
    """At most one batch commit running in the background, in order; its events acknowledged
    only once it succeeded, the worker ended without acknowledging if it failed."""

    def __init__(self, agent: str) -> None:
        self._agent = agent
        self._in_flight: asyncio.Task[Result] | None = None
        self._blocks_preparation = False

    @property
    def blocks_preparation(self) -> bool:
        """Whether the next batch must wait for the commit in flight before it is even prepared."""
        return self._in_flight is not None and self._blocks_preparation

    async def settle(self) -> Result | None:
        """Wait for the commit in flight, if any; its result (None when there was none)."""
        if self._in_flight is None:
            return None
        in_flight, self._in_flight = self._in_flight, None
        return await in_flight

    def begin(
        self,
        events: Sequence[Any],
        messages: Sequence[RawMessage],
        commit: Coroutine[Any, Any, Result],
        *,
        blocks_preparation: bool = False,
    ) -> None:
        """Hold ``events`` and run ``commit`` in the background; call :meth:`settle` first."""
        if self._in_flight is not None:
            commit.close()
            raise RuntimeError("a commit is already in flight: settle it first")
        for event in events:
            event.message.incref()  # released by _commit_then_release, or never
        self._blocks_preparation = blocks_preparation
        self._in_flight = asyncio.get_running_loop().create_task(
            self._commit_then_release(events, messages, commit), name=f"{self._agent}-commit"
        )

    async def _commit_then_release(
        self, events: Sequence[Any], messages: Sequence[RawMessage], commit: Coroutine[Any, Any, Result]
    ) -> Result:
        result = await process_or_exit(self._agent, messages, lambda _messages: commit)
        for event in events:
            event.ack()  # the last reference: the offset becomes committable
        return result

"""Producing to Kafka from the agents: a small protocol, and its implementation on Faust's producer.

Every send is awaited until the broker acknowledged it: the agents publish dead letters and
notifications *before* they let Faust acknowledge the batch, so at-least-once holds for them too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import faust

Record = tuple[bytes | None, bytes]  # (key, value)


class Publisher(Protocol):
    """Produce records and wait until the broker has them."""

    async def publish(self, topic: str, records: Sequence[Record]) -> None: ...


class FaustPublisher:
    """:class:`Publisher` on the Faust app's producer (started on first use)."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    async def publish(self, topic: str, records: Sequence[Record]) -> None:
        if not records:
            return
        producer = await self._app.maybe_start_producer()
        # Send all, then wait for all: one round of broker acknowledgements per call, not per record.
        pending = [
            await producer.send(topic, key, value, partition=None, timestamp=None, headers=None)
            for key, value in records
        ]
        await asyncio.gather(*pending)

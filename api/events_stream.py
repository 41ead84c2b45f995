"""``/v1/events``: one Kafka consumer per API process, fanned out to every connected SSE client.

:class:`NotificationHub` reads ``tidewire.notifications`` (all partitions, no consumer group: it
commits nothing and every API process sees every event), keeps the last ``events_buffer`` events
in memory, and hands each one to the subscriptions of its tenant.

An event id is a Kafka position, sealed (:mod:`api.event_ids`): for every partition, the offset of
the next notification the client has not seen. A client that reconnects with ``Last-Event-ID`` gets
every buffered event of its tenant past that position, then the live stream — nothing twice and,
as long as the gap is still buffered, nothing missed. The position is a whole vector, not the offset
of one message, because a tenant's events interleave partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from confluent_kafka import KafkaException

from api.event_ids import EventIdCodec, Positions
from tidewire.errors import TidewireError
from tidewire.events.codec import EventCodec
from tidewire.events.models import Notification
from tidewire.kafka_clients import admin_client, forward_client_log

logger = logging.getLogger(__name__)


# listener(tenant_id, {document_id: indexed_at}) for every consumed batch of live notifications
# (those published after the hub started, or after its last position on a reconnect).
# What a listener returns (a count of what it dropped, say) is not used.
InvalidationListener = Callable[[str, dict[str, datetime]], Awaitable[object]]


@dataclass(frozen=True)
class HubEvent:
    partition: int
    offset: int
    notification: Notification


@dataclass(eq=False)
class Subscription:
    """One SSE client's view: events of ``tenant_id`` at or after ``start`` (per partition)."""

    tenant_id: str
    start: Positions
    queue: asyncio.Queue[tuple[HubEvent, str] | None]
    replay: list[tuple[HubEvent, str]] = field(default_factory=list)
    overflowed: bool = False

    def wants(self, event: HubEvent, live_from: Positions) -> bool:
        """Its tenant's, and not older than where this client starts (a partition it has no start
        for, e.g. one assigned after it connected, starts at the hub's live position)."""
        start = self.start.get(event.partition, live_from.get(event.partition, 0))
        return event.notification.tenant_id == self.tenant_id and event.offset >= start


class NotificationHub:
    """The process's single notifications consumer and its subscribers."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        codec: EventCodec,
        event_ids: EventIdCodec,
        buffer_size: int,
        client_queue: int,
        retry_s: float = 2.0,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self.topic = topic
        self._codec = codec
        self.event_ids = event_ids
        self._buffer: deque[HubEvent] = deque(maxlen=buffer_size)
        self._client_queue = client_queue
        self._retry_s = retry_s
        self.positions: Positions = {}
        self._live_from: Positions = {}  # end offsets when the hub started: older events are history
        self._subscribers: set[Subscription] = set()
        self._early_listeners: list[InvalidationListener] = []
        self._listeners: list[InvalidationListener] = []
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self.last_error: str | None = "not started"
        self._epoch = 0

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    @property
    def live_epoch(self) -> int | None:
        """Which connection of the consumer is live (it grows at every reconnect); None while it is
        not connected. Caches invalidated by notifications trust their entries only within one epoch,
        since notifications may be missed between two."""
        return self._epoch if self.ready.is_set() else None

    def add_listener(self, listener: InvalidationListener, *, before_delivery: bool = False) -> None:
        """``listener(tenant_id, {document_id: indexed_at})`` is awaited for every consumed batch of
        live notifications; the history replayed at start (for ``Last-Event-ID``) is not passed on.

        ``before_delivery``: awaited before the batch reaches any subscriber, so that a client reacting
        to an event never meets what the event made stale (a search response cache: it must be fast).
        Other listeners run after delivery. Each listener hears every tenant of the batch before the
        next listener runs, so a slow one never holds up a fast one."""
        (self._early_listeners if before_delivery else self._listeners).append(listener)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tidewire-notification-hub")

    async def stop(self) -> None:
        """Stop consuming and end every subscriber's stream."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for subscription in list(self._subscribers):
            self._close(subscription)

    # Subscribers -------------------------------------------------------------------------------

    def subscribe(self, tenant_id: str, resume: Positions | None = None) -> Subscription:
        """Register a client; with ``resume``, its ``replay`` holds the buffered events it missed.

        Synchronous on purpose: the replay and the registration happen with no event processed in
        between, so the replay and the live queue neither overlap nor leave a gap.
        """
        queue: asyncio.Queue[tuple[HubEvent, str] | None] = asyncio.Queue(self._client_queue)
        known = {*self.positions, *self._live_from}  # the topic's partitions seen so far
        if resume is None:
            start = {p: max(self.positions.get(p, 0), self._live_from.get(p, 0)) for p in known}
            subscription = Subscription(tenant_id, start, queue)
        else:
            # Only the topic's partitions: made-up ones in a client's id would only make every id
            # replayed to it longer (and its replay slower) for nothing.
            cursor = {
                partition: offset for partition, offset in resume.items() if partition in known or not known
            }
            replay = []
            for event in self._buffer:
                if event.offset < cursor.get(event.partition, 0):
                    continue
                cursor[event.partition] = event.offset + 1
                if event.notification.tenant_id == tenant_id:
                    replay.append((event, self.event_ids.encode(tenant_id, cursor)))
            start = {p: max(cursor.get(p, 0), self.positions.get(p, 0)) for p in {*cursor, *self.positions}}
            subscription = Subscription(tenant_id, start, queue, replay)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def encode_start(self, subscription: Subscription) -> str:
        """The id of a subscription's starting position (sent before its first event)."""
        return self.event_ids.encode(subscription.tenant_id, subscription.start)

    def _close(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)
        with contextlib.suppress(asyncio.QueueFull):
            subscription.queue.put_nowait(None)

    def publish(self, partition: int, offset: int, notification: Notification | None) -> None:
        """Account for the message at ``partition``/``offset`` and fan it out (None: undecodable)."""
        self.positions[partition] = offset + 1
        if notification is None:
            return
        event = HubEvent(partition, offset, notification)
        self._buffer.append(event)
        event_id: str | None = None  # sealed for the event's tenant, once, if anyone wants the event
        for subscription in list(self._subscribers):
            if not subscription.wants(event, self._live_from):
                continue
            if event_id is None:
                event_id = self.event_ids.encode(notification.tenant_id, self.positions)
            try:
                subscription.queue.put_nowait((event, event_id))
            except asyncio.QueueFull:
                # A client this far behind is cut off; it resumes with Last-Event-ID from the buffer.
                subscription.overflowed = True
                self._subscribers.discard(subscription)

    # Consuming ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                group_id=None,
                enable_auto_commit=False,
                client_id="tidewire-api-events",
                metadata_max_age_ms=30_000,
            )
            try:
                await consumer.start()
                await self._assign(consumer)
                self.last_error = None
                self._epoch += 1
                self.ready.set()
                await self._consume(consumer)
            except asyncio.CancelledError:
                raise
            except (KafkaError, TidewireError, OSError) as error:
                problem = f"{type(error).__name__}: {error}"
                if problem != self.last_error:  # once per distinct problem, not every retry
                    logger.warning("notifications consumer: %s; retrying every %.0fs", problem, self._retry_s)
                self.last_error = problem
            finally:
                self.ready.clear()
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await asyncio.sleep(self._retry_s)

    async def _assign(self, consumer: AIOKafkaConsumer) -> None:
        partitions = await asyncio.to_thread(self._partitions)
        if not partitions:
            raise TidewireError(f"topic {self.topic} does not exist yet", code="topic_missing")
        assigned = [TopicPartition(self.topic, partition) for partition in sorted(partitions)]
        consumer.assign(assigned)
        beginnings = await consumer.beginning_offsets(assigned)
        ends = await consumer.end_offsets(assigned)
        per_partition = max(1, (self._buffer.maxlen or 1) // len(assigned))
        for tp in assigned:
            consumer.seek(tp, self.begin_at(tp.partition, beginnings[tp], ends[tp], history=per_partition))

    def begin_at(self, partition: int, beginning: int, end: int, *, history: int) -> int:
        """Where to read ``partition`` from: where the hub left off, or on its first connection up to
        ``history`` messages before ``end`` (replayed for ``Last-Event-ID``; ``end`` on is live)."""
        resume_at = self.positions.get(partition)
        if resume_at is None:
            resume_at = max(beginning, end - history)
            self._live_from[partition] = end
            self.positions[partition] = resume_at
        return max(resume_at, beginning)

    def _partitions(self) -> list[int]:
        # aiokafka's consumer.topics() fetches metadata without updating what
        # partitions_for_topic() reads, so ask the broker with the admin client.
        admin = admin_client(self._bootstrap, {"socket.timeout.ms": 5_000})
        try:
            metadata = admin.list_topics(self.topic, timeout=5)
        except KafkaException as error:
            raise TidewireError(
                f"cannot read metadata of {self.topic}: {error}", code="kafka_unavailable"
            ) from None
        finally:
            forward_client_log(admin)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None:
            return []
        return sorted(topic.partitions)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=1_000)
            await self.handle_batches(
                {
                    tp.partition: [(message.offset, message.value) for message in messages]
                    for tp, messages in batches.items()
                }
            )

    async def handle_batches(self, batches: Mapping[int, Sequence[tuple[int, bytes | None]]]) -> None:
        """Pass the live changes among consumed messages (partition → [(offset, value)]) to the
        ``before_delivery`` listeners, publish the messages to the subscribers, then pass the changes
        to the other listeners."""
        touched: dict[str, dict[str, datetime]] = {}  # tenant -> document -> latest indexed_at
        decoded: list[tuple[int, int, Notification | None]] = []
        for partition, messages in batches.items():
            for offset, value in messages:
                notification = self._decode(value, partition, offset)
                decoded.append((partition, offset, notification))
                # History (what was on the topic before the hub started) is for Last-Event-ID only:
                # this process cached nothing before it started, and a stored answer is checked
                # against the document state when it is looked up.
                if notification is not None and offset >= self._live_from.get(partition, 0):
                    documents = touched.setdefault(notification.tenant_id, {})
                    previous = documents.get(notification.document_id)
                    if previous is None or notification.indexed_at > previous:
                        documents[notification.document_id] = notification.indexed_at
        await self._tell(self._early_listeners, touched)
        for partition, offset, notification in decoded:
            self.publish(partition, offset, notification)
        await self._tell(self._listeners, touched)

    @staticmethod
    async def _tell(
        listeners: Sequence[InvalidationListener], touched: dict[str, dict[str, datetime]]
    ) -> None:
        for listener in listeners:
            for tenant_id, documents in touched.items():
                try:
                    await listener(tenant_id, documents)
                except Exception:  # one cache failing must not stop the events or the other caches
                    logger.exception("notification listener failed for tenant %s", tenant_id)

    def _decode(self, value: bytes | None, partition: int, offset: int) -> Notification | None:
        try:
            return self._codec.decode(value, Notification, topic=self.topic)
        except TidewireError as error:
            logger.warning(
                "skipping undecodable notification at %s[%d]@%d: %s", self.topic, partition, offset, error
            )
            return None

"""Fan-out and resume logic of the notifications hub, and the SSE encoding (no Kafka needed:
``publish`` is what the consumer loop calls for every message)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from api.event_ids import EventIdCodec
from api.events_stream import NotificationHub, Subscription
from api.sse import heartbeat, json_event, position_only
from tests.unit.events.sample_notifications import indexed_notification
from tidewire.events.codec import make_event_codec
from tidewire.settings import KafkaSettings

EVENT_IDS = EventIdCodec(b"test secret")


def hub(buffer: int = 100) -> NotificationHub:
    return NotificationHub(
        bootstrap_servers="127.0.0.1:1",
        topic="t",
        codec=make_event_codec(KafkaSettings()),
        event_ids=EVENT_IDS,
        buffer_size=buffer,
        client_queue=10,
    )


def drain(subscription: Subscription) -> list[tuple[str, str]]:
    """(document id, event id) of what the subscription has queued."""
    items = []
    while not subscription.queue.empty():
        item = subscription.queue.get_nowait()
        assert item is not None
        items.append((item[0].notification.document_id, item[1]))
    return items


def positions_of(tenant: str, items: list[tuple[str, str]]) -> list[tuple[str, dict[int, int]]]:
    """The positions the ids of ``items`` stand for, as sent to ``tenant``."""
    return [(document, EVENT_IDS.decode(tenant, event_id)) for document, event_id in items]


def test_live_events_go_only_to_their_tenant_with_positions_as_ids() -> None:
    notifications = hub()
    notifications.publish(0, 0, indexed_notification("a", "old"))
    alice, bob = notifications.subscribe("a"), notifications.subscribe("b")
    notifications.publish(0, 1, indexed_notification("a", "a1"))
    notifications.publish(1, 0, indexed_notification("b", "b1"))
    notifications.publish(1, 1, indexed_notification("a", "a2"))
    assert positions_of("a", drain(alice)) == [("a1", {0: 2}), ("a2", {0: 2, 1: 2})]
    assert positions_of("b", drain(bob)) == [("b1", {0: 2, 1: 1})]


def test_resume_replays_exactly_what_was_missed_then_continues_live() -> None:
    notifications = hub()
    first = notifications.subscribe("a")
    for offset in range(3):
        notifications.publish(0, offset, indexed_notification("a", f"p0-{offset}"))
        notifications.publish(1, offset, indexed_notification("b" if offset else "a", f"p1-{offset}"))
    seen = drain(first)
    last_id = seen[1][1]  # the client saw two events, then disconnected
    notifications.unsubscribe(first)
    resumed = notifications.subscribe("a", EVENT_IDS.decode("a", last_id))
    replayed = [event.notification.document_id for event, _ in resumed.replay]
    assert [document for document, _ in seen[:2]] + replayed == [document for document, _ in seen]
    notifications.publish(0, 3, indexed_notification("a", "live"))
    assert [document for document, _ in drain(resumed)] == ["live"]


def test_a_new_subscriber_does_not_get_history_as_live_events() -> None:
    notifications = hub()
    notifications._live_from = {0: 5}
    subscription = notifications.subscribe("a")
    notifications.publish(0, 3, indexed_notification("a", "history"))
    notifications.publish(0, 5, indexed_notification("a", "new"))
    assert [document for document, _ in drain(subscription)] == ["new"]


def test_a_client_that_falls_too_far_behind_is_cut_off() -> None:
    notifications = hub()
    subscription = notifications.subscribe("a")
    for offset in range(11):
        notifications.publish(0, offset, indexed_notification("a", f"d{offset}"))
    assert subscription.overflowed and notifications.subscriber_count == 0


def test_undecodable_messages_still_advance_the_position() -> None:
    notifications = hub()
    notifications.publish(2, 7, None)
    assert notifications.positions == {2: 8}


def test_sse_encoding() -> None:
    assert (
        json_event("token", {"text": "a\nb"}, "s:1").encode()
        == b'id: s:1\r\nevent: token\r\ndata: {"text":"a\\nb"}\r\n\r\n'
    )
    assert position_only("0:1").encode() == b"id: 0:1\r\n\r\n"
    assert heartbeat().encode() == b": ping\r\n\r\n"


def test_listeners_get_live_changes_only_not_the_history_replayed_at_start() -> None:
    notifications = hub()
    codec = make_event_codec(KafkaSettings())
    # The topic held offsets 0..2 when the hub connected: it replays them, offset 3 on is live.
    assert notifications.begin_at(0, 0, 3, history=100) == 0
    heard: list[tuple[str, list[str]]] = []

    async def listener(tenant: str, documents: dict[str, datetime]) -> None:
        heard.append((tenant, sorted(documents)))

    notifications.add_listener(listener)
    encoded = {
        name: codec.encode(indexed_notification("a", name), topic="t") for name in ("old-1", "old-2", "new")
    }
    asyncio.run(
        notifications.handle_batches(
            {0: [(1, encoded["old-1"]), (2, encoded["old-2"]), (3, encoded["new"]), (4, b"garbage")]}
        )
    )
    assert heard == [("a", ["new"])]
    # The replayed history still reaches a client resuming from before it.
    resumed = notifications.subscribe("a", resume={0: 0})
    assert [event.notification.document_id for event, _ in resumed.replay] == ["old-1", "old-2", "new"]


def test_early_listeners_hear_every_tenant_before_any_subscriber_gets_the_batch() -> None:
    notifications = hub()
    codec = make_event_codec(KafkaSettings())
    assert notifications.begin_at(0, 0, 0, history=100) == 0
    bob = notifications.subscribe("b")
    log: list[str] = []

    async def search_cache(tenant: str, documents: dict[str, datetime]) -> None:
        log.append(f"early {tenant}, bob has {len(drain_peek(bob))}")

    async def semantic_cache(tenant: str, documents: dict[str, datetime]) -> None:
        log.append(f"late {tenant}, bob has {len(drain_peek(bob))}")

    notifications.add_listener(semantic_cache)
    notifications.add_listener(search_cache, before_delivery=True)
    batch = {
        0: [
            (0, codec.encode(indexed_notification("a", "a1"), topic="t")),
            (1, codec.encode(indexed_notification("b", "b1"), topic="t")),
        ]
    }
    asyncio.run(notifications.handle_batches(batch))
    assert log == ["early a, bob has 0", "early b, bob has 0", "late a, bob has 1", "late b, bob has 1"]


def drain_peek(subscription: Subscription) -> list[object]:
    """What waits in ``subscription``'s queue, left in place."""
    return list(subscription.queue._queue)  # type: ignore[attr-defined]


def test_partitions_the_topic_does_not_have_are_left_out_of_a_resumed_clients_ids() -> None:
    notifications = hub()
    for offset in range(3):
        notifications.publish(0, offset, indexed_notification("a", f"p0-{offset}"))
    padded = {0: 1, **{partition: 0 for partition in range(100, 400)}}
    resumed = notifications.subscribe("a", padded)
    replayed = [(event.notification.document_id, event_id) for event, event_id in resumed.replay]
    assert positions_of("a", replayed) == [("p0-1", {0: 2}), ("p0-2", {0: 3})]

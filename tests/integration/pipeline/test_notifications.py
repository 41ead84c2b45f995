"""Notifications for every indexed or deleted document, and signed webhook deliveries with retries."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest

from models.chunking import TextChunker
from streams.app import COMMIT_INTERVAL_S
from streams.webhook_signing import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.integration.pipeline.conftest import (
    TopicTail,
    WorkerGroup,
    wait_for,
    wait_until_indexed,
)
from tidewire.consumer_lag import consumer_group_lag
from tidewire.events import DeadLetter, FailureStage, Notification, make_event_codec
from tidewire.settings import Settings

SECRET = "itest-webhook-secret"


def webhooks_toml(
    endpoints: list[tuple[str, str | None]], *, attempts: int, initial_backoff_s: float, max_backoff_s: float
) -> str:
    """The `[streams]` retry settings and one `[[streams.webhooks]]` per (url, tenant or None)."""
    lines = [
        f"webhook_attempts = {attempts}",
        f"webhook_initial_backoff_s = {initial_backoff_s}",
        f"webhook_max_backoff_s = {max_backoff_s}",
    ]
    for url, tenant in endpoints:
        lines += ["[[streams.webhooks]]", f'url = "{url}"', f'secret = "{SECRET}"']
        lines += [f'tenant = "{tenant}"'] if tenant is not None else []
    return "\n".join(lines) + "\n"


def test_every_indexed_and_deleted_document_is_notified(
    worker_group: WorkerGroup,
    settings: Settings,
    db: psycopg.Connection[Any],
    chunker: TextChunker,
    new_id: Callable[[str], str],
    tail: Callable[[str], TopicTail],
) -> None:
    notifications = tail(settings.topics.notifications)
    codec = make_event_codec(settings.kafka)
    ids = [new_id(f"notify-{index}") for index in range(5)]
    for document_id in ids:
        db.execute(
            "INSERT INTO public.documents (id, tenant_id, title, body) VALUES (%s, 'acme', 'N', %s)",
            (document_id, f"body of {document_id}"),
        )
    db.execute("DELETE FROM public.documents WHERE id = %s", (ids[0],))

    def mine(messages: list[Any]) -> list[Notification]:
        decoded = [codec.decode(m.value(), Notification, topic=notifications.topic) for m in messages]
        return [n for n in decoded if n.pipeline == worker_group.pipeline and n.document_id in ids]

    notifications.collect(
        lambda messages: (
            {(n.document_id, n.event_type.event_name) for n in mine(messages)}
            >= {*((i, "document.indexed") for i in ids[1:]), (ids[0], "document.deleted")}
        ),
        timeout_s=90,
        what="notifications of 4 indexed and 1 deleted document",
    )
    for notification in mine(notifications.messages):
        assert notification.tenant_id == "acme"
        assert notification.freshness_ms >= 0
        assert notification.model == settings.embedding.model_id
        expected_chunks = 0 if notification.event_type.event_name == "document.deleted" else 1
        assert notification.chunks == expected_chunks
    wait_until_indexed(db, chunker, worker_group.pipeline, ids[1:])
    wait_until_indexed(db, chunker, worker_group.pipeline, ids[:1], present=False)


def test_a_document_moved_to_another_tenant_is_deleted_for_the_tenant_it_left(
    worker_group: WorkerGroup,
    settings: Settings,
    db: psycopg.Connection[Any],
    new_id: Callable[[str], str],
    tail: Callable[[str], TopicTail],
) -> None:
    notifications = tail(settings.topics.notifications)
    codec = make_event_codec(settings.kafka)
    document_id = new_id("moves")

    def mine(messages: list[Any]) -> list[tuple[str, str]]:
        decoded = [codec.decode(m.value(), Notification, topic=notifications.topic) for m in messages]
        return [
            (n.event_type.event_name, n.tenant_id)
            for n in decoded
            if n.pipeline == worker_group.pipeline and n.document_id == document_id
        ]

    db.execute(
        "INSERT INTO public.documents (id, tenant_id, title, body) VALUES (%s, 'old-owner', 'M', 'moving')",
        (document_id,),
    )
    notifications.collect(
        lambda messages: ("document.indexed", "old-owner") in mine(messages),
        timeout_s=90,
        what="the first owner's",
    )
    db.execute("UPDATE public.documents SET tenant_id = 'new-owner' WHERE id = %s", (document_id,))
    notifications.collect(
        lambda messages: ("document.indexed", "new-owner") in mine(messages),
        timeout_s=90,
        what="the new owner's",
    )
    # Delivery is at least once: a redelivered batch may repeat a notification, never reorder them.
    assert list(dict.fromkeys(mine(notifications.messages))) == [
        ("document.indexed", "old-owner"),
        ("document.deleted", "old-owner"),
        ("document.indexed", "new-owner"),
    ]


@dataclass
class Receiver:
    """A webhook receiver that refuses the first ``failures`` attempts of each delivery."""

    failures: int
    always_fail_path: str = "/always-fails"
    down_paths: set[str] = field(default_factory=set)  # refused while listed here
    attempts: dict[str, int] = field(default_factory=dict)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver(failures=2)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            delivery = self.headers[DELIVERY_HEADER]
            with state.lock:
                if not verify(
                    SECRET, int(self.headers[TIMESTAMP_HEADER]), body, self.headers[SIGNATURE_HEADER]
                ):
                    state.bad_signatures.append(delivery)
                key = f"{self.path}|{delivery}"
                state.attempts[key] = state.attempts.get(key, 0) + 1
                refuse = (
                    self.path == state.always_fail_path
                    or self.path in state.down_paths
                    or state.attempts[key] <= state.failures
                )
                if not refuse:
                    state.accepted.append({**json.loads(body), "_path": self.path})
            self.send_response(503 if refuse else 204)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_webhooks_are_signed_retried_and_dead_lettered_after_the_last_attempt(
    worker_group_factory: Callable[..., WorkerGroup],
    receiver: tuple[Receiver, str],
    settings: Settings,
    db: psycopg.Connection[Any],
    chunker: TextChunker,
    new_id: Callable[[str], str],
    tail: Callable[[str], TopicTail],
) -> None:
    state, url = receiver
    group = worker_group_factory(
        webhooks_toml(
            [(f"{url}/hooks", None), (f"{url}{state.always_fail_path}", "hooks-fail")],
            attempts=3,
            initial_backoff_s=0.1,
            max_backoff_s=0.5,
        )
    )
    group.start()
    dlq = tail(settings.topics.dead_letter)
    delivered_id, failing_id = new_id("hook"), new_id("hook-fail")
    db.execute(
        "INSERT INTO public.documents (id, title, body) VALUES (%s, 'Hook', 'delivered')", (delivered_id,)
    )
    db.execute(
        "INSERT INTO public.documents (id, tenant_id, title, body) VALUES (%s, 'hooks-fail', 'Hook', 'refused')",
        (failing_id,),
    )
    wait_until_indexed(db, chunker, group.pipeline, [delivered_id, failing_id])

    def accepted_mine() -> list[dict[str, Any]]:
        with state.lock:
            return [
                d
                for d in state.accepted
                if d["pipeline"] == group.pipeline and d["document_id"] == delivered_id
            ]

    wait_for(accepted_mine, timeout_s=60, what="the webhook delivery")
    [delivery] = accepted_mine()
    assert delivery["type"] == "document.indexed" and delivery["chunks"] == 1
    with state.lock:
        assert state.bad_signatures == []
        assert state.attempts[f"/hooks|{delivery['id']}"] == 3  # two refusals, then accepted

    codec = make_event_codec(settings.kafka)

    def failed_deliveries(messages: list[Any]) -> list[DeadLetter]:
        letters = [codec.decode(m.value(), DeadLetter, topic=dlq.topic) for m in messages]
        return [
            letter
            for letter in letters
            if letter.stage is FailureStage.DELIVER
            and letter.key == failing_id.encode()
            and letter.pipeline == group.pipeline
        ]

    dlq.collect(lambda messages: bool(failed_deliveries(messages)), timeout_s=60, what="the failed delivery")
    [letter] = failed_deliveries(dlq.messages)
    assert letter.destination == f"{url}{state.always_fail_path}"
    assert letter.attempts == 3
    assert "503" in letter.reason
    group.stop_all()


def test_an_endpoint_that_is_down_does_not_hold_up_the_deliveries_of_the_others(
    worker_group_factory: Callable[..., WorkerGroup],
    receiver: tuple[Receiver, str],
    db: psycopg.Connection[Any],
    new_id: Callable[[str], str],
) -> None:
    state, url = receiver
    state.failures = 0  # /hooks accepts at once; the always-failing path refuses every attempt
    tenant = new_id("hol")
    # The failing endpoint's schedule: 4 + 8 + 8 + 8 s of backoff, each wait shortened by up to half at
    # random, so its last attempt comes 14 s after the first at the earliest.
    attempts = 5
    group = worker_group_factory(
        webhooks_toml(
            [(f"{url}{state.always_fail_path}", tenant), (f"{url}/hooks", tenant)],
            attempts=attempts,
            initial_backoff_s=4.0,
            max_backoff_s=8.0,
        )
    )
    worker = group.start()

    def accepted(document_id: str) -> bool:
        with state.lock:
            return any(d["document_id"] == document_id for d in state.accepted)

    def most_attempts_at_the_failing_endpoint() -> int:
        with state.lock:
            prefix = f"{state.always_fail_path}|"
            return max((n for key, n in state.attempts.items() if key.startswith(prefix)), default=0)

    first, second = new_id("hol-first"), new_id("hol-second")
    for document_id in (first, second):
        db.execute(
            "INSERT INTO public.documents (id, tenant_id, title, body) VALUES (%s, %s, 'H', 'b')",
            (document_id, tenant),
        )
        # One batch each: the second notification comes after the first was delivered.
        wait_for(
            lambda document_id=document_id: accepted(document_id),
            timeout_s=60,
            what=f"{document_id} delivered",
        )
    # The healthy endpoint had the second notification while the first was still being retried at the
    # failing one; with one batch for all endpoints it would have waited for all its attempts.
    assert 1 <= most_attempts_at_the_failing_endpoint() < attempts
    # A graceful stop would wait for the failing endpoint's retries; nothing here needs them.
    group.kill(worker)


def test_a_notification_stays_uncommitted_until_every_endpoint_has_it(
    worker_group_factory: Callable[..., WorkerGroup],
    receiver: tuple[Receiver, str],
    settings: Settings,
    db: psycopg.Connection[Any],
    new_id: Callable[[str], str],
    tail: Callable[[str], TopicTail],
) -> None:
    state, url = receiver
    state.failures = 0
    state.down_paths.add("/down-for-now")
    tenant = new_id("commit")
    group = worker_group_factory(
        # The second attempt 5-10 s after the first: time to look at the committed offset in between.
        webhooks_toml(
            [(f"{url}/down-for-now", tenant), (f"{url}/hooks", tenant)],
            attempts=5,
            initial_backoff_s=10.0,
            max_backoff_s=10.0,
        )
    )
    group.start()
    notifications = tail(settings.topics.notifications)
    codec = make_event_codec(settings.kafka)
    document_id = new_id("commit-doc")
    db.execute(
        "INSERT INTO public.documents (id, tenant_id, title, body) VALUES (%s, %s, 'C', 'b')",
        (document_id, tenant),
    )

    def ours(messages: list[Any]) -> list[Any]:
        return [
            m
            for m in messages
            if (n := codec.decode(m.value(), Notification, topic=notifications.topic)).document_id
            == document_id
            and n.pipeline == group.pipeline
        ]

    [message] = ours(notifications.collect(lambda messages: bool(ours(messages)), timeout_s=60, what="it"))

    def accepted_at(path: str) -> bool:
        with state.lock:
            return any(d["document_id"] == document_id for d in state.accepted if d.get("_path") == path)

    def committed() -> int:
        lag = consumer_group_lag(settings.kafka.bootstrap, group.app_id, [notifications.topic])
        [partition] = [
            p for p in lag.partitions if (p.topic, p.partition) == (message.topic(), message.partition())
        ]
        return partition.committed or 0

    wait_for(lambda: accepted_at("/hooks"), timeout_s=60, what="the healthy endpoint's delivery")
    # Past Faust's commit timer: the healthy endpoint's acknowledgement alone must not commit it.
    time.sleep(COMMIT_INTERVAL_S + 1)
    assert not accepted_at("/down-for-now")
    assert committed() <= message.offset()

    state.down_paths.clear()  # the next attempt succeeds, and the offset moves past the notification
    wait_for(
        lambda: accepted_at("/down-for-now"), timeout_s=60, what="the delivery once the endpoint is back"
    )
    wait_for(lambda: committed() > message.offset(), timeout_s=30, what="the offset committed")

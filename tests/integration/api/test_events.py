"""``GET /v1/events``: live notifications from the real pipeline, and resuming with Last-Event-ID."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, connect_sse

from tests.integration.api.conftest import Documents, Tenant

EVENT_TIMEOUT_S = 240


class EventReader:
    """Reads one SSE stream in a thread; tests take events from ``events`` with a timeout."""

    def __init__(self, url: str, tenant: Tenant, last_event_id: str | None = None) -> None:
        self.events: queue.Queue[ServerSentEvent] = queue.Queue()
        self.last_id: str | None = last_event_id
        self.status: int | None = None
        self.tenant = tenant
        self.seen: list[str] = []  # document ids of every event taken, in order
        self.seen_ids: list[str] = []  # and their event ids
        self._client = httpx.Client(timeout=httpx.Timeout(30, read=None))
        headers = {**tenant.headers, **({"Last-Event-ID": last_event_id} if last_event_id else {})}
        self._context = connect_sse(self._client, "GET", f"{url}/v1/events", headers=headers)
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self._opened.wait(30), "the events stream did not open"

    def _read(self) -> None:
        try:
            with self._context as source:
                self.status = source.response.status_code
                self._opened.set()
                for event in source.iter_sse():
                    if event.id:
                        self.last_id = event.id
                    if event.event != "message" or event.data:
                        self.events.put(event)
        except httpx.HTTPError:
            pass  # closed by the test
        finally:
            self._opened.set()

    def next_for(self, document_id: str) -> ServerSentEvent:
        """Events up to and including the first one about ``document_id`` (fails after the timeout)."""
        while True:
            event = self.events.get(timeout=EVENT_TIMEOUT_S)
            seen = event.json()["document_id"]
            assert seen.startswith(self.tenant.name + "-"), f"{seen} leaked into {self.tenant.name}'s stream"
            self.seen.append(seen)
            self.seen_ids.append(event.id)
            if seen == document_id:
                return event

    def take_until_seen(self, document_ids: list[str]) -> None:
        """Take events until each of ``document_ids`` has come (in any order: partitions interleave)."""
        while not set(document_ids) <= set(self.seen):
            event = self.events.get(timeout=EVENT_TIMEOUT_S)
            seen = event.json()["document_id"]
            assert seen.startswith(self.tenant.name + "-"), f"{seen} leaked into {self.tenant.name}'s stream"
            self.seen.append(seen)
            self.seen_ids.append(event.id)

    def drain(self) -> list[ServerSentEvent]:
        items = []
        while not self.events.empty():
            items.append(self.events.get_nowait())
        return items

    def close(self) -> None:
        self._client.close()
        self._thread.join(timeout=10)


@contextmanager
def reading(url: str, tenant: Tenant, last_event_id: str | None = None) -> Iterator[EventReader]:
    reader = EventReader(url, tenant, last_event_id)
    try:
        yield reader
    finally:
        reader.close()


def write(documents: Documents, tenant: Tenant, slug: str, body: str) -> str:
    document_id = tenant.doc(slug)
    documents.upsert(tenant.name, document_id, slug, body)
    return document_id


def payload(event: ServerSentEvent) -> dict[str, Any]:
    return event.json()  # type: ignore[no-any-return]


def test_a_client_sees_its_tenants_rows_indexed_after_it_connected(
    api_url: str, tenant_factory: Callable[[str], Tenant], documents: Documents
) -> None:
    mine, theirs = tenant_factory("ev-a"), tenant_factory("ev-b")
    with reading(api_url, mine) as reader, reading(api_url, theirs) as other:
        assert reader.status == 200
        document_id = write(documents, mine, "live", "A verse written while the client listens.")
        write(documents, theirs, "live", "Another tenant's verse.")
        event = reader.next_for(document_id)
        assert event.event == "document.indexed" and event.id
        data = payload(event)
        assert data["chunks"] == 1 and data["freshness_ms"] >= 0
        other.next_for(theirs.doc("live"))
        # Each stream carried only its own tenant's documents.
        assert all(payload(e)["document_id"].startswith(mine.name + "-") for e in reader.drain())
        assert all(payload(e)["document_id"].startswith(theirs.name + "-") for e in other.drain())


def test_reconnecting_with_last_event_id_replays_what_was_missed_once(
    api_url: str, tenant_factory: Callable[[str], Tenant], documents: Documents
) -> None:
    tenant = tenant_factory("ev-resume")
    with reading(api_url, tenant) as reader:
        first = write(documents, tenant, "first", "The first verse.")
        reader.next_for(first)
        last_id = reader.last_id
    assert last_id
    missed = [
        write(documents, tenant, f"missed-{index}", f"Missed verse number {index}.") for index in range(3)
    ]
    for document_id in missed:
        documents.wait_indexed(
            document_id,
            documents.query("SELECT updated_at FROM public.documents WHERE id = %s", (document_id,))[0][
                "updated_at"
            ],
        )
    with reading(api_url, tenant, last_id) as resumed:
        resumed.take_until_seen(missed)
        after = write(documents, tenant, "after", "A verse after the reconnect.")
        resumed.next_for(after)
        rest = resumed.drain()
        everything = resumed.seen + [payload(e)["document_id"] for e in rest]
        event_ids = resumed.seen_ids + [e.id for e in rest]
        # Nothing from before the position, no message twice (the pipeline itself is at-least-once,
        # so the same document may legitimately come again, but never the same message).
        assert first not in everything and set(everything) == {*missed, after}
        assert len(set(event_ids)) == len(event_ids)


def test_garbage_last_event_id_is_a_clean_422(api_url: str, corpus_tenants: tuple[Tenant, Tenant]) -> None:
    for garbage in ("garbage", "0:1,x", "-1:5", "9" * 5000):
        response = httpx.get(
            f"{api_url}/v1/events", headers={**corpus_tenants[0].headers, "Last-Event-ID": garbage}
        )
        assert response.status_code == 422, (garbage, response.text)
        assert response.json()["error"]["code"] == "validation_error"
    # A control character is not allowed in a header at all: the HTTP parser refuses the request
    # before the app sees it, in the same error shape.
    response = httpx.get(
        f"{api_url}/v1/events", headers={**corpus_tenants[0].headers, "Last-Event-ID": "0:1\x7f"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_request"


def test_an_id_tells_nothing_and_is_a_422_for_any_other_tenant(
    api_url: str, tenant_factory: Callable[[str], Tenant], documents: Documents
) -> None:
    mine, theirs = tenant_factory("ev-sealed-a"), tenant_factory("ev-sealed-b")
    with reading(api_url, mine) as reader:
        reader.next_for(write(documents, mine, "sealed", "A verse whose id is sealed."))
        sent = reader.last_id
    assert sent and ":" not in sent and "," not in sent  # no partition:offset pairs in the clear
    with reading(api_url, mine, sent) as resumed:
        assert resumed.status == 200
    response = httpx.get(f"{api_url}/v1/events", headers={**theirs.headers, "Last-Event-ID": sent})
    assert response.status_code == 422, response.text
    assert "not an id this API sent to this tenant" in response.json()["error"]["message"]


def test_a_deleted_row_comes_as_document_deleted(
    api_url: str, tenant_factory: Callable[[str], Tenant], documents: Documents
) -> None:
    tenant = tenant_factory("ev-delete")
    with reading(api_url, tenant) as reader:
        document_id = write(documents, tenant, "doomed", "A verse about to be removed.")
        assert reader.next_for(document_id).event == "document.indexed"
        documents.query("DELETE FROM public.documents WHERE id = %s RETURNING id", (document_id,))
        event = reader.next_for(document_id)
        assert event.event == "document.deleted" and event.id
        assert payload(event)["chunks"] == 0


def test_an_idle_stream_gets_heartbeat_comments(
    api_url: str, tenant_factory: Callable[[str], Tenant]
) -> None:
    tenant = tenant_factory("ev-idle")
    comments: list[str] = []
    # The suite's API pings every second (api.sse_ping_s); a read that waits 10 s for a line fails loudly.
    with (
        httpx.Client(timeout=httpx.Timeout(10)) as client,
        client.stream("GET", f"{api_url}/v1/events", headers=tenant.headers) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith(":"):
                comments.append(line)
            if len(comments) == 2:
                break
    assert len(comments) == 2

"""Row changes in public.documents become exactly the right chunks in the vector table.

Each test writes documents with unique ids and waits (polling the database with a deadline)
until the vector table of its worker group's pipeline matches the source table.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable
from typing import Any

import psycopg

from models.chunking import TextChunker
from tests.integration.pipeline.conftest import (
    WorkerGroup,
    index_state,
    wait_for,
    wait_until_indexed,
)

ENGLISH_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "that",
    "he",
    "shall",
    "unto",
    "for",
    "his",
    "a",
    "lord",
    "they",
    "be",
    "is",
    "him",
    "not",
    "them",
    "it",
    "with",
    "all",
    "thou",
    "thy",
    "was",
    "god",
    "which",
    "my",
    "me",
    "said",
    "but",
    "ye",
    "their",
    "have",
    "will",
    "thee",
    "from",
    "as",
    "are",
    "when",
    "this",
    "out",
    "were",
    "upon",
    "man",
    "by",
    "you",
    "israel",
    "king",
    "son",
    "up",
    "there",
    "hath",
    "people",
    "came",
    "had",
    "house",
    "on",
    "into",
    "her",
    "come",
    "one",
    "we",
    "children",
    "before",
    "your",
    "also",
    "day",
    "land",
    "men",
]


def insert(
    db: psycopg.Connection[Any], document_id: str, title: str | None, body: str | None, **extra: Any
) -> None:
    metadata = json.dumps(extra.get("metadata", {}))
    db.execute(
        "INSERT INTO public.documents (id, tenant_id, title, body, metadata) VALUES (%s, %s, %s, %s, %s)",
        (document_id, extra.get("tenant", "default"), title, body, metadata),
    )


def test_insert_update_and_delete(
    worker_group: WorkerGroup, db: psycopg.Connection[Any], chunker: TextChunker, new_id: Callable[[str], str]
) -> None:
    document_id = new_id("crud")
    insert(db, document_id, "First title", "The first body.", tenant="acme")
    wait_until_indexed(db, chunker, worker_group.pipeline, [document_id])
    assert index_state(db, worker_group.pipeline, document_id).tenant_id == "acme"

    db.execute("UPDATE public.documents SET body = 'A different body.' WHERE id = %s", (document_id,))
    wait_until_indexed(db, chunker, worker_group.pipeline, [document_id])
    assert index_state(db, worker_group.pipeline, document_id).chunks == ["First title\n\nA different body."]

    db.execute("DELETE FROM public.documents WHERE id = %s", (document_id,))
    wait_until_indexed(db, chunker, worker_group.pipeline, [document_id], present=False)
    state = index_state(db, worker_group.pipeline, document_id)
    assert state.chunks == [] and state.deleted is True


def test_metadata_only_update_does_not_re_embed(
    worker_group: WorkerGroup, db: psycopg.Connection[Any], chunker: TextChunker, new_id: Callable[[str], str]
) -> None:
    document_id = new_id("meta")
    insert(db, document_id, "Stable", "This text does not change.", metadata={"version": 1})
    wait_until_indexed(db, chunker, worker_group.pipeline, [document_id])
    worker = worker_group.workers[0]
    embedded_before = worker.metric("tidewire_embedded_chunks_total", pipeline=worker_group.pipeline)
    unchanged_before = worker.metric("tidewire_unchanged_documents_total", pipeline=worker_group.pipeline)

    db.execute(
        "UPDATE public.documents SET metadata = %s, updated_at = now() WHERE id = %s",
        (json.dumps({"version": 2}), document_id),
    )
    wait_for(
        lambda: index_state(db, worker_group.pipeline, document_id).metadata == {"version": 2},
        timeout_s=60,
        what="the new metadata",
    )
    assert (
        worker.metric("tidewire_unchanged_documents_total", pipeline=worker_group.pipeline) > unchanged_before
    )
    assert worker.metric("tidewire_embedded_chunks_total", pipeline=worker_group.pipeline) == embedded_before
    assert index_state(db, worker_group.pipeline, document_id).chunks == [
        "Stable\n\nThis text does not change."
    ]


def test_a_shorter_text_removes_surplus_chunks(
    worker_group: WorkerGroup, db: psycopg.Connection[Any], chunker: TextChunker, new_id: Callable[[str], str]
) -> None:
    document_id = new_id("shrink")
    insert(db, document_id, "Long", " ".join(f"word{i}" for i in range(3000)))
    wait_until_indexed(db, chunker, worker_group.pipeline, [document_id])
    assert len(index_state(db, worker_group.pipeline, document_id).chunks) > 3
    db.execute("UPDATE public.documents SET body = 'short now' WHERE id = %s", (document_id,))
    wait_until_indexed(db, chunker, worker_group.pipeline, [document_id])
    assert index_state(db, worker_group.pipeline, document_id).chunks == ["Long\n\nshort now"]


def test_a_one_megabyte_document_becomes_many_chunks(
    worker_group: WorkerGroup, db: psycopg.Connection[Any], chunker: TextChunker, new_id: Callable[[str], str]
) -> None:
    document_id = new_id("1mb")
    # English words (about one token each) keep the embedding work near 1,000 chunks.
    generator = random.Random(7)
    body = " ".join(generator.choice(ENGLISH_WORDS) for _ in range(220_000))[:1_000_000]
    insert(db, document_id, "A very long document", body)
    wait_until_indexed(db, chunker, worker_group.pipeline, [document_id], timeout_s=600)
    assert len(index_state(db, worker_group.pipeline, document_id).chunks) > 100


def test_an_empty_text_has_no_chunks(
    worker_group: WorkerGroup, db: psycopg.Connection[Any], chunker: TextChunker, new_id: Callable[[str], str]
) -> None:
    empty, blank = new_id("empty"), new_id("blank")
    insert(db, empty, None, None)
    insert(db, blank, "   ", "\n\n")
    wait_until_indexed(db, chunker, worker_group.pipeline, [empty, blank])
    for document_id in (empty, blank):
        state = index_state(db, worker_group.pipeline, document_id)
        assert state.chunks == [] and state.deleted is False


def test_a_toasted_body_survives_an_update_of_another_column(
    worker_group: WorkerGroup, db: psycopg.Connection[Any], chunker: TextChunker, new_id: Callable[[str], str]
) -> None:
    document_id = new_id("toast")
    # Random words do not compress below the TOAST threshold: the body is stored out of line.
    generator = random.Random(11)
    body = " ".join(
        "".join(generator.choices(string.ascii_lowercase, k=generator.randint(3, 10))) for _ in range(4000)
    )
    insert(db, document_id, "Toasted", body, metadata={"rev": 1})
    wait_until_indexed(db, chunker, worker_group.pipeline, [document_id], timeout_s=120)
    stored = db.execute(
        "SELECT pg_column_size(body) < octet_length(body) OR pg_column_size(body) > 2000"
        " FROM public.documents WHERE id = %s",
        (document_id,),
    ).fetchone()
    assert stored is not None and stored[0]
    chunks_before = index_state(db, worker_group.pipeline, document_id).chunks

    # Debezium sends the unchanged TOASTed body as a placeholder in this update's event.
    db.execute(
        "UPDATE public.documents SET metadata = %s WHERE id = %s", (json.dumps({"rev": 2}), document_id)
    )
    wait_for(
        lambda: index_state(db, worker_group.pipeline, document_id).metadata == {"rev": 2},
        timeout_s=60,
        what="the metadata of the TOASTed row",
    )
    state = index_state(db, worker_group.pipeline, document_id)
    assert state.chunks == chunks_before
    assert not any("__tidewire_unavailable__" in chunk for chunk in state.chunks)


def test_ten_thousand_rows_in_one_transaction(
    worker_group: WorkerGroup, db: psycopg.Connection[Any], chunker: TextChunker, new_id: Callable[[str], str]
) -> None:
    ids = [new_id(f"bulk-{index}") for index in range(10_000)]
    with db.transaction(), db.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO public.documents (id, title, body) VALUES (%s, %s, %s)",
            [
                (document_id, f"Row {index}", f"Body of row number {index}.")
                for index, document_id in enumerate(ids)
            ],
        )
    pipeline = worker_group.pipeline
    wait_for(
        lambda: (
            db.execute(
                "SELECT count(*) FROM tidewire_chunks WHERE pipeline = %s AND document_id = ANY(%s)",
                (pipeline, ids),
            ).fetchone()[0]  # type: ignore[index]
            == len(ids)
        ),
        timeout_s=420,
        what="10,000 rows to be indexed",
        interval_s=2,
    )
    rows = db.execute(
        "SELECT c.document_id, c.chunk_text FROM tidewire_chunks c WHERE c.pipeline = %s AND c.document_id = ANY(%s)",
        (pipeline, ids),
    ).fetchall()
    by_id = dict(rows)
    assert len(rows) == len(ids)
    assert all(
        by_id[document_id] == f"Row {index}\n\nBody of row number {index}."
        for index, document_id in enumerate(ids)
    )


def test_freshness_is_observed_for_each_indexed_document(
    worker_group: WorkerGroup, db: psycopg.Connection[Any], chunker: TextChunker, new_id: Callable[[str], str]
) -> None:
    def total(sample: str) -> float:
        return sum(worker.metric(sample, pipeline=worker_group.pipeline) for worker in worker_group.workers)

    count_before, seconds_before = (
        total("tidewire_freshness_seconds_count"),
        total("tidewire_freshness_seconds_sum"),
    )
    document_id = new_id("freshness")
    insert(db, document_id, "Fresh", "Measured from the source commit to the vectors' commit.")
    wait_until_indexed(db, chunker, worker_group.pipeline, [document_id])
    wait_for(
        lambda: total("tidewire_freshness_seconds_count") > count_before,
        timeout_s=30,
        what="a freshness sample",
    )
    observed = total("tidewire_freshness_seconds_count") - count_before
    seconds = total("tidewire_freshness_seconds_sum") - seconds_before
    # From a commit a moment ago: positive, and well under the minutes a stalled pipeline would show.
    assert 0 < seconds / observed < 120

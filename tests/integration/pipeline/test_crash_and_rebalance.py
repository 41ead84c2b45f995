"""Crashes and rebalances: nothing lost, nothing duplicated.

A worker is killed with SIGKILL in the middle of a stream of batches, or a second worker joins
and the first leaves; afterwards the vector table matches the source table exactly.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Callable
from typing import Any

import psycopg

from models.chunking import TextChunker
from tests.integration.pipeline.conftest import WorkerGroup, expected_chunks, wait_for, wait_until_indexed

WORDS = [
    "river",
    "stone",
    "light",
    "over",
    "the",
    "quiet",
    "field",
    "where",
    "morning",
    "comes",
    "slow",
    "and",
    "bright",
    "across",
    "old",
    "hills",
]
DOCUMENTS = 400


def insert_documents(db: psycopg.Connection[Any], ids: list[str]) -> None:
    generator = random.Random(5)
    rows = [
        (document_id, f"Doc {index}", " ".join(generator.choices(WORDS, k=80)))
        for index, document_id in enumerate(ids)
    ]
    with db.transaction(), db.cursor() as cursor:
        cursor.executemany("INSERT INTO public.documents (id, title, body) VALUES (%s, %s, %s)", rows)


def indexed_count(db: psycopg.Connection[Any], pipeline: str, ids: list[str]) -> int:
    row = db.execute(
        "SELECT count(*) FROM tidewire_document_state WHERE pipeline = %s AND document_id = ANY(%s)",
        (pipeline, ids),
    ).fetchone()
    return int(row[0]) if row else 0


def assert_exact(db: psycopg.Connection[Any], chunker: TextChunker, pipeline: str, ids: list[str]) -> None:
    """One state row per document and exactly the chunks a fresh chunking gives: no loss, no duplicates."""
    expected_total = sum(len(expected_chunks(db, chunker, document_id) or []) for document_id in ids)
    chunk_rows = db.execute(
        "SELECT count(*), count(DISTINCT (document_id, chunk_index)) FROM tidewire_chunks"
        " WHERE pipeline = %s AND document_id = ANY(%s)",
        (pipeline, ids),
    ).fetchone()
    assert chunk_rows == (expected_total, expected_total)
    assert indexed_count(db, pipeline, ids) == len(ids)


def test_kill_9_in_the_middle_of_a_batch_loses_and_duplicates_nothing(
    worker_group_factory: Callable[..., WorkerGroup],
    db: psycopg.Connection[Any],
    chunker: TextChunker,
    new_id: Callable[[str], str],
) -> None:
    group = worker_group_factory("batch_max_events = 48\n")
    first = group.start()
    ids = [new_id(f"crash-{index}") for index in range(DOCUMENTS)]
    insert_documents(db, ids)
    # Kill once at least one batch is committed and more are on their way.
    wait_for(
        lambda: (
            first.metric("tidewire_stream_batches_total", agent="embed") >= 1
            and indexed_count(db, group.pipeline, ids) > 0
        ),
        timeout_s=120,
        what="the first committed batch",
        interval_s=0.05,
    )
    group.kill(first, signal.SIGKILL)
    assert indexed_count(db, group.pipeline, ids) < len(ids), "the worker finished before it could be killed"

    group.start()
    wait_until_indexed(db, chunker, group.pipeline, ids, timeout_s=300)
    assert_exact(db, chunker, group.pipeline, ids)
    group.stop_all()


def test_a_second_worker_joins_and_the_first_leaves(
    worker_group_factory: Callable[..., WorkerGroup],
    db: psycopg.Connection[Any],
    chunker: TextChunker,
    new_id: Callable[[str], str],
) -> None:
    group = worker_group_factory("batch_max_events = 48\n")
    first = group.start()
    ids = [new_id(f"rebalance-{index}") for index in range(DOCUMENTS)]
    insert_documents(db, ids)
    wait_for(
        lambda: indexed_count(db, group.pipeline, ids) > 0,
        timeout_s=120,
        what="the first batch",
        interval_s=0.05,
    )
    second = group.start()  # joins the group: partitions are rebalanced between the two
    group.kill(first, signal.SIGTERM)  # leaves: its partitions move to the second worker
    wait_until_indexed(db, chunker, group.pipeline, ids, timeout_s=300)
    assert_exact(db, chunker, group.pipeline, ids)
    assert second.popen.poll() is None
    group.stop_all()

"""TRUNCATE of public.documents, the default pipeline's own table, through the real stack.

The stack's own worker serves the default pipeline; Debezium sends the truncate as ``op = "t"``.
Truncating the shared table would remove every row other tests (or a developer) wrote, so the test
first makes the table's content its own, and gives it back afterwards:

- it runs only when every row of the table was written by this test run (``StackOrigin``): the
  session started the stack itself, on a table that was empty then. A stack that was already
  running may serve a developer or another test run at the same moment, and a state directory
  that already held rows holds someone's data, such as the demo corpus;
- it copies the rows and truncates in one transaction holding ``ACCESS EXCLUSIVE`` on the table,
  so no other session's write can fall between the copy and the truncate;
- at the end it writes the copied rows back and waits until the default pipeline has indexed all
  of them again, so later tests find the table and its index as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from models.chunking import TextChunker
from tests.integration.conftest import StackOrigin
from tests.integration.pipeline.conftest import expected_chunks, index_state, wait_for, wait_until_indexed
from tidewire.consumer_lag import consumer_group_lag
from tidewire.pipeline_spec import PipelineSpec
from tidewire.runtime.stack import RUNNING, LocalStack
from tidewire.settings import Settings

DOCUMENTS_TABLE = "public.documents"
COLUMNS = "id, tenant_id, title, body, metadata, updated_at"
# Metadata travels as text, so the copy goes back exactly as it was read.
COPIED_COLUMNS = "id, tenant_id, title, body, metadata::text, updated_at"
VERSES = [
    ("Genesis 1:1", "In the beginning God created the heaven and the earth."),
    ("Genesis 1:2", "And the earth was without form, and void; and darkness was upon the face of the deep."),
    ("Genesis 1:3", "And God said, Let there be light: and there was light."),
    ("John 1:5", "And the light shineth in darkness; and the darkness comprehended it not."),
]


@dataclass
class OwnedDocumentsTable:
    """``public.documents`` held by one test: truncated with a copy of its rows, given back at the end."""

    db: psycopg.Connection[Any]
    settings: Settings
    pipeline: PipelineSpec
    own_prefix: str
    copied_rows: list[tuple[Any, ...]] = field(default_factory=list)
    # How many of the other tests' copied rows the pipeline had indexed at the truncate (a row whose
    # events were dead-lettered never is): giving back waits until as many are indexed again.
    indexed_before: int = 0

    def wait_until_caught_up(self, timeout_s: float = 300) -> None:
        """Every CDC event of the table so far is consumed and committed by the stack's workers."""
        topic = self.settings.topics.cdc_topic(*self.pipeline.source_table.split("."))
        wait_for(
            lambda: (
                consumer_group_lag(self.settings.kafka.bootstrap, self.settings.streams.app_id, [topic]).total
                == 0
            ),
            timeout_s=timeout_s,
            what=f"the stack's workers to catch up on {topic}",
            interval_s=0.5,
        )

    def truncate(self) -> int:
        """Copy the rows and TRUNCATE in one transaction; returns how many rows were there."""
        with self.db.transaction():
            self.db.execute("SET LOCAL lock_timeout = '30s'")
            self.db.execute(f"LOCK TABLE {DOCUMENTS_TABLE} IN ACCESS EXCLUSIVE MODE")
            self.copied_rows = self.db.execute(f"SELECT {COPIED_COLUMNS} FROM {DOCUMENTS_TABLE}").fetchall()
            self.indexed_before = self._live_count([str(row[0]) for row in self._others_rows()])
            self.db.execute(f"TRUNCATE {DOCUMENTS_TABLE}")
        return len(self.copied_rows)

    def _others_rows(self) -> list[tuple[Any, ...]]:
        return [row for row in self.copied_rows if not str(row[0]).startswith(self.own_prefix)]

    def give_back(self) -> None:
        """Remove this test's rows, write the copied rows of others back, wait until they are indexed."""
        self.db.execute(f"DELETE FROM {DOCUMENTS_TABLE} WHERE starts_with(id, %s)", (self.own_prefix,))
        others = self._others_rows()
        if not others:
            return
        with self.db.transaction(), self.db.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {DOCUMENTS_TABLE} ({COLUMNS}) VALUES (%s, %s, %s, %s, %s::jsonb, %s)"
                " ON CONFLICT (id) DO NOTHING",
                others,
            )
        ids = [str(row[0]) for row in others]
        wait_for(
            lambda: self._live_count(ids) >= self.indexed_before,
            timeout_s=120 + len(ids) / 50,  # the 10,000-row test's rows: under 6 minutes
            what=f"the {self.indexed_before:,} indexed rows given back to {DOCUMENTS_TABLE} to be indexed again",
            interval_s=1.0,
        )

    def _live_count(self, ids: list[str]) -> int:
        row = self.db.execute(
            "SELECT count(*) FROM tidewire_document_state"
            " WHERE pipeline = %s AND document_id = ANY(%s) AND NOT deleted",
            (self.pipeline.name, ids),
        ).fetchone()
        return int(row[0]) if row else 0


@pytest.fixture
def owned_documents_table(
    stack_origin: StackOrigin,
    local_stack: LocalStack,
    settings: Settings,
    db: psycopg.Connection[Any],
    new_id: Callable[[str], str],
) -> Iterator[OwnedDocumentsTable]:
    if not stack_origin.documents_owned_by_session:
        reason = (
            "the stack was already running"
            if not stack_origin.started_by_session
            else f"{DOCUMENTS_TABLE} held {stack_origin.documents_rows_at_start:,} rows before this run"
        )
        pytest.skip(
            f"truncates {DOCUMENTS_TABLE}, so it runs only when every row there is this test run's, and {reason} "
            "(it may be your data); it runs on a stack the session starts on an empty state directory, as in CI"
        )
    pipeline = next((p for p in settings.pipelines if p.source_table == DOCUMENTS_TABLE), None)
    if pipeline is None:
        pytest.skip(f"no pipeline captures {DOCUMENTS_TABLE} in these settings")
    if RUNNING not in local_stack.worker_states().values():
        pytest.skip(
            "the stack runs no stream worker (streams.workers = 0): nothing indexes the default pipeline"
        )
    owner = OwnedDocumentsTable(db, settings, pipeline, own_prefix=new_id(""))
    yield owner
    owner.give_back()


def insert_verses(db: psycopg.Connection[Any], ids: list[str]) -> None:
    with db.transaction(), db.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {DOCUMENTS_TABLE} (id, title, body) VALUES (%s, %s, %s)",
            [(document_id, *VERSES[index % len(VERSES)]) for index, document_id in enumerate(ids)],
        )


def pipeline_counts(db: psycopg.Connection[Any], pipeline: str) -> tuple[int, int]:
    """(chunks, live document states) of the pipeline."""
    chunks = db.execute("SELECT count(*) FROM tidewire_chunks WHERE pipeline = %s", (pipeline,)).fetchone()
    live = db.execute(
        "SELECT count(*) FROM tidewire_document_state WHERE pipeline = %s AND NOT deleted", (pipeline,)
    ).fetchone()
    return int(chunks[0]) if chunks else 0, int(live[0]) if live else 0


def test_truncate_of_the_default_table_empties_its_pipeline_and_later_rows_are_indexed_again(
    owned_documents_table: OwnedDocumentsTable,
    db: psycopg.Connection[Any],
    chunker: TextChunker,
    new_id: Callable[[str], str],
) -> None:
    pipeline = owned_documents_table.pipeline.name
    before = [new_id(f"before-{index}") for index in range(12)]
    insert_verses(db, before)
    wait_until_indexed(db, chunker, pipeline, before, timeout_s=120)
    # Everything written before the truncate is indexed first, so each of these rows has a state the
    # truncate tombstones (counted below); an older insert consumed after the truncate would only be
    # skipped, leaving no state row at all.
    owned_documents_table.wait_until_caught_up()
    assert pipeline_counts(db, pipeline)[1] >= len(before)

    truncated_rows = owned_documents_table.truncate()

    assert truncated_rows >= len(before)
    wait_for(
        lambda: pipeline_counts(db, pipeline) == (0, 0),
        timeout_s=120,
        what=f"the truncate to empty the vectors and document states of pipeline {pipeline}",
    )
    tombstones = db.execute(
        "SELECT count(*), count(DISTINCT source_lsn) FROM tidewire_document_state"
        " WHERE pipeline = %s AND document_id = ANY(%s) AND deleted AND chunk_count = 0",
        (pipeline, before),
    ).fetchone()
    # A tombstone per row, all at the truncate's one position (not a delete per row).
    assert tombstones == (len(before), 1)

    # Rows written after the truncate are indexed again: new ids, and an id that existed before it
    # with the same text (the tombstone's empty text hash forces a new embedding).
    after = [new_id(f"after-{index}") for index in range(3)]
    insert_verses(db, [before[0], *after])
    wait_until_indexed(db, chunker, pipeline, [before[0], *after], timeout_s=120)
    assert index_state(db, pipeline, before[0]).chunks == expected_chunks(db, chunker, before[0])
    assert all(index_state(db, pipeline, document_id).deleted for document_id in before[1:])

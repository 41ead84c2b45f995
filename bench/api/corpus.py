"""The KJV corpus in the benchmark's tenant: written into ``documents`` as an upstream writer would,
waited for until the pipeline has indexed it, and vacuumed, so that the measurement starts from the
steady state and no autovacuum runs during it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import psycopg

from bench.api.config import DOCUMENT_ID_PREFIX, TENANT, Progress
from bench.errors import BenchmarkError
from tidewire.kjv_corpus import Verse
from tidewire.settings import Settings

_WRITE_BATCH_ROWS = 1_000
# What a search reads and the corpus load wrote. Right after a load, autovacuum would otherwise
# start on them during the first run's measurement: on a fresh checkout Postgres then cost 2.9 ms per
# search instead of 1.5, and the search p95 was 58.7 ms against 44.2 in the next run. Vacuumed already,
# they take a moment.
_VACUUMED_TABLES = ("tidewire_chunks", "tidewire_document_state", "documents")
_UPSERT_VERSE = """
INSERT INTO documents (id, tenant_id, title, body, metadata)
VALUES (%s, %s, %s, %s, jsonb_build_object('book', %s::text, 'chapter', %s::int, 'verse', %s::int))
ON CONFLICT (id) DO UPDATE
  SET tenant_id = EXCLUDED.tenant_id, title = EXCLUDED.title, body = EXCLUDED.body,
      metadata = EXCLUDED.metadata, updated_at = now()
  WHERE (documents.tenant_id, documents.title, documents.body, documents.metadata)
        IS DISTINCT FROM (EXCLUDED.tenant_id, EXCLUDED.title, EXCLUDED.body, EXCLUDED.metadata)
"""


def bench_document_id(verse: Verse) -> str:
    """The id of a verse's row in the benchmark's tenant."""
    return DOCUMENT_ID_PREFIX + verse.document_id


def write_bench_corpus(connection: psycopg.Connection[Any], verses: Sequence[Verse]) -> None:
    """Upsert the verses into ``documents`` under the benchmark's tenant, as an upstream writer would
    (batched, one transaction per batch; unchanged rows are left alone, so no event is emitted)."""
    for start in range(0, len(verses), _WRITE_BATCH_ROWS):
        batch = verses[start : start + _WRITE_BATCH_ROWS]
        with connection.transaction(), connection.cursor() as cursor:
            cursor.executemany(
                _UPSERT_VERSE,
                [(bench_document_id(v), TENANT, v.title, v.text, v.book, v.chapter, v.verse) for v in batch],
            )


def ensure_corpus_indexed(
    settings: Settings, verses: Sequence[Verse], *, timeout_s: float, progress: Progress
) -> int:
    """Write the verses into ``documents`` under the benchmark's tenant unless all are there, wait
    until all are indexed, vacuum what a search reads, and return how many chunks the tenant has."""
    ids = [bench_document_id(verse) for verse in verses]
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM documents WHERE id = ANY(%s) AND tenant_id = %s", (ids, TENANT)
        ).fetchone()
        if row is None or row[0] < len(ids):
            progress(f"writing {len(ids)} KJV verses into documents (tenant {TENANT!r})")
            write_bench_corpus(connection, verses)
        deadline = time.monotonic() + timeout_s
        while True:
            row = connection.execute(
                "SELECT count(*) FROM tidewire_document_state "
                "WHERE document_id = ANY(%s) AND tenant_id = %s AND NOT deleted",
                (ids, TENANT),
            ).fetchone()
            done = row[0] if row else 0
            if done >= len(ids):
                break
            if time.monotonic() > deadline:
                raise BenchmarkError(
                    f"only {done} of {len(ids)} verses indexed after {timeout_s:.0f}s; "
                    "`tidewire lag` and the worker log tell why"
                )
            progress(f"waiting for the pipeline to index the corpus: {done}/{len(ids)}")
            time.sleep(1.0)
        progress("vacuuming and analyzing the indexed tables")
        connection.execute(f"VACUUM (ANALYZE) {', '.join(_VACUUMED_TABLES)}")
        row = connection.execute(
            "SELECT count(*) FROM tidewire_chunks WHERE tenant_id = %s", (TENANT,)
        ).fetchone()
    return int(row[0]) if row else 0

"""TRUNCATE of a source table removes its documents from the index.

Truncating the shared public.documents would wipe other tests' rows, so this test captures a table
of its own: it adds a pipeline for it to the connector (publication and table list), runs a worker
group on that pipeline only, and puts the connector back as it was afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from connectors.apply import apply_connectors
from models.chunking import TextChunker
from streams.document_text import build_text
from tests.integration.pipeline.conftest import WorkerGroup, index_state, wait_for
from tidewire.pipeline_spec import PipelineSpec
from tidewire.settings import Settings


@pytest.fixture
def captured_table(settings: Settings, db: psycopg.Connection[Any]) -> Iterator[PipelineSpec]:
    suffix = uuid.uuid4().hex[:8]
    table = f"itest_truncate_{suffix}"
    db.execute(
        f"CREATE TABLE public.{table} (id text PRIMARY KEY, tenant_id text NOT NULL DEFAULT 'default',"
        " title text, body text, metadata jsonb NOT NULL DEFAULT '{}', updated_at timestamptz NOT NULL DEFAULT now())"
    )
    spec = PipelineSpec(name=f"itest-truncate-{suffix}", source_table=f"public.{table}")
    apply_connectors(settings.model_copy(update={"pipelines": [*settings.pipelines, spec]}))
    try:
        yield spec
    finally:
        apply_connectors(settings)
        db.execute(f"DROP TABLE public.{table}")


def test_truncate_removes_every_document_of_the_pipeline(
    captured_table: PipelineSpec,
    worker_group_factory: Callable[..., WorkerGroup],
    db: psycopg.Connection[Any],
    chunker: TextChunker,
) -> None:
    group = worker_group_factory()
    group.pipeline = captured_table.name
    group.config_file.write_text(
        f'[streams]\napp_id = "{group.app_id}"\nbatch_max_wait_s = 0.05\n'
        f'[[pipelines]]\nname = "{captured_table.name}"\nsource_table = "{captured_table.source_table}"\n'
    )
    group.start()
    table = captured_table.source_table
    ids = [f"t-{index}" for index in range(20)]
    with db.transaction(), db.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} (id, title, body) VALUES (%s, %s, %s)",
            [(document_id, "Truncated", f"row {document_id}") for document_id in ids],
        )

    def chunks_of(document_id: str) -> list[str]:
        return index_state(db, captured_table.name, document_id).chunks

    wait_for(
        lambda: all(
            chunks_of(i) == [build_text(captured_table, {"title": "Truncated", "body": f"row {i}"})]
            for i in ids
        ),
        timeout_s=120,
        what="the rows of the captured table to be indexed",
    )
    db.execute(f"TRUNCATE {table}")
    wait_for(
        lambda: (
            db.execute(
                "SELECT count(*) FROM tidewire_chunks WHERE pipeline = %s", (captured_table.name,)
            ).fetchone()
            == (0,)
        ),
        timeout_s=120,
        what="the truncate to empty the pipeline",
    )
    # A row written after the truncate is indexed again.
    db.execute(f"INSERT INTO {table} (id, title, body) VALUES ('after', 'After', 'the truncate')")
    wait_for(
        lambda: chunks_of("after") == ["After\n\nthe truncate"],
        timeout_s=60,
        what="the row after the truncate",
    )
    group.stop_all()

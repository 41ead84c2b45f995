"""Replays: re-consuming the CDC topic neither duplicates chunks nor lets an older version win."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from models.chunking import TextChunker
from tests.integration.conftest import CliRunner
from tests.integration.pipeline.conftest import WorkerGroup, index_state, wait_for, wait_until_indexed


def test_replay_from_a_timestamp_keeps_the_latest_version_and_adds_no_duplicates(
    worker_group_factory: Callable[..., WorkerGroup],
    db: psycopg.Connection[Any],
    chunker: TextChunker,
    new_id: Callable[[str], str],
    run_cli: CliRunner,
) -> None:
    group = worker_group_factory()
    worker = group.start()
    since = (datetime.now(UTC) - timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S")
    document_id = new_id("replay")
    db.execute(
        "INSERT INTO public.documents (id, title, body) VALUES (%s, 'Old', 'first version')", (document_id,)
    )
    long_body = " ".join(["second version with many more words"] * 200)
    db.execute("UPDATE public.documents SET title = 'New', body = %s WHERE id = %s", (long_body, document_id))
    wait_until_indexed(db, chunker, group.pipeline, [document_id])
    before = index_state(db, group.pipeline, document_id)
    assert len(before.chunks) > 1

    env = group.environment()
    refused = run_cli("replay", env=env)
    assert refused.returncode != 0
    assert refused.stderr.strip().count("\n") == 0 and "running member" in refused.stderr

    group.kill(worker, signal.SIGTERM)
    # A worker that left cleanly is gone from the group at once; one that died takes a session timeout.
    result = wait_for(
        lambda: (done := run_cli("replay", "--since", since, "--json", env=env)).returncode == 0 and done,
        timeout_s=120,
        what="the group to be empty so the replay is accepted",
        interval_s=2,
    )
    assert json.loads(result.stdout)["group"] == group.app_id

    replayed = group.start()
    # Both changes are consumed again: the insert (older) and the update (the stored version).
    wait_for(
        lambda: replayed.metric("tidewire_stream_events_total", agent="embed", outcome="processed") >= 2,
        timeout_s=120,
        what="the replayed events",
    )
    wait_until_indexed(db, chunker, group.pipeline, [document_id])
    after = index_state(db, group.pipeline, document_id)
    assert after.chunks == before.chunks
    assert after.source_lsn == before.source_lsn
    rows = db.execute(
        "SELECT count(*) FROM tidewire_chunks WHERE pipeline = %s AND document_id = %s",
        (group.pipeline, document_id),
    ).fetchone()
    assert rows == (len(before.chunks),)
    group.stop_all()

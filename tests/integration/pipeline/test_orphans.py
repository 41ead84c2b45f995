"""`tidewire orphans list|prune`: after deletes that never reached the pipeline (as with a lost replication slot),
the documents whose rows are gone leave the index, their tenant is told, and the rest stays."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg

from models.chunking import TextChunker
from streams.offsets import reset_offsets
from tests.integration.conftest import CliRunner
from tests.integration.pipeline.conftest import (
    TopicTail,
    WorkerGroup,
    index_state,
    wait_until_indexed,
)
from tidewire.events import Notification, make_event_codec
from tidewire.settings import Settings


def test_orphans_prune_removes_documents_whose_deletes_were_lost_and_notifies_their_tenant(
    worker_group_factory: Callable[..., WorkerGroup],
    settings: Settings,
    db: psycopg.Connection[Any],
    chunker: TextChunker,
    new_id: Callable[[str], str],
    tail: Callable[[str], TopicTail],
    run_cli: CliRunner,
) -> None:
    group = worker_group_factory()
    group.start()
    cdc_topic = settings.topics.cdc_topic("public", "documents")
    codec = make_event_codec(settings.kafka)
    notifications = tail(settings.topics.notifications)
    gone, also_gone, kept = new_id("prune-gone"), new_id("prune-also-gone"), new_id("prune-kept")
    for document_id in (gone, also_gone, kept):
        db.execute(
            "INSERT INTO public.documents (id, tenant_id, title, body) VALUES (%s, 'acme', 'P', %s)",
            (document_id, f"body of {document_id}"),
        )
    wait_until_indexed(db, chunker, group.pipeline, [gone, also_gone, kept])

    def ours(messages: list[Any]) -> list[tuple[Notification, int]]:
        decoded = [
            (codec.decode(message.value(), Notification, topic=notifications.topic), message.partition())
            for message in messages
        ]
        return [(n, partition) for n, partition in decoded if n.pipeline == group.pipeline]

    indexed = notifications.collect(
        lambda messages: {n.document_id for n, _ in ours(messages)} >= {gone, also_gone, kept},
        timeout_s=60,
        what="the three documents indexed",
    )
    indexed_partition = {n.document_id: partition for n, partition in ours(indexed)}

    # The deletes happen while the pipeline is stopped and are then skipped, as if the replication
    # slot had been lost: the rows are gone, their vectors are not.
    group.stop_all()
    changes = tail(cdc_topic)
    db.execute("DELETE FROM public.documents WHERE id = ANY(%s)", ([gone, also_gone],))
    changes.collect(
        lambda messages: sum(1 for m in messages if m.value() is None and m.key() and (
            gone.encode() in m.key() or also_gone.encode() in m.key())) >= 2,
        timeout_s=60,
        what="the two deletes captured",
    )  # fmt: skip
    reset_offsets(settings, group.app_id, [cdc_topic], "latest")
    assert index_state(db, group.pipeline, gone).chunks

    env = group.environment()
    looked = run_cli("orphans", "list", "--pipeline", group.pipeline, "--json", env=env)
    assert looked.returncode == 0, looked.stderr
    [report] = json.loads(looked.stdout)["pipelines"]
    assert report == {
        "pipeline": group.pipeline,
        "table": "public.documents",
        "orphans": sorted([gone, also_gone]),
    }
    assert index_state(db, group.pipeline, gone).chunks

    pruned = run_cli("orphans", "prune", "--pipeline", group.pipeline, env=env)
    assert pruned.returncode == 0, pruned.stderr
    assert (
        f"{group.pipeline}: removed 2 document(s)" in pruned.stdout and "2 notification(s)" in pruned.stdout
    )
    for document_id in (gone, also_gone):
        state = index_state(db, group.pipeline, document_id)
        assert state.chunks == [] and state.deleted
    assert index_state(db, group.pipeline, kept).chunks == [f"P\n\nbody of {kept}"]

    deleted = notifications.collect(
        lambda messages: (
            {n.document_id for n, _ in ours(messages) if n.event_type.event_name == "document.deleted"}
            >= {gone, also_gone}
        ),
        timeout_s=30,
        what="document.deleted for the pruned documents",
    )
    for notification, partition in ours(deleted):
        if notification.event_type.event_name == "document.deleted":
            assert notification.tenant_id == "acme" and notification.chunks == 0
            # On the partition of the document's other notifications, so their order holds.
            assert partition == indexed_partition[notification.document_id]

    # Once pruned, a row written again under the same id is indexed as usual.
    group.start()
    db.execute(
        "INSERT INTO public.documents (id, tenant_id, title, body) VALUES (%s, 'acme', 'P', 'again')", (gone,)
    )
    wait_until_indexed(db, chunker, group.pipeline, [gone])
    again = run_cli("orphans", "prune", "--pipeline", group.pipeline, "--json", env=env)
    assert json.loads(again.stdout)["pipelines"][0]["orphans"] == []


def test_a_key_the_connector_renders_otherwise_is_refused_in_one_line(
    settings: Settings,
    db: psycopg.Connection[Any],
    run_cli: CliRunner,
    worker_group_factory: Callable[..., WorkerGroup],
) -> None:
    group = worker_group_factory()
    table = f"itest_numeric_keys_{group.app_id.rsplit('-', 1)[-1]}"
    db.execute(f"CREATE TABLE public.{table} (id numeric PRIMARY KEY, title text, body text)")
    try:
        group.config_file.write_text(
            f'[[pipelines]]\nname = "{group.pipeline}"\nsource_table = "public.{table}"\ntenant_column = ""\n'
        )
        refused = run_cli("orphans", "list", "--pipeline", group.pipeline, env=group.environment())
        assert refused.returncode != 0
        assert refused.stderr.count("\n") == 1
        assert (
            f"cannot look for orphans of pipeline {group.pipeline}: its key 'id' is numeric" in refused.stderr
        )
    finally:
        db.execute(f"DROP TABLE public.{table}")

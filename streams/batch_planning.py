"""Planning a micro-batch of CDC changes: pure functions, unit-tested on their own.

1. :func:`latest_changes` keeps one change per document (the highest source position; the later
   offset on a tie) and the latest truncate per pipeline: older versions in the same batch would
   only be embedded to be overwritten.
2. :func:`is_stale` and :func:`needs_embedding` decide, from the stored version, whether a text must be embedded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streams.debezium_decoding import ChangeEvent, RowDelete, RowUpsert, TableTruncate
from tidewire.vector_store import StoredVersion

DocumentKey = tuple[str, str]  # (pipeline, document_id)


@dataclass(frozen=True)
class BatchPlan:
    """What a batch has to do, at most one change per document."""

    upserts: list[RowUpsert]
    deletes: list[RowDelete]
    truncates: list[TableTruncate]
    superseded: int  # changes dropped because a later change of the same document is in the batch


def latest_changes(changes: Sequence[ChangeEvent]) -> BatchPlan:
    """One change per (pipeline, document): the latest by ``(lsn, offset)``; latest truncate per pipeline."""
    latest: dict[DocumentKey, RowUpsert | RowDelete] = {}
    truncates: dict[str, TableTruncate] = {}
    superseded = 0
    for change in changes:
        if isinstance(change, TableTruncate):
            current = truncates.get(change.pipeline)
            if current is not None:
                superseded += 1
            if current is None or _order(change) >= _order(current):
                truncates[change.pipeline] = change
            continue
        key = (change.pipeline, change.document_id)
        existing = latest.get(key)
        if existing is not None:
            superseded += 1
        if existing is None or _order(change) >= _order(existing):
            latest[key] = change
    return BatchPlan(
        upserts=[change for change in latest.values() if isinstance(change, RowUpsert)],
        deletes=[change for change in latest.values() if isinstance(change, RowDelete)],
        truncates=list(truncates.values()),
        superseded=superseded,
    )


def _order(change: ChangeEvent) -> tuple[int, int]:
    return (change.position.lsn, change.ref.offset)


def is_stale(lsn: int, stored: StoredVersion | None) -> bool:
    """True when the index already holds a newer version (a replayed or redelivered old change):
    the write would be skipped by latest-wins anyway, so it is not even embedded."""
    return stored is not None and stored.lsn > lsn


def needs_embedding(text_hash: str, stored: StoredVersion | None) -> bool:
    """False only when the stored, live version was embedded from exactly this text."""
    return stored is None or stored.deleted or stored.text_hash != text_hash

"""Notifications of committed index changes: built from write outcomes, published keyed by document."""

from __future__ import annotations

from collections.abc import Sequence

from streams.metrics import StreamMetrics
from streams.publishing import Publisher
from tidewire.events import EventCodec, Notification, NotificationType
from tidewire.pipeline_spec import PipelineSpec
from tidewire.vector_store import WriteOutcome


def notifications_for(
    outcomes: Sequence[WriteOutcome], pipelines: dict[str, PipelineSpec], model_id: str
) -> list[Notification]:
    """One ``document.indexed`` or ``document.deleted`` per write that changed the index, and a
    ``document.deleted`` to the tenant a document left when a write moved it to another.

    Writes that latest-wins skipped (``applied`` False) changed nothing and notify nobody; nor does
    the delete of a document whose tenant is unknown (it was never indexed).
    """
    notifications = []
    for outcome in outcomes:
        if not outcome.applied:
            continue
        if outcome.left_tenant is not None:
            # The old tenant's clients and cached answers must learn the document is no longer theirs.
            notifications.append(
                Notification.for_change(
                    event_type=NotificationType.DELETED,
                    tenant_id=outcome.left_tenant,
                    document_id=outcome.document_id,
                    pipeline=outcome.pipeline,
                    chunks=0,
                    model=model_id,
                    source_committed_at=outcome.position.committed_at,
                    indexed_at=outcome.indexed_at,
                    source_lsn=outcome.position.lsn,
                )
            )
        spec = pipelines[outcome.pipeline]
        tenant = outcome.tenant_id or (spec.default_tenant if spec.tenant_column is None else None)
        if tenant is None:
            # The delete of a document the index never held: no tenant to tell, and guessing one
            # would show another tenant's document id.
            continue
        notifications.append(
            Notification.for_change(
                event_type=NotificationType.DELETED if outcome.deleted else NotificationType.INDEXED,
                tenant_id=tenant,
                document_id=outcome.document_id,
                pipeline=outcome.pipeline,
                chunks=0 if outcome.deleted else outcome.chunk_count,
                model=model_id,
                source_committed_at=outcome.position.committed_at,
                indexed_at=outcome.indexed_at,
                source_lsn=outcome.position.lsn,
            )
        )
    return notifications


class NotificationPublisher:
    """Encodes notifications (Avro) and produces them to ``tidewire.notifications``, keyed by document."""

    def __init__(
        self, *, publisher: Publisher, codec: EventCodec, topic: str, metrics: StreamMetrics
    ) -> None:
        self._publisher = publisher
        self._codec = codec
        self._topic = topic
        self._metrics = metrics

    async def publish(self, notifications: Sequence[Notification]) -> None:
        records = [
            (notification.message_key(), self._codec.encode(notification, topic=self._topic))
            for notification in notifications
        ]
        await self._publisher.publish(self._topic, records)
        for notification in notifications:
            self._metrics.notifications.labels(type=notification.event_type.event_name).inc()

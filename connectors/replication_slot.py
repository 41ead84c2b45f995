"""The health of a connector's replication slot, as Postgres reports it (``pg_replication_slots``).

The slot is what keeps the WAL a paused or stopped connector has not read yet. Debezium's heartbeats
move it on while the captured tables are idle, but WAL still piles up while the connector is paused or
failed, up to ``max_slot_wal_keep_size``; past that Postgres removes the WAL and invalidates the slot
(``wal_status = lost``), and the changes in between never reach Kafka.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from tidewire.errors import first_line
from tidewire.settings import PostgresSettings

_SLOT_SQL = """
SELECT active, wal_status, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint AS retained_bytes,
       safe_wal_size
FROM pg_replication_slots WHERE slot_name = %s
"""


@dataclass(frozen=True)
class SlotHealth:
    """One slot: whether it exists, is in use, how much WAL it holds back, and Postgres's verdict on that
    WAL (``reserved`` and ``extended``: fine; ``unreserved``: about to be removed; ``lost``: removed).
    ``problem``: why it could not be read, when it could not."""

    name: str
    exists: bool
    active: bool | None = None
    wal_status: str | None = None
    retained_bytes: int | None = None
    safe_wal_size_bytes: int | None = None
    problem: str | None = None

    @property
    def advice(self) -> str | None:
        """What the operator should do, or None when all is well."""
        if self.problem is not None:
            return None
        if not self.exists:
            return "no such slot: Debezium creates it when the connector starts (`tidewire connector apply`)"
        if self.wal_status == "lost":
            return (
                "the WAL this slot needed was removed (max_slot_wal_keep_size): changes made since never "
                "reached Kafka. Recover: `tidewire connector delete`, then in Postgres "
                f"SELECT pg_drop_replication_slot('{self.name}'), then `tidewire connector apply`, "
                "`tidewire reindex` and `tidewire orphans prune`"
            )
        if self.wal_status == "unreserved":
            return (
                "its WAL is past max_slot_wal_keep_size and will be removed at the next checkpoint: "
                "resume or restart the connector now (`tidewire connector status` shows why it stopped)"
            )
        return None

    def describe(self) -> str:
        """One line for the terminal."""
        if self.problem is not None:
            return f"slot {self.name}: unknown ({self.problem})"
        if not self.exists:
            return f"slot {self.name}: missing"
        activity = "active" if self.active else "inactive"
        retained = f"{(self.retained_bytes or 0) / 2**20:.1f} MiB of WAL held"
        return f"slot {self.name}: {activity}, WAL {self.wal_status}, {retained}"


def read_slot_health(postgres: PostgresSettings, slot_name: str) -> SlotHealth:
    """The slot's health; a Postgres that cannot be reached is reported in ``problem``, not raised:
    the connector's own state is still worth showing."""
    try:
        with psycopg.connect(postgres.dsn(), connect_timeout=5, autocommit=True) as connection:
            row = connection.execute(_SLOT_SQL, (slot_name,)).fetchone()
    except psycopg.Error as error:
        return SlotHealth(name=slot_name, exists=False, problem=f"Postgres: {first_line(str(error))}")
    if row is None:
        return SlotHealth(name=slot_name, exists=False)
    active, wal_status, retained_bytes, safe_wal_size = row
    return SlotHealth(
        name=slot_name,
        exists=True,
        active=bool(active),
        wal_status=wal_status,
        retained_bytes=retained_bytes,
        safe_wal_size_bytes=safe_wal_size,
    )

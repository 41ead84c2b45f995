"""What `tidewire connector status` says of a replication slot in each state Postgres reports."""

from __future__ import annotations

from connectors.replication_slot import SlotHealth


def test_a_healthy_slot_needs_no_advice() -> None:
    slot = SlotHealth("s", exists=True, active=True, wal_status="reserved", retained_bytes=3 * 2**20)
    assert slot.advice is None
    assert slot.describe() == "slot s: active, WAL reserved, 3.0 MiB of WAL held"


def test_a_lost_slot_says_how_to_recover() -> None:
    advice = SlotHealth("s", exists=True, active=False, wal_status="lost", retained_bytes=0).advice
    assert advice is not None
    assert "pg_drop_replication_slot('s')" in advice and "`tidewire reindex`" in advice
    assert "`tidewire orphans prune`" in advice


def test_an_unreserved_slot_warns_before_its_wal_is_removed() -> None:
    advice = SlotHealth("s", exists=True, active=False, wal_status="unreserved", retained_bytes=1).advice
    assert advice is not None and "next checkpoint" in advice


def test_a_missing_slot_points_at_apply_and_an_unreadable_one_says_why() -> None:
    missing = SlotHealth("s", exists=False)
    assert missing.describe() == "slot s: missing" and "connector apply" in (missing.advice or "")
    unreadable = SlotHealth("s", exists=False, problem="Postgres: connection refused")
    assert (
        unreadable.describe() == "slot s: unknown (Postgres: connection refused)"
        and unreadable.advice is None
    )

"""`tidewire bench api --quick` against the real stack: every phase ran, the report is sane, and the
servers and the key it made are gone afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import psycopg

from tests.integration.conftest import CliRunner
from tidewire.runtime.stack import LocalStack
from tidewire.settings import Settings


def _vacuum_counts(settings: Settings, since: dict[str, int] | None = None) -> dict[str, int]:
    """Manual VACUUMs of the corpus's source and state tables (minus ``since``)."""
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT relname, vacuum_count FROM pg_stat_user_tables "
            "WHERE relname IN ('tidewire_document_state', 'documents')"
        ).fetchall()
    counts = {str(name): int(count) for name, count in rows}
    assert set(counts) == {"tidewire_document_state", "documents"}
    return {name: count - (since or {}).get(name, 0) for name, count in counts.items()}


def test_a_quick_api_benchmark_measures_every_phase_and_cleans_up(
    local_stack: LocalStack, settings: Settings, run_cli: CliRunner, tmp_path: Path
) -> None:
    output = tmp_path / "results" / "api.json"
    vacuums_before = _vacuum_counts(settings)

    result = run_cli("bench", "api", "--quick", "--json", "--output", str(output), timeout=600)

    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert json.loads(output.read_text()) == report
    assert report["quick"] is True and report["setup"]["corpus_verses_indexed"] == 300
    # 1. Search: every distinct query answered, percentiles in order.
    search = report["search"]
    assert (search["requests"], search["errors"]) == (48, 0)
    assert 0 < search["p50_ms"] <= search["p95_ms"] <= search["p99_ms"] <= search["max_ms"]
    assert search["throughput_rps"] > 0 and search["api_cpu_ms_per_request"] > 0
    # Where the machine's CPU went: the dedicated API and Postgres both worked, and no role is
    # credited with more than the whole machine spent.
    machine = search["machine_cpu"]
    by_role = machine["ms_per_request_by_role"]
    assert by_role["dedicated API"] > 0 and by_role["Postgres"] > 0 and by_role["benchmark client"] > 0
    assert max(by_role.values()) <= machine["machine_busy_ms_per_request"] * 1.05
    # 2. Recall against the exact scan.
    recall = report["recall"]
    assert (recall["queries"], recall["errors"]) == (10, 0)
    assert 0 < recall["recall_at_k"] <= 1
    # 3. Cached search and the bare endpoint both served.
    cached = report["cached_vs_bare"]
    assert cached["errors"] == 0 and cached["bare_rps_best"] > 0 and cached["cached_rps_best"] > 0
    assert cached["ratio"] > 0
    # 4. Every idle stream was set up on the API process, whose memory was read.
    streams = report["idle_streams"]
    assert (streams["established"], streams["failed"]) == (20, 0)
    assert streams["rss_mib_before"] > 0 and streams["rss_mib_with_streams"] > 0
    # 5. Chat through the slow provider: nothing answers before its first token is due.
    chat = report["chat"]
    for side in ("sse", "sync"):
        assert (chat[side]["completed"], chat[side]["failed"]) == (6, 0), side
    assert chat["sse"]["first_token_ms_p50"] >= 500
    assert chat["sync"]["answer_ms_p50"] >= chat["provider"]["generation_s"] * 1000
    assert chat["ratio"] > 0
    # A smoke run judges no target, but names them all.
    assert set(report["targets"]) == {
        "search_p95_ms",
        "search_p99_ms",
        "recall_at_10",
        "cached_search_vs_bare",
        "chat_sse_vs_sync",
    }
    assert all(target["met"] is None for target in report["targets"].values())

    # The corpus's tables were vacuumed before the measurement, so no autovacuum runs during it.
    assert all(count > 0 for count in _vacuum_counts(settings, since=vacuums_before).values())

    # The servers it started are stopped, and its key is revoked.
    assert not psutil.pid_exists(streams["api_pid"])
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        live = connection.execute(
            "SELECT count(*) FROM tidewire_api_keys WHERE name = 'bench-api' AND revoked_at IS NULL"
        ).fetchone()
    assert live == (0,)

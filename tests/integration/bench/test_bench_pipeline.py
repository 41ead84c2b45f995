"""`tidewire bench pipeline --quick` against the real stack: a sane report and plot, nothing left behind."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from confluent_kafka.admin import AdminClient

from bench.dedicated_pipeline import BENCH_PIPELINE, BENCH_TABLE, bench_settings
from connectors.publication import published_tables
from streams.topics import worker_topics
from tests.integration.conftest import CliRunner
from tidewire.runtime.stack import LocalStack
from tidewire.settings import Settings


def test_a_quick_pipeline_benchmark_reports_plots_and_cleans_up(
    local_stack: LocalStack, settings: Settings, run_cli: CliRunner, tmp_path: Path
) -> None:
    output = tmp_path / "results" / "pipeline.json"

    result = run_cli("bench", "pipeline", "--quick", "--json", "--output", str(output), timeout=540)

    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert json.loads(output.read_text()) == report
    # Every row of both phases was indexed, and timed from its own timestamps.
    full, sustained = report["full_corpus"], report["sustained"]
    assert full["rows"] == full["indexed"] == 300
    assert full["freshness_ms"]["count"] == 300
    assert 0 < full["seconds_to_last_indexed"] < 240
    assert report["max_sustained_rate"]["rows_per_s"] == full["throughput_per_s"] > 0
    assert sustained["target_rate_per_s"] == pytest.approx(full["throughput_per_s"] / 2, abs=0.1)
    assert sustained["rows"] == sustained["indexed"] == sustained["freshness_ms"]["count"] > 0
    freshness = sustained["freshness_ms"]
    assert 0 < freshness["p50_ms"] <= freshness["p95_ms"] <= freshness["p99_ms"] <= freshness["max_ms"]
    # Lag was sampled over time in both phases and drained at the end.
    for phase in (full, sustained):
        assert len(phase["lag_samples"]) >= 2
        assert phase["lag"]["final_lag"] == 0
    assert full["lag"]["max_lag"] > 0  # 300 rows in one transaction: a backlog, however fast
    assert report["raw_embedder"]["texts"] == 300
    assert report["raw_embedder"]["throughput_per_s"] > 0
    assert report["pipeline_vs_raw_embedder"] > 0
    # A smoke run judges no target.
    assert [target["met"] for target in report["targets"]] == [None, None, None, None]
    plot = Path(report["plot"])
    assert plot == output.with_suffix(".png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.stat().st_size > 10_000

    # Nothing of the bench pipeline is left: table, vectors, publication entry, topics.
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        assert connection.execute("SELECT to_regclass(%s)", (BENCH_TABLE,)).fetchone() == (None,)
        assert connection.execute(
            "SELECT count(*) FROM tidewire_document_state WHERE pipeline = %s", (BENCH_PIPELINE,)
        ).fetchone() == (0,)
        assert BENCH_TABLE not in published_tables(connection)
    existing = AdminClient({"bootstrap.servers": settings.kafka.bootstrap}).list_topics(timeout=10).topics
    assert not set(worker_topics(bench_settings(settings))) & set(existing)

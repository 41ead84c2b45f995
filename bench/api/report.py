"""The report of one run: every measurement, the targets judged, the JSON file and the table printed."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.api.config import TARGETS, ApiBenchConfig
from bench.latency import LatencySummary

if TYPE_CHECKING:
    from rich.table import Table


@dataclass
class ApiBenchReport:
    """Everything one run measured, and the targets judged against it."""

    config: ApiBenchConfig
    machine: dict[str, Any]
    setup: dict[str, Any]
    search: LatencySummary
    search_cpu: dict[str, Any]
    recall: dict[str, Any]
    cached_vs_bare: dict[str, Any]
    idle_streams: dict[str, Any]
    chat: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def measured(self) -> dict[str, float | None]:
        """The value of each target's quantity."""
        return {
            "search_p95_ms": self.search.p95_ms,
            "search_p99_ms": self.search.p99_ms,
            "recall_at_10": self.recall.get("recall_at_k"),
            "cached_search_vs_bare": self.cached_vs_bare.get("ratio"),
            "chat_sse_vs_sync": self.chat.get("ratio"),
        }

    def targets(self) -> dict[str, dict[str, Any]]:
        """Each target with its measured value; ``met`` is None on a quick run (not a measurement)."""
        judged = {}
        for name, value in self.measured().items():
            target = TARGETS[name]
            judged[name] = {
                "value": value,
                "target": target.describe(),
                "met": None if self.config.quick else target.judge(value),
            }
        return judged

    def to_json(self) -> dict[str, Any]:
        config = asdict(self.config)
        return {
            "benchmark": "api",
            "quick": self.config.quick,
            "config": config,
            "machine": self.machine,
            "setup": self.setup,
            "search": {**self.search.to_json(), **self.search_cpu},
            "recall": self.recall,
            "cached_vs_bare": self.cached_vs_bare,
            "idle_streams": self.idle_streams,
            "chat": self.chat,
            "targets": self.targets(),
            "notes": self.notes,
        }


def write_report(report: ApiBenchReport, output: Path) -> None:
    """Write the JSON results (``--output``), creating the folder."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")


def render_table(report: ApiBenchReport) -> Table:
    """The measurements as a rich table (imported lazily: only the CLI renders)."""
    from rich.table import Table

    machine = report.machine
    table = Table(title=f"Read API — {machine['cpu']}, {machine['logical_cores']} logical cores")
    for column in ("measurement", "value", "detail"):
        table.add_column(column, justify="right" if column == "value" else "left")
    search = report.search
    table.add_row(
        f"search latency, {report.config.search_clients} clients",
        f"p95 {search.p95_ms} ms",
        f"p50 {search.p50_ms} · p99 {search.p99_ms} · max {search.max_ms} ms · "
        f"{search.requests} requests, {search.errors} errors",
    )
    table.add_row(
        "search throughput", f"{search.throughput_rps} req/s", "distinct queries (no embedding cached)"
    )
    machine_cpu = report.search_cpu.get("machine_cpu")
    if machine_cpu:
        roles = " · ".join(
            f"{role} {milliseconds}" for role, milliseconds in machine_cpu["ms_per_request_by_role"].items()
        )
        table.add_row(
            "machine CPU per search",
            f"{machine_cpu['machine_busy_ms_per_request']} ms",
            f"{machine_cpu['machine_busy_cores']} of {machine_cpu['cores']} cores busy, "
            f"{machine_cpu['machine_steal_ms_per_request']} ms stolen; by role (ms): {roles}",
        )
    recall = report.recall
    table.add_row(
        f"recall@{report.config.k}",
        f"{recall.get('recall_at_k')}",
        f"{recall.get('queries')} held-out partial quotations; worst query {recall.get('worst_query_recall')}",
    )
    cached = report.cached_vs_bare
    table.add_row(
        "cached search ÷ bare endpoint",
        f"{cached.get('ratio')}×",
        f"{cached.get('cached_rps_best')} vs {cached.get('bare_rps_best')} req/s (best rounds)",
    )
    streams = report.idle_streams
    table.add_row(
        f"{streams.get('established')} idle /v1/events streams",
        f"{streams.get('kib_per_stream')} KiB/stream",
        f"API RSS {streams.get('rss_mib_before')} → {streams.get('rss_mib_with_streams')} MiB",
    )
    chat = report.chat
    table.add_row(
        f"chat, {report.config.chat_requests} concurrent",
        f"{chat.get('ratio')}×",
        f"SSE {chat.get('sse', {}).get('answers_per_s')} vs sync ({report.config.sync_threads} threads) "
        f"{chat.get('sync', {}).get('answers_per_s')} answers/s",
    )
    return table


def format_targets(report: ApiBenchReport) -> list[str]:
    """The lines printed under the table: each target, met or not, and the notes."""
    lines = []
    for name, judged in report.targets().items():
        verdict = {True: "met", False: "NOT met", None: "not judged (quick run)"}[judged["met"]]
        if judged["value"] is None:
            verdict = "not measured"
        lines.append(f"{name}: {judged['value']} (target {judged['target']}, {verdict})")
    return lines + report.notes

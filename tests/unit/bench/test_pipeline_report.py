"""The pipeline benchmark's report: rows it writes, targets it judges, what it prints and draws."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from bench.freshness import FreshnessSummary
from bench.lag_plot import LagSeries, plot_pipeline_run
from bench.lag_sampling import LagSample, summarize_lag
from bench.pipeline import (
    PhaseResult,
    PipelineBenchReport,
    RawEmbedderResult,
    TargetCheck,
    corpus_rows,
    format_targets,
    judge_targets,
    render_table,
    sustained_row_count,
    write_report,
)
from bench.source_writer import WriteResult
from tidewire.kjv_corpus import load_kjv_verses


def test_corpus_rows_have_distinct_ids_and_cycle_through_the_verses() -> None:
    verses = load_kjv_verses()
    rows = corpus_rows(verses, len(verses) + 2, "load-")
    assert len({row.document_id for row in rows}) == len(rows)
    assert rows[0].document_id == "load-000000"
    assert (rows[0].title, rows[0].body) == (verses[0].title, verses[0].text)
    assert rows[len(verses) + 1].body == verses[1].text
    assert rows[0].metadata == {"book": "Genesis", "chapter": 1, "verse": 1}


def test_sustained_row_count() -> None:
    assert sustained_row_count(95.5, 60) == 5_730
    assert sustained_row_count(0.1, 1) == 1


@pytest.mark.parametrize(
    ("measured", "comparison", "target", "met"),
    [
        (170.0, "<", 180.0, True),
        (180.0, "<", 180.0, False),
        (1000.0, "<=", 1000.0, True),
        (0.59, ">=", 0.6, False),
    ],
)
def test_a_target_is_met_or_not(measured: float, comparison: str, target: float, met: bool) -> None:
    assert TargetCheck.judge("x", measured, comparison, target, "s").met is met


def test_a_target_the_run_cannot_judge() -> None:
    assert TargetCheck.judge("x", 1.0, "<", 2.0, "s", comparable=False).met is None
    assert TargetCheck.judge("x", None, "<", 2.0, "s").met is None


def phase(name: str, rows: int, seconds: float, rate: float | None, freshness: list[float]) -> PhaseResult:
    samples = [LagSample(0.0, 0, 0), LagSample(1.0, rows // 2, rows), LagSample(2.0, 0, rows)]
    return PhaseResult(
        name=name,
        rows=rows,
        indexed=rows,
        write=WriteResult(rows, 10, 1_000.0, 1_000.0 + seconds / 2, 0),
        rate_per_s=rate,
        seconds_to_last_indexed=seconds,
        freshness=FreshnessSummary.of(freshness),
        lag=summarize_lag(samples, 1.0),
        lag_samples=samples,
        writes_finished_s=1.0,
        freshness_points=[(0.1 * index, value) for index, value in enumerate(freshness)],
    )


@pytest.fixture
def report() -> PipelineBenchReport:
    return PipelineBenchReport(
        machine={"cpu": "Test CPU", "physical_cores": 2},
        config={"verses": 31_101},
        full_corpus=phase("full corpus", 31_101, 200.0, None, [2_000.0, 40_000.0]),
        max_rate_per_s=155.5,
        sustained=phase("sustained load", 4_665, 60.5, 77.75, [400.0, 600.0, 900.0, 2_500.0]),
        raw_embedder=RawEmbedderResult("int8", "cpu", 2, 2, 31_101, 512, 124.4),
        targets=[],
        notes=["a note"],
    )


def test_the_targets_of_a_full_run(report: PipelineBenchReport) -> None:
    checks = judge_targets(report, full_corpus_run=True, at_half_max_rate=True, quick=False)
    by_name = {check.name: check for check in checks}
    assert by_name["full corpus indexed end to end"].met is False  # 200 s, target < 180 s
    assert by_name["freshness p50 at half the max rate"].met is True  # 750 ms
    assert by_name["freshness p99 at half the max rate"].met is True  # 2,452 ms
    ratio = by_name["pipeline ÷ raw embedder throughput"]
    # 155.5 verses/s end to end ÷ 250 verses/s raw.
    assert ratio.measured == pytest.approx(0.622)
    assert ratio.met is True


def test_a_quick_or_partial_run_judges_only_what_it_can(report: PipelineBenchReport) -> None:
    quick = judge_targets(report, full_corpus_run=False, at_half_max_rate=False, quick=True)
    assert all(check.met is None for check in quick)
    partial = judge_targets(report, full_corpus_run=False, at_half_max_rate=True, quick=False)
    assert [check.met for check in partial] == [None, True, True, True]


def test_report_json_table_and_lines(report: PipelineBenchReport, tmp_path: Path) -> None:
    report.targets = judge_targets(report, full_corpus_run=True, at_half_max_rate=True, quick=False)
    output = tmp_path / "results" / "pipeline.json"
    write_report(report, output)
    written = json.loads(output.read_text())
    assert written["full_corpus"]["throughput_per_s"] == 155.5
    assert written["sustained"]["freshness_ms"]["count"] == 4
    assert written["sustained"]["lag_samples"][1] == [1.0, 2_332, 4_665]
    assert written["raw_embedder"]["throughput_per_s"] == 250.0
    assert written["pipeline_vs_raw_embedder"] == 0.622
    assert [target["met"] for target in written["targets"]] == [False, True, True, True]

    console = Console(width=160, record=True)
    console.print(render_table(report))
    text = console.export_text()
    assert "155.5 rows/s" in text
    assert "62%" in text
    lines = format_targets(report)
    assert lines[0] == "full corpus indexed end to end: 200.0 s (target < 180.0 s, NOT met)"
    assert lines[-1] == "a note"


def test_the_plot_is_a_png(report: PipelineBenchReport, tmp_path: Path) -> None:
    output = plot_pipeline_run(
        [
            LagSeries("full", report.full_corpus.lag_samples, 1.0),
            LagSeries("sustained", report.sustained.lag_samples, None),
        ],
        report.sustained.freshness_points,
        tmp_path / "plot.png",
        title="test",
    )
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert output.stat().st_size > 10_000

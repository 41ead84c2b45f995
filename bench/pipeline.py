"""``tidewire bench pipeline``: end-to-end throughput and freshness of the running stack.

It measures the whole path an upstream write takes (Postgres commit → Debezium → Kafka → stream
worker → embeddings → pgvector) on a pipeline of its own (:mod:`bench.dedicated_pipeline`: a
table, a consumer group and topics the user's data never touches, removed at the end), with the
whole stack on this machine:

1. **Full corpus**: a writer process inserts the KJV verses (31,101 by default) in 1,000-row
   transactions as fast as it can, as ``make demo`` does; measured is the time from its first
   transaction to the last verse's vectors being committed. Its throughput is the pipeline
   saturated: the maximum sustained rate.
2. **Sustained load**: a writer process inserts verses (new ids) at a fixed rate (half the maximum
   unless ``--rate`` says otherwise) for a fixed time; measured are the freshness percentiles of
   every row (``tidewire_document_state.indexed_at − source_committed_at``: Debezium's commit time
   to the vector store's write, both on the database clock) and the throughput.
3. During both, the consumer lag of the bench workers' group is sampled (:mod:`bench.lag_sampling`)
   and drawn to a PNG next to the JSON.
4. **Raw embedder**: once the pipeline is removed, the embedder the workers use (same settings,
   so the same variant, provider and threads) embeds the full-corpus texts in slices of
   ``streams.batch_max_events``, the most a worker batch holds; pipeline ÷ raw is the share of the
   model's speed the pipeline delivers end to end.

Timestamps of the writer (``time.time()``) and of the database are compared directly: the
benchmark expects the stack on the same machine, hence the same clock.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from bench.dedicated_pipeline import BENCH_PIPELINE, BENCH_TENANT, DedicatedPipeline
from bench.embed import describe_machine
from bench.errors import BenchmarkError
from bench.freshness import FreshnessSummary
from bench.lag_plot import LagSeries, plot_pipeline_run
from bench.lag_sampling import LagSample, LagSampler, LagSummary, summarize_lag
from bench.source_writer import SourceRow, WritePlan, WriteResult, WriterProcess
from streams.document_text import build_text
from tidewire.consumer_lag import consumer_group_lag
from tidewire.demo import INSERT_BATCH_ROWS
from tidewire.errors import ServiceError, TidewireError
from tidewire.kafka_clients import admin_client
from tidewire.kjv_corpus import Verse, load_kjv_verses
from tidewire.settings import Settings

if TYPE_CHECKING:
    from rich.table import Table

FULL_CORPUS_TARGET_S = 180.0
FRESHNESS_P50_TARGET_MS = 1_000.0
FRESHNESS_P99_TARGET_MS = 3_000.0
PIPELINE_VS_RAW_TARGET = 0.60
# Document ids of the two phases: distinct, so every sustained row is a new document to embed.
CORPUS_ID_PREFIX = "corpus-"
LOAD_ID_PREFIX = "load-"
_POLL_INTERVAL_S = 0.5
_DRAIN_TIMEOUT_S = 30.0
_RAW_WARM_UP_TEXTS = 64

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineBenchConfig:
    """What one run measures."""

    verses: int | None = None  # verses of the full-corpus phase; None: all of them
    sustained_seconds: float = 60.0
    sustained_rate: float | None = None  # rows/s; None: half the full-corpus throughput
    workers: int = 1
    lag_interval_s: float = 1.0
    phase_timeout_s: float = 900.0  # the longest a phase may take before the run is abandoned
    quick: bool = False

    @classmethod
    def quick_run(cls, workers: int = 1) -> PipelineBenchConfig:
        """A smoke run of about a minute, set-up included: numbers are not comparable."""
        return cls(
            verses=300,
            sustained_seconds=5.0,
            workers=workers,
            lag_interval_s=0.5,
            phase_timeout_s=240.0,
            quick=True,
        )


@dataclass
class PhaseResult:
    """One phase: what was written, how fast it became searchable, and the lag along the way."""

    name: str
    rows: int
    indexed: int
    write: WriteResult
    rate_per_s: float | None  # the writer's schedule; None: as fast as possible
    seconds_to_last_indexed: float
    freshness: FreshnessSummary | None
    lag: LagSummary
    lag_samples: list[LagSample] = field(repr=False)
    writes_finished_s: float  # on the lag samples' clock
    freshness_points: list[tuple[float, float]] = field(repr=False)

    @property
    def throughput_per_s(self) -> float:
        """Rows indexed per second, from the writer's first transaction to the last row's vectors."""
        return self.indexed / self.seconds_to_last_indexed if self.seconds_to_last_indexed > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "indexed": self.indexed,
            "target_rate_per_s": None if self.rate_per_s is None else round(self.rate_per_s, 1),
            "write_seconds": round(self.write.seconds, 2),
            "write_rate_per_s": round(self.write.achieved_rate_per_s, 1),
            "write_transactions": self.write.transactions,
            "writer_max_backlog_rows": self.write.max_backlog_rows,
            "seconds_to_last_indexed": round(self.seconds_to_last_indexed, 2),
            "throughput_per_s": round(self.throughput_per_s, 1),
            "freshness_ms": None if self.freshness is None else self.freshness.to_json(),
            "lag": self.lag.to_json(),
            "lag_samples": [[s.elapsed_s, s.lag, s.written] for s in self.lag_samples],
        }


@dataclass(frozen=True)
class RawEmbedderResult:
    """The workers' embedder alone on the full-corpus texts."""

    variant: str
    provider: str
    threads: int
    concurrent_calls: int
    texts: int
    slice_texts: int
    seconds: float

    @property
    def throughput_per_s(self) -> float:
        return self.texts / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "seconds": round(self.seconds, 2),
            "throughput_per_s": round(self.throughput_per_s, 1),
        }


@dataclass(frozen=True)
class TargetCheck:
    """One measured value against its target; ``met`` is None when the run cannot judge it."""

    name: str
    measured: float | None
    target: float
    comparison: str  # "<", "<=" or ">="
    unit: str
    met: bool | None

    @classmethod
    def judge(
        cls,
        name: str,
        measured: float | None,
        comparison: str,
        target: float,
        unit: str,
        *,
        comparable: bool = True,
    ) -> TargetCheck:
        """Compare ``measured`` with ``target``; not comparable (a partial or quick run) → ``met`` None."""
        if measured is None or not comparable:
            return cls(name, measured, target, comparison, unit, None)
        checks: dict[str, Callable[[float, float], bool]] = {
            "<": lambda value, bound: value < bound,
            "<=": lambda value, bound: value <= bound,
            ">=": lambda value, bound: value >= bound,
        }
        return cls(name, measured, target, comparison, unit, checks[comparison](measured, target))


@dataclass
class PipelineBenchReport:
    """Everything ``tidewire bench pipeline`` prints and writes."""

    machine: dict[str, Any]
    config: dict[str, Any]
    full_corpus: PhaseResult
    max_rate_per_s: float  # the full-corpus throughput: the pipeline saturated
    sustained: PhaseResult
    raw_embedder: RawEmbedderResult
    targets: list[TargetCheck]
    notes: list[str]
    plot: Path | None = None

    @property
    def pipeline_vs_raw(self) -> float | None:
        raw = self.raw_embedder.throughput_per_s
        return self.full_corpus.throughput_per_s / raw if raw > 0 else None

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "config": self.config,
            "full_corpus": self.full_corpus.summary(),
            "max_sustained_rate": {
                "rows_per_s": round(self.max_rate_per_s, 1),
                "source": "full-corpus throughput",
            },
            "sustained": self.sustained.summary(),
            "raw_embedder": self.raw_embedder.summary(),
            "pipeline_vs_raw_embedder": None
            if self.pipeline_vs_raw is None
            else round(self.pipeline_vs_raw, 3),
            "targets": [asdict(check) for check in self.targets],
            "plot": None if self.plot is None else str(self.plot),
            "notes": self.notes,
        }


def corpus_rows(verses: Sequence[Verse], count: int, prefix: str) -> list[SourceRow]:
    """``count`` rows of the bench table, verses in canonical order (cycling), ids ``<prefix><n>``."""
    return [
        SourceRow(
            document_id=f"{prefix}{index:06d}",
            tenant_id=BENCH_TENANT,
            title=verse.title,
            body=verse.text,
            metadata={"book": verse.book, "chapter": verse.chapter, "verse": verse.verse},
        )
        for index, verse in ((index, verses[index % len(verses)]) for index in range(count))
    ]


def sustained_row_count(rate_per_s: float, seconds: float) -> int:
    """Rows a writer at ``rate_per_s`` writes in ``seconds`` (at least one)."""
    return max(1, round(rate_per_s * seconds))


def run_pipeline_benchmark(
    settings: Settings,
    config: PipelineBenchConfig,
    *,
    config_file: Path | None = None,
    plot_file: Path | None = None,
    progress: Callable[[str], None] = lambda _message: None,
) -> PipelineBenchReport:
    """Run the phases of the module docstring on the running stack; see there.

    1. Inputs: the verses, as rows and as the texts the pipeline embeds.
    2. Set up the dedicated pipeline (table, connector, topics, workers).
    3. Full-corpus phase; its throughput is the maximum sustained rate.
    4. Sustained-load phase at half that rate (or ``config.sustained_rate``).
    5. Remove the dedicated pipeline (also when a phase failed).
    6. Raw embedder on the full-corpus texts; targets; the plot.
    """
    # 1. Inputs
    verses = load_kjv_verses()
    corpus = corpus_rows(verses, min(config.verses or len(verses), len(verses)), CORPUS_ID_PREFIX)
    pipeline = DedicatedPipeline(settings, config_file=config_file, progress=progress)
    spec = pipeline.spec
    notes: list[str] = []
    if config.quick:
        notes.append("quick smoke run: too short for its numbers to mean anything; targets not judged")
    # 2. Set-up, after removing what an interrupted earlier run left (this also fails fast, and
    # with nothing to undo, when the stack is not up)
    pipeline.remove()
    try:
        pipeline.set_up(config.workers)
        # 3. Full corpus
        progress(f"full corpus: writing {len(corpus):,} verses")
        full = _run_phase(pipeline, corpus, None, CORPUS_ID_PREFIX, "full corpus", config, progress)
        # 4. Sustained load
        max_rate = full.throughput_per_s
        rate = config.sustained_rate or max_rate / 2
        load = corpus_rows(verses, sustained_row_count(rate, config.sustained_seconds), LOAD_ID_PREFIX)
        progress(f"sustained load: {rate:,.1f} rows/s for {config.sustained_seconds:.0f}s")
        sustained = _run_phase(pipeline, load, rate, LOAD_ID_PREFIX, "sustained load", config, progress)
    except BaseException:
        # 5. Removal after a failure: the failure is what the user needs to see, so a removal
        # that fails too is only logged (the next run's set-up removes the leftovers).
        progress("removing the bench pipeline")
        try:
            pipeline.remove()
        except TidewireError as error:
            logger.warning("could not remove the bench pipeline: %s", error.message)
        raise
    # 5. Removal
    progress("removing the bench pipeline")
    pipeline.remove()
    # 6. Raw embedder, targets, plot
    progress(f"raw embedder: {len(corpus):,} texts")
    raw = measure_raw_embedder(
        settings, [build_text(spec, _row_columns(row)) for row in corpus], settings.streams.batch_max_events
    )
    full_corpus_run = len(corpus) == len(verses) and not config.quick
    at_half_max_rate = config.sustained_rate is None and not config.quick
    if config.sustained_rate is not None:
        notes.append(
            f"sustained rate set by --rate ({rate:,.1f} rows/s), not half the maximum: freshness targets not judged"
        )
    report = PipelineBenchReport(
        machine=describe_machine(),
        config={
            **asdict(config),
            "verses": len(corpus),
            "pipeline": BENCH_PIPELINE,
            "batch_max_events": settings.streams.batch_max_events,
            "batch_max_wait_s": settings.streams.batch_max_wait_s,
        },
        full_corpus=full,
        max_rate_per_s=max_rate,
        sustained=sustained,
        raw_embedder=raw,
        targets=[],
        notes=notes,
    )
    report.targets = judge_targets(
        report, full_corpus_run=full_corpus_run, at_half_max_rate=at_half_max_rate, quick=config.quick
    )
    if not full_corpus_run and not config.quick:
        notes.append(f"partial corpus ({len(corpus):,} verses): the full-corpus time target is not judged")
    if plot_file is not None:
        report.plot = plot_pipeline_run(
            [
                LagSeries(
                    f"full corpus: {full.rows:,} verses as fast as possible",
                    full.lag_samples,
                    full.writes_finished_s,
                ),
                LagSeries(
                    f"sustained load: {rate:,.1f} rows/s for {config.sustained_seconds:.0f}s",
                    sustained.lag_samples,
                    sustained.writes_finished_s,
                ),
            ],
            sustained.freshness_points,
            plot_file,
            title=f"tidewire bench pipeline — {report.machine['cpu']}, {report.machine['physical_cores']} cores",
        )
    return report


def judge_targets(
    report: PipelineBenchReport, *, full_corpus_run: bool, at_half_max_rate: bool, quick: bool
) -> list[TargetCheck]:
    """The targets against this run's numbers; what the run cannot judge gets ``met`` None.

    ``full_corpus_run``: all 31,101 verses were written; ``at_half_max_rate``: the sustained load
    ran at half the measured maximum (not a ``--rate``); ``quick``: a smoke run judges nothing.
    """
    freshness = report.sustained.freshness
    return [
        TargetCheck.judge(
            "full corpus indexed end to end",
            round(report.full_corpus.seconds_to_last_indexed, 1),
            "<",
            FULL_CORPUS_TARGET_S,
            "s",
            comparable=full_corpus_run,
        ),
        TargetCheck.judge(
            "freshness p50 at half the max rate",
            None if freshness is None else freshness.p50_ms,
            "<=",
            FRESHNESS_P50_TARGET_MS,
            "ms",
            comparable=at_half_max_rate,
        ),
        TargetCheck.judge(
            "freshness p99 at half the max rate",
            None if freshness is None else freshness.p99_ms,
            "<=",
            FRESHNESS_P99_TARGET_MS,
            "ms",
            comparable=at_half_max_rate,
        ),
        TargetCheck.judge(
            "pipeline ÷ raw embedder throughput",
            None if report.pipeline_vs_raw is None else round(report.pipeline_vs_raw, 3),
            ">=",
            PIPELINE_VS_RAW_TARGET,
            "×",
            comparable=not quick,
        ),
    ]


def _row_columns(row: SourceRow) -> dict[str, Any]:
    return {
        "id": row.document_id,
        "tenant_id": row.tenant_id,
        "title": row.title,
        "body": row.body,
        "metadata": row.metadata,
    }


def _run_phase(
    pipeline: DedicatedPipeline,
    rows: list[SourceRow],
    rate_per_s: float | None,
    id_prefix: str,
    name: str,
    config: PipelineBenchConfig,
    progress: Callable[[str], None],
) -> PhaseResult:
    """Write ``rows`` with a writer process, sample the lag until every row is indexed, read the timestamps.

    1. Start the writer process and the lag sampler.
    2. Poll the document states until every row has its vectors (or the phase times out).
    3. Stop the sampler, collect the writer's result and every row's two timestamps.
    """
    settings = pipeline.settings
    postgres = settings.postgres
    # 1. Writer and sampler
    writer = WriterProcess(
        WritePlan(postgres.dsn(), pipeline.spec.source_table, rows, rate_per_s, batch_rows=INSERT_BATCH_ROWS)
    )
    # One client for the whole phase: a new one per reading would reconnect every second.
    admin = admin_client(settings.kafka.bootstrap)
    sampler = LagSampler(
        lambda: (
            consumer_group_lag(
                settings.kafka.bootstrap, pipeline.group, [pipeline.cdc_topic], admin=admin
            ).total
        ),
        lambda: int(writer.written.value),
        interval_s=config.lag_interval_s,
        clock=time.time,
    )
    sampler.start()
    try:
        # 2. Until indexed
        deadline = time.monotonic() + config.phase_timeout_s
        with _connect(settings) as connection:
            indexed = 0
            while indexed < len(rows):
                if time.monotonic() > deadline:
                    raise BenchmarkError(
                        f"{name}: {indexed:,} of {len(rows):,} rows indexed after {config.phase_timeout_s:.0f}s; "
                        f"see the bench workers' logs in {settings.state_dir / 'logs'} and `tidewire lag`"
                    )
                if not writer.is_alive() and writer.written.value < len(rows):
                    writer.result(timeout_s=5)  # raises the writer's own error
                time.sleep(_POLL_INTERVAL_S)
                indexed = _indexed_count(connection, id_prefix)
                progress(f"{name}: {int(writer.written.value):,} written, {indexed:,} indexed")
            # 3. Results, once the lag is back at zero (the workers commit about once a second),
            # so the samples show the drain and the next phase starts from an empty backlog.
            write = writer.result()
            _wait_for_drained_lag(sampler, write.finished_at - sampler.started_at)
            samples = sampler.stop()
            timestamps = connection.execute(
                "SELECT extract(epoch FROM source_committed_at)::float8, extract(epoch FROM indexed_at)::float8 "
                "FROM public.tidewire_document_state WHERE pipeline = %s AND starts_with(document_id, %s) "
                "AND NOT deleted",
                (BENCH_PIPELINE, id_prefix),
            ).fetchall()
    except BaseException:
        writer.stop()
        sampler.stop()
        raise
    last_indexed = max(indexed_at for _, indexed_at in timestamps)
    return PhaseResult(
        name=name,
        rows=len(rows),
        indexed=len(timestamps),
        write=write,
        rate_per_s=rate_per_s,
        seconds_to_last_indexed=last_indexed - write.started_at,
        freshness=FreshnessSummary.of(
            [(indexed_at - committed) * 1000 for committed, indexed_at in timestamps]
        ),
        lag=summarize_lag(samples, write.finished_at - sampler.started_at),
        lag_samples=samples,
        writes_finished_s=write.finished_at - sampler.started_at,
        freshness_points=sorted(
            (round(committed - sampler.started_at, 3), round((indexed_at - committed) * 1000, 1))
            for committed, indexed_at in timestamps
        ),
    )


def _indexed_count(connection: psycopg.Connection[Any], id_prefix: str) -> int:
    row = connection.execute(
        "SELECT count(*) FROM public.tidewire_document_state "
        "WHERE pipeline = %s AND starts_with(document_id, %s) AND NOT deleted",
        (BENCH_PIPELINE, id_prefix),
    ).fetchone()
    return int(row[0]) if row else 0


def _wait_for_drained_lag(sampler: LagSampler, writes_finished_s: float) -> None:
    deadline = time.monotonic() + _DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        latest = sampler.latest()
        if latest is not None and latest.elapsed_s >= writes_finished_s and latest.lag == 0:
            return
        time.sleep(0.2)


def _connect(settings: Settings) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(settings.postgres.dsn(), autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as error:
        raise ServiceError.postgres_unreachable(settings.postgres, error) from None


def measure_raw_embedder(settings: Settings, texts: Sequence[str], slice_texts: int) -> RawEmbedderResult:
    """The workers' embedder (same settings) on ``texts``, ``slice_texts`` at a time, after a warm-up."""
    from models.embedder import Embedder

    embedder = Embedder.from_settings(settings.embedding)
    embedder.embed(list(texts[:_RAW_WARM_UP_TEXTS]))
    started = time.perf_counter()
    for start in range(0, len(texts), slice_texts):
        embedder.embed(list(texts[start : start + slice_texts]))
    seconds = time.perf_counter() - started
    return RawEmbedderResult(
        variant=embedder.variant,
        provider=embedder.provider,
        threads=embedder.options.intra_op_threads,
        concurrent_calls=embedder.options.concurrent_calls,
        texts=len(texts),
        slice_texts=slice_texts,
        seconds=seconds,
    )


def write_report(report: PipelineBenchReport, output: Path) -> None:
    """Write the JSON results (``--output``), creating the folder."""
    import json

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")


def render_table(report: PipelineBenchReport) -> Table:
    """The measurements as a rich table (imported lazily: only the CLI renders)."""
    from rich.table import Table

    table = Table(
        title=f"Pipeline end to end — {report.machine['cpu']}, {report.machine['physical_cores']} cores"
    )
    for column, justify in (("phase", "left"), ("measure", "left"), ("value", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    full, sustained, raw = report.full_corpus, report.sustained, report.raw_embedder

    def phase_rows(label: str, phase: PhaseResult) -> None:
        table.add_row(label, "rows", f"{phase.rows:,}")
        if phase.rate_per_s is not None:
            table.add_row(
                label,
                "write rate (target → achieved)",
                f"{phase.rate_per_s:,.1f} → {phase.write.achieved_rate_per_s:,.1f} rows/s",
            )
        table.add_row(label, "first write → last row indexed", f"{phase.seconds_to_last_indexed:,.1f} s")
        table.add_row(label, "throughput", f"{phase.throughput_per_s:,.1f} rows/s")
        if phase.freshness is not None:
            fresh = phase.freshness
            table.add_row(
                label,
                "freshness p50 / p95 / p99",
                f"{fresh.p50_ms:,.0f} / {fresh.p95_ms:,.0f} / {fresh.p99_ms:,.0f} ms",
            )
        drain = (
            "never drained"
            if phase.lag.drain_s is None
            else f"drained {phase.lag.drain_s:,.1f} s after the writes"
        )
        table.add_row(
            label,
            "consumer lag max / mean",
            f"{phase.lag.max_lag:,} / {phase.lag.mean_lag:,.0f} events ({drain})",
        )

    phase_rows("full corpus", full)
    table.add_row("max sustained rate", "the full-corpus throughput", f"{report.max_rate_per_s:,.1f} rows/s")
    phase_rows("sustained", sustained)
    table.add_row(
        "raw embedder",
        f"{raw.variant} on {raw.provider}, {raw.threads} threads, {raw.concurrent_calls} calls side by side",
        f"{raw.throughput_per_s:,.1f} texts/s",
    )
    if report.pipeline_vs_raw is not None:
        table.add_row(
            "pipeline ÷ raw", "full-corpus throughput ÷ raw embedder", f"{report.pipeline_vs_raw:.0%}"
        )
    return table


def format_targets(report: PipelineBenchReport) -> list[str]:
    """The lines printed under the table: each target met or not, then the notes."""
    lines = []
    for check in report.targets:
        measured = (
            "not measured"
            if check.measured is None
            else f"{check.measured:,}{' ' if check.unit != '×' else ''}{check.unit}"
        )
        verdict = "not judged" if check.met is None else "met" if check.met else "NOT met"
        lines.append(
            f"{check.name}: {measured} (target {check.comparison} {check.target:,}{' ' if check.unit != '×' else ''}{check.unit}, {verdict})"
        )
    median_lag = (
        statistics.median([s.lag for s in report.sustained.lag_samples])
        if report.sustained.lag_samples
        else 0
    )
    lines.append(f"sustained load: median consumer lag {median_lag:,.0f} events")
    return lines + report.notes

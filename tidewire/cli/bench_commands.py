"""``tidewire bench ...``: benchmarks whose results go into docs/benchmarks.md."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click

from tidewire.cli.app import CliContext, cli, json_option, pass_cli_context, print_json

ConfigT = TypeVar("ConfigT")


def _with_given_options(config: ConfigT, **options: Any) -> ConfigT:
    """``config`` with the options the user gave (None: not given, keep the default)."""
    return replace(config, **{name: value for name, value in options.items() if value is not None})  # type: ignore[type-var]


def _print_report(
    report: Any, table: Any, target_lines: Iterable[str], written: str, *, as_json: bool
) -> None:
    """The report as one JSON document, or as its table, one line per target and where it was written."""
    from rich.console import Console

    if as_json:
        print_json(report.to_json())
        return
    stdout = Console() if Console().is_terminal else Console(width=150)
    stdout.print(table)
    for line in target_lines:
        stdout.print(line)
    stdout.print(written)


@cli.group()
def bench() -> None:
    """Run benchmarks (results are printed as a table and written as JSON)."""


@bench.command("embed")
@click.option("--quick", is_flag=True, help="A smoke run of a few seconds: few texts, one round.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Number of KJV verses (default 2000)."
)
@click.option(
    "--paragraphs", type=click.IntRange(min=0), default=None, help="Number of 200-token paragraphs."
)
@click.option("--rounds", type=click.IntRange(min=1), default=None, help="Timed rounds per configuration.")
@click.option(
    "--variant",
    "variants",
    type=click.Choice(["fp32", "int8", "fp16"]),
    multiple=True,
    help="CPU variants to measure (repeatable; default fp32 and int8).",
)
@click.option(
    "--no-sentence-transformers", is_flag=True, help="Skip the PyTorch comparison even if importable."
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("bench-results/embed.json"),
    show_default=True,
    help="Where to write the JSON results.",
)
@json_option
@pass_cli_context
def bench_embed(
    context: CliContext,
    quick: bool,
    limit: int | None,
    paragraphs: int | None,
    rounds: int | None,
    variants: tuple[str, ...],
    no_sentence_transformers: bool,
    output: Path,
    as_json: bool,
) -> None:
    """Sentences/s and tokens/s of each variant, the naive path and sentence-transformers."""
    from rich.console import Console

    from bench.embed import EmbedBenchConfig, format_ratios, render_table, run_embed_benchmark, write_report

    config = _with_given_options(
        EmbedBenchConfig.quick() if quick else EmbedBenchConfig(),
        verses=limit,
        paragraphs=paragraphs,
        rounds=rounds,
        variants=tuple(variants) or None,
        sentence_transformers=False if no_sentence_transformers else None,
    )
    console = Console(stderr=True)
    with console.status("benchmarking…") as status:
        report = run_embed_benchmark(context.settings.embedding, config, progress=status.update)
    write_report(report, output)
    _print_report(
        report, render_table(report), format_ratios(report), f"results written to {output}", as_json=as_json
    )


@bench.command("pipeline")
@click.option(
    "--quick", is_flag=True, help="A smoke run of about a minute: 300 verses, 5 s of load; judges no target."
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Verses of the full-corpus run (default: all 31,101).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=None,
    help="Seconds of sustained load (default 60).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Rows/s of the sustained load (default: half the full-corpus throughput).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Stream workers of the bench pipeline (default: streams.workers, at least 1).",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("bench-results/pipeline.json"),
    show_default=True,
    help="Where to write the JSON results; the lag plot goes next to it (same name, .png).",
)
@json_option
@pass_cli_context
def bench_pipeline(
    context: CliContext,
    quick: bool,
    limit: int | None,
    duration: float | None,
    rate: float | None,
    workers: int | None,
    output: Path,
    as_json: bool,
) -> None:
    """End to end on the running stack: full-corpus time, freshness under load, lag, raw embedder.

    It runs on a table and pipeline of its own (tidewire-bench), removed at the end: your tables,
    vectors and consumer groups are not touched.
    """
    from rich.console import Console

    from bench.pipeline import (
        PipelineBenchConfig,
        format_targets,
        render_table,
        run_pipeline_benchmark,
        write_report,
    )

    settings = context.settings
    worker_count = workers or max(1, settings.streams.workers)
    config = (
        PipelineBenchConfig.quick_run(worker_count) if quick else PipelineBenchConfig(workers=worker_count)
    )
    config = _with_given_options(config, verses=limit, sustained_seconds=duration, sustained_rate=rate)

    console = Console(stderr=True)
    with console.status("benchmarking the pipeline…") as status:
        report = run_pipeline_benchmark(
            settings,
            config,
            config_file=context.config_file,
            plot_file=output.with_suffix(".png"),
            progress=status.update,
        )
    write_report(report, output)
    _print_report(
        report,
        render_table(report),
        format_targets(report),
        f"results written to {output}, lag plot to {report.plot}",
        as_json=as_json,
    )


@bench.command("api")
@click.option(
    "--quick",
    is_flag=True,
    help="A smoke run of seconds once 300 verses are indexed: few requests, 20 streams; judges no target.",
)
@click.option(
    "--clients", type=click.IntRange(min=1), default=None, help="Concurrent search clients (default 16)."
)
@click.option(
    "--requests", type=click.IntRange(min=1), default=None, help="Timed search requests (default 4000)."
)
@click.option(
    "--streams", type=click.IntRange(min=0), default=None, help="Idle /v1/events streams held (default 1000)."
)
@click.option(
    "--chat-requests",
    type=click.IntRange(min=1),
    default=None,
    help="Concurrent chat requests per round (default 200).",
)
@click.option(
    "--sync-threads",
    type=click.IntRange(min=1),
    default=None,
    help="Threads of the synchronous chat baseline (default 40, AnyIO's default).",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("bench-results/api.json"),
    show_default=True,
    help="Where to write the JSON results; the servers' logs go to a folder next to it.",
)
@json_option
@pass_cli_context
def bench_api(
    context: CliContext,
    quick: bool,
    clients: int | None,
    requests: int | None,
    streams: int | None,
    chat_requests: int | None,
    sync_threads: int | None,
    output: Path,
    as_json: bool,
) -> None:
    """The read API on the running stack: search latency and recall, cached search vs a bare
    endpoint, memory of idle event streams, chat (SSE) vs a synchronous implementation.

    Needs `tidewire up`; loads the KJV corpus into `documents` first if it is not there.
    """
    from rich.console import Console

    from bench.api.config import ApiBenchConfig, with_overrides
    from bench.api.report import format_targets, render_table, write_report
    from bench.api.run import run_api_benchmark

    config = with_overrides(
        ApiBenchConfig.quick_run() if quick else ApiBenchConfig(),
        search_clients=clients,
        search_requests=requests,
        idle_streams=streams,
        chat_requests=chat_requests,
        sync_threads=sync_threads,
    )
    console = Console(stderr=True)
    with console.status("benchmarking the read API…") as status:
        report = run_api_benchmark(
            context.settings,
            config,
            config_file=context.config_file,
            log_dir=output.with_name(output.stem + "-logs"),
            progress=status.update,
        )
    write_report(report, output)
    _print_report(
        report, render_table(report), format_targets(report), f"results written to {output}", as_json=as_json
    )

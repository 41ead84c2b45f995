"""``tidewire bench ...``: benchmarks whose results go into docs/benchmarks.md."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from tidewire.cli.app import CliContext, cli, json_option, pass_cli_context, print_json


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

    config = EmbedBenchConfig.quick() if quick else EmbedBenchConfig()
    overrides: dict[str, object] = {}
    if limit is not None:
        overrides["verses"] = limit
    if paragraphs is not None:
        overrides["paragraphs"] = paragraphs
    if rounds is not None:
        overrides["rounds"] = rounds
    if variants:
        overrides["variants"] = tuple(variants)
    if no_sentence_transformers:
        overrides["sentence_transformers"] = False
    config = replace(config, **overrides)  # type: ignore[arg-type]

    console = Console(stderr=True)
    with console.status("benchmarking…") as status:
        report = run_embed_benchmark(context.settings.embedding, config, progress=status.update)
    write_report(report, output)
    if as_json:
        print_json(report.to_json())
        return
    stdout = Console() if Console().is_terminal else Console(width=150)
    stdout.print(render_table(report))
    for line in format_ratios(report):
        stdout.print(line)
    stdout.print(f"results written to {output}")

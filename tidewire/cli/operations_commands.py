"""``tidewire reindex`` and ``tidewire lag``: operating a running pipeline."""

from __future__ import annotations

from dataclasses import asdict

import click

from connectors.signals import request_incremental_snapshot
from tidewire.cli.app import CliContext, json_option, pass_cli_context, print_json
from tidewire.consumer_lag import consumer_group_lag
from tidewire.errors import ConfigurationError


@click.command()
@click.option("--pipeline", "pipeline_name", default=None, help="Pipeline to re-index (default: all).")
@click.option(
    "--document",
    "document_ids",
    multiple=True,
    help="Re-index only this document id (repeatable); needs --pipeline when there are several.",
)
@json_option
@pass_cli_context
def reindex(
    context: CliContext, pipeline_name: str | None, document_ids: tuple[str, ...], as_json: bool
) -> None:
    """Re-read source rows through the connector (a Debezium incremental snapshot), live changes continuing."""
    settings = context.settings
    if pipeline_name is not None:
        pipelines = [settings.pipeline(pipeline_name)]
    elif document_ids and len(settings.pipelines) > 1:
        known = ", ".join(pipeline.name for pipeline in settings.pipelines)
        raise ConfigurationError(f"--document needs --pipeline when there are several pipelines ({known})")
    else:
        pipelines = settings.pipelines
    signals = [
        signal
        for pipeline in pipelines
        for signal in request_incremental_snapshot(settings.postgres, pipeline, document_ids)
    ]
    if as_json:
        print_json({"signals": [asdict(signal) for signal in signals]})
        return
    for signal in signals:
        scope = "all rows" if signal.document_count is None else f"{signal.document_count} document(s)"
        click.echo(
            f"{signal.pipeline}: incremental snapshot of {signal.table} requested ({scope}), signal {signal.signal_id}"
        )


@click.command()
@click.option("--group", default=None, help="Consumer group (default: the streams app id).")
@json_option
@pass_cli_context
def lag(context: CliContext, group: str | None, as_json: bool) -> None:
    """Show how far the streams workers trail each topic partition (high watermark − committed offset)."""
    settings = context.settings
    group_id = group or settings.streams.app_id
    # The streams group's own topics are listed even before it commits anything.
    expected = [settings.topics.cdc_topic(p.schema_name, p.table_name) for p in settings.pipelines]
    expected = [*expected, settings.topics.ingest] if group is None else []
    result = consumer_group_lag(settings.kafka.bootstrap, group_id, expected)
    if as_json:
        print_json(
            {
                "group": result.group,
                "total_lag": result.total,
                "partitions": [
                    {**asdict(partition), "lag": partition.lag} for partition in result.partitions
                ],
            }
        )
        return
    click.echo(f"group {result.group}: total lag {result.total}")
    for partition in result.partitions:
        committed = "-" if partition.committed is None else str(partition.committed)
        click.echo(
            f"  {partition.topic}[{partition.partition}]  committed {committed}  "
            f"high {partition.high_watermark}  lag {partition.lag}"
        )


def register(cli: click.Group) -> None:
    for command in (reindex, lag):
        cli.add_command(command)

"""``tidewire reindex``, ``tidewire orphans list|prune`` and ``tidewire lag``: operating a running pipeline."""

from __future__ import annotations

from dataclasses import asdict

import click

from connectors.signals import request_incremental_snapshot
from tidewire.cli.app import CliContext, json_option, pass_cli_context, print_json
from tidewire.consumer_lag import consumer_group_lag
from tidewire.errors import ConfigurationError
from tidewire.pipeline_spec import PipelineSpec
from tidewire.settings import Settings


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
    pipelines = _selected_pipelines(settings, pipeline_name, document_ids)
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


@click.group()
def orphans() -> None:
    """Indexed documents whose source rows are gone but whose deletes never arrived (a lost slot)."""


_pipeline_option = click.option(
    "--pipeline", "pipeline_name", default=None, help="Only this pipeline (default: all)."
)
_document_option = click.option(
    "--document",
    "document_ids",
    multiple=True,
    help="Look only at this document id (repeatable); needs --pipeline when there are several.",
)


@orphans.command("list")
@_pipeline_option
@_document_option
@json_option
@pass_cli_context
def list_orphans(
    context: CliContext, pipeline_name: str | None, document_ids: tuple[str, ...], as_json: bool
) -> None:
    """List indexed documents that have no row in their pipeline's source table; change nothing."""
    _orphans_command(context, pipeline_name, document_ids, as_json=as_json, dry_run=True)


@orphans.command("prune")
@_pipeline_option
@_document_option
@json_option
@pass_cli_context
def prune_orphans_command(
    context: CliContext, pipeline_name: str | None, document_ids: tuple[str, ...], as_json: bool
) -> None:
    """Remove indexed documents that have no row in their source table; their tenants get document.deleted."""
    _orphans_command(context, pipeline_name, document_ids, as_json=as_json, dry_run=False)


def _orphans_command(
    context: CliContext,
    pipeline_name: str | None,
    document_ids: tuple[str, ...],
    *,
    as_json: bool,
    dry_run: bool,
) -> None:
    from streams.orphan_pruning import prune_orphans  # imported here: it loads the events codec

    settings = context.settings
    pipelines = _selected_pipelines(settings, pipeline_name, document_ids)
    results = [
        prune_orphans(settings, spec, document_ids=document_ids, dry_run=dry_run) for spec in pipelines
    ]
    if as_json:
        fields = (
            ("pipeline", "table", "orphans")
            if dry_run
            else ("pipeline", "table", "orphans", "removed", "kept", "notified")
        )
        print_json({"pipelines": [{name: getattr(result, name) for name in fields} for result in results]})
        return
    for result in results:
        if not result.orphans:
            click.echo(f"{result.pipeline}: every indexed document has its row in {result.table}")
            continue
        listed = ", ".join(result.orphans[:10]) + (", ..." if len(result.orphans) > 10 else "")
        if dry_run:
            click.echo(
                f"{result.pipeline}: {len(result.orphans)} document(s) with no row in {result.table}: {listed}"
            )
            continue
        click.echo(
            f"{result.pipeline}: removed {len(result.removed)} document(s) with no row in {result.table} "
            f"({listed}); {result.notified} notification(s) sent"
        )
        if result.kept:
            click.echo(
                f"{result.pipeline}: kept {len(result.kept)} indexed again meanwhile: {', '.join(result.kept)}"
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


def _selected_pipelines(
    settings: Settings, pipeline_name: str | None, document_ids: tuple[str, ...]
) -> list[PipelineSpec]:
    """The pipeline named, or every pipeline; ``--document`` ids need a pipeline when there are several."""
    if pipeline_name is not None:
        return [settings.pipeline(pipeline_name)]
    if document_ids and len(settings.pipelines) > 1:
        known = ", ".join(pipeline.name for pipeline in settings.pipelines)
        raise ConfigurationError(f"--document needs --pipeline when there are several pipelines ({known})")
    return settings.pipelines


def register(cli: click.Group) -> None:
    for command in (reindex, orphans, lag):
        cli.add_command(command)

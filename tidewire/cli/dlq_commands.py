"""``tidewire dlq list|show|replay`` and ``tidewire replay``: dead letters and consumer offsets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import click
from rich.console import Console
from rich.table import Table

from tidewire.cli.app import CliContext, json_option, pass_cli_context, print_json
from tidewire.errors import ConfigurationError


@click.group()
def dlq() -> None:
    """Inspect and re-drive messages in the dead-letter topic (tidewire.dlq)."""


@dlq.command("list")
@click.option("--stage", type=click.Choice(["decode", "validate", "embed", "write", "deliver"]), default=None)
@click.option("--topic", "source_topic", default=None, help="Only messages that came from this topic.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the most recent N.")
@json_option
@pass_cli_context
def list_command(
    context: CliContext, stage: str | None, source_topic: str | None, limit: int | None, as_json: bool
) -> None:
    """List dead letters, oldest first: id (partition:offset), origin, stage, reason."""
    letters = _select(context, stage=stage, source_topic=source_topic)
    if limit is not None:
        letters = letters[-limit:]
    if as_json:
        print_json([letter.summary() for letter in letters])
        return
    table = Table("id", "from", "stage", "code", "reason", "failed at")
    for letter in letters:
        row = letter.summary()
        origin = f"{row['topic']}[{row['partition']}]@{row['offset']}"
        table.add_row(
            row["id"], origin, row["stage"], row["error_code"], row["reason"][:80], row["failed_at"]
        )
    Console().print(table)
    click.echo(f"{len(letters)} dead letter(s)")


@dlq.command("show")
@click.argument("letter_id")
@json_option
@pass_cli_context
def show_command(context: CliContext, letter_id: str, as_json: bool) -> None:
    """Show one dead letter in full (LETTER_ID is partition:offset, as `dlq list` prints it)."""
    [letter] = _by_ids(context, [letter_id])
    document = letter.detail()
    if as_json:
        print_json(document)
        return
    for key, value in document.items():
        click.echo(f"{key}: {value}")


@dlq.command("replay")
@click.argument("letter_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Re-drive every dead letter (filtered by --stage).")
@click.option("--stage", type=click.Choice(["decode", "validate", "embed", "write", "deliver"]), default=None)
@json_option
@pass_cli_context
def replay_dead_letters(
    context: CliContext, letter_ids: tuple[str, ...], replay_all: bool, stage: str | None, as_json: bool
) -> None:
    """Produce dead letters' original messages to their original topics again (after a fix); POST a
    failed webhook delivery again to its endpoint only."""
    from streams.dead_letter_store import redrive
    from streams.webhook_redelivery import is_delivery_failure, redeliver

    if bool(letter_ids) == replay_all:
        raise ConfigurationError("name the dead letters to re-drive (partition:offset ...) or pass --all")
    letters = _select(context, stage=stage, source_topic=None) if replay_all else _by_ids(context, letter_ids)
    deliveries = [stored for stored in letters if is_delivery_failure(stored.letter)]
    messages = [stored for stored in letters if not is_delivery_failure(stored.letter)]
    redelivered = redeliver(context.settings, [stored.letter for stored in deliveries]) if deliveries else 0
    redriven = redrive(context.settings, messages) if messages else 0
    if as_json:
        print_json(
            {"redriven": redriven, "redelivered": redelivered, "ids": [letter.id for letter in letters]}
        )
    else:
        click.echo(
            f"re-drove {redriven} message(s) to their original topics, "
            f"re-delivered {redelivered} webhook notification(s) to their endpoints"
        )


@click.command()
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"]),
    default=None,
    help="Re-consume from this UTC time instead of the beginning.",
)
@json_option
@pass_cli_context
def replay(context: CliContext, since: datetime | None, as_json: bool) -> None:
    """Re-consume the CDC topics: reset the streams group's offsets (workers must be stopped).

    Writes are idempotent and latest-wins, so a replay never duplicates chunks or lets an older
    version overwrite a newer one; unchanged texts are not embedded again.
    """
    from streams.offsets import reset_offsets

    settings = context.settings
    topics = [settings.topics.cdc_topic(spec.schema_name, spec.table_name) for spec in settings.pipelines]
    position: datetime | Literal["earliest"] = since.replace(tzinfo=UTC) if since else "earliest"
    resets = reset_offsets(settings, settings.streams.app_id, topics, position)
    if as_json:
        print_json(
            {
                "group": settings.streams.app_id,
                "from": since.isoformat() if since else "earliest",
                "partitions": [
                    {"topic": r.topic, "partition": r.partition, "offset": r.offset} for r in resets
                ],
            }
        )
        return
    click.echo(
        f"group {settings.streams.app_id}: {len(resets)} partition(s) reset to "
        f"{since.isoformat() if since else 'the beginning'}; start the workers (`tidewire up`) to replay"
    )


def _select(context: CliContext, *, stage: str | None, source_topic: str | None) -> list:
    from streams.dead_letter_store import read_dead_letters

    selected = [
        letter
        for letter in read_dead_letters(context.settings)
        if (stage is None or letter.letter.stage.value == stage)
        and (source_topic is None or letter.letter.topic == source_topic)
    ]
    # The topic is read partition by partition; when they failed is what a reader means by "recent".
    return sorted(selected, key=lambda stored: (stored.letter.failed_at, stored.partition, stored.offset))


def _by_ids(context: CliContext, letter_ids: tuple[str, ...] | list[str]) -> list:
    from streams.dead_letter_store import read_dead_letters

    for letter_id in letter_ids:
        partition, _, offset = letter_id.partition(":")
        if not (partition.isdigit() and offset.isdigit()):
            raise ConfigurationError(
                f"{letter_id!r} is not a dead-letter id; use partition:offset from `dlq list`"
            )
    wanted = set(letter_ids)
    found = {letter.id: letter for letter in read_dead_letters(context.settings) if letter.id in wanted}
    missing = sorted(wanted - set(found))
    if missing:
        raise ConfigurationError(f"no dead letter {', '.join(missing)} in the DLQ; see `tidewire dlq list`")
    return [found[letter_id] for letter_id in letter_ids]


def register(cli: click.Group) -> None:
    for command in (dlq, replay):
        cli.add_command(command)

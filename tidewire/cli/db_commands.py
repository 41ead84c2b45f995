"""``tidewire db upgrade|downgrade|current``: schema migrations.

Alembic is imported inside the commands: it would add a second to every other command's start-up.
"""

from __future__ import annotations

import click

from tidewire.cli.app import CliContext, json_option, pass_cli_context, print_json


@click.group()
def db() -> None:
    """Apply or revert schema migrations (Alembic)."""


@db.command()
@click.argument("revision", default="head")
@json_option
@pass_cli_context
def upgrade(context: CliContext, revision: str, as_json: bool) -> None:
    """Migrate up to REVISION (default: the latest)."""
    from tidewire import database

    database.upgrade(context.settings.postgres, revision)
    _print_revision(database.current_revision(context.settings.postgres), as_json)


@db.command()
@click.argument("revision")
@json_option
@pass_cli_context
def downgrade(context: CliContext, revision: str, as_json: bool) -> None:
    """Revert migrations down to REVISION (`base` reverts all)."""
    from tidewire import database

    database.downgrade(context.settings.postgres, revision)
    _print_revision(database.current_revision(context.settings.postgres), as_json)


def _print_revision(revision: str | None, as_json: bool) -> None:
    if as_json:
        print_json({"revision": revision})
    else:
        click.echo(f"database at {revision or 'base'}")


@db.command()
@json_option
@pass_cli_context
def current(context: CliContext, as_json: bool) -> None:
    """Print the revision the database is at."""
    from tidewire import database

    revision = database.current_revision(context.settings.postgres)
    if as_json:
        print_json({"revision": revision})
    else:
        click.echo(revision or "base")


def register(cli: click.Group) -> None:
    cli.add_command(db)

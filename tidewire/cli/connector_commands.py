"""``tidewire connector apply|status|restart|pause|resume|delete``: the Debezium connectors."""

from __future__ import annotations

from dataclasses import asdict

import click

from connectors.apply import apply_default_connector, connect_client
from connectors.debezium_config import default_connector_spec
from tidewire.cli.app import CliContext, json_option, pass_cli_context, print_json

name_option = click.option(
    "--name", default=None, help="Connector name (default: the default pipeline's connector)."
)


@click.group()
def connector() -> None:
    """Manage the Debezium connectors through the Kafka Connect REST API."""


@connector.command()
@json_option
@pass_cli_context
def apply(context: CliContext, as_json: bool) -> None:
    """Validate, create or update the connectors, and wait until they run."""
    state = apply_default_connector(context.settings)
    if as_json:
        print_json(asdict(state))
    else:
        click.echo(f"{state.name}: {state.state}")


@connector.command("status")
@name_option
@json_option
@pass_cli_context
def connector_status(context: CliContext, name: str | None, as_json: bool) -> None:
    """Show the connector's and its tasks' states."""
    state = connect_client(context.settings).status(name or default_connector_spec().name)
    if as_json:
        print_json(asdict(state))
        return
    click.echo(f"{state.name}: {state.state} on {state.worker_id}")
    for task in state.tasks:
        click.echo(f"  task {task.get('id')}: {task.get('state')}")


def _simple_action(verb: str, help_text: str) -> click.Command:
    @connector.command(verb, help=help_text)
    @name_option
    @pass_cli_context
    def action(context: CliContext, name: str | None) -> None:
        connector_name = name or default_connector_spec().name
        getattr(connect_client(context.settings), verb)(connector_name)
        click.echo(f"{connector_name}: {verb} requested")

    return action


_simple_action("restart", "Restart the connector and its failed tasks.")
_simple_action("pause", "Pause the connector (the replication slot keeps its position).")
_simple_action("resume", "Resume a paused connector.")
_simple_action("delete", "Delete the connector (its replication slot stays in Postgres).")


def register(cli: click.Group) -> None:
    cli.add_command(connector)

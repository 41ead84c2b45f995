"""``tidewire connector apply|status|restart|pause|resume|delete``: the Debezium connector.

Tidewire runs one connector that captures the tables of every pipeline; each command acts on it,
or on the connector named with ``--name``. With ``--json`` a command prints the state object of its
connector (a list only if it acted on several).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from connectors.apply import apply_connectors, connect_client, connector_names
from connectors.connect_client import ConnectorState
from connectors.replication_slot import SlotHealth, read_slot_health
from tidewire.cli.app import CliContext, json_option, pass_cli_context, print_json

name_option = click.option(
    "--name", default=None, help="Connector name (default: the connector of all pipelines)."
)


@click.group()
def connector() -> None:
    """Manage the Debezium connector through the Kafka Connect REST API."""


def _names(context: CliContext, name: str | None) -> list[str]:
    return [name] if name else connector_names(context.settings)


def _print_states(states: list[ConnectorState], as_json: bool, slots: list[SlotHealth] | None = None) -> None:
    """Each connector's state (and, when given, its replication slot's, in the same order)."""
    if as_json:
        documents: list[dict[str, Any]] = [asdict(state) for state in states]
        for document, slot in zip(documents, slots or [], strict=False):
            document["slot"] = asdict(slot)
        print_json(documents[0] if len(documents) == 1 else documents)
        return
    slot_of = dict(zip((state.name for state in states), slots or [], strict=False))
    for state in states:
        click.echo(f"{state.name}: {state.state} on {state.worker_id}")
        for task in state.tasks:
            click.echo(f"  task {task.get('id')}: {task.get('state')}")
        health = slot_of.get(state.name)
        if health is not None:
            click.echo(f"  {health.describe()}")
            if health.advice is not None:
                click.echo(f"  ! {health.advice}")


@connector.command()
@json_option
@pass_cli_context
def apply(context: CliContext, as_json: bool) -> None:
    """Check the pipelines against the database, sync the publication, create or update the connector."""
    _print_states(apply_connectors(context.settings), as_json)


@connector.command("status")
@name_option
@json_option
@pass_cli_context
def connector_status(context: CliContext, name: str | None, as_json: bool) -> None:
    """Show the connector's and its tasks' states, and its replication slot's (WAL it holds back)."""
    client = connect_client(context.settings)
    states = [client.status(connector_name) for connector_name in _names(context, name)]
    slots = [
        read_slot_health(context.settings.postgres, client.get_config(state.name).get("slot.name", ""))
        for state in states
    ]
    _print_states(states, as_json, slots)


def _simple_action(verb: str, help_text: str) -> click.Command:
    @connector.command(verb, help=help_text)
    @name_option
    @json_option
    @pass_cli_context
    def action(context: CliContext, name: str | None, as_json: bool) -> None:
        client = connect_client(context.settings)
        names = _names(context, name)
        for connector_name in names:
            getattr(client, verb)(connector_name)
        if as_json:
            print_json({"connectors": names, "requested": verb})
        else:
            for connector_name in names:
                click.echo(f"{connector_name}: {verb} requested")

    return action


_simple_action("restart", "Restart the connector and its failed tasks.")
_simple_action("pause", "Pause the connector (the replication slot keeps its position; WAL accumulates).")
_simple_action("resume", "Resume a paused connector.")
_simple_action(
    "delete", "Delete the connector (its replication slot stays in Postgres: drop it if you are done)."
)


def register(cli: click.Group) -> None:
    cli.add_command(connector)

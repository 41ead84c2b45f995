"""``tidewire up|down|status|install-jars``: the local stack."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from tidewire.cli.app import CliContext, json_option, pass_cli_context, print_json
from tidewire.runtime.jars import install_jars
from tidewire.runtime.stack import RUNNING, LocalStack
from tidewire.runtime.state import StatePaths

console = Console(stderr=True, highlight=False)


@click.command("install-jars")
@pass_cli_context
def install_jars_command(context: CliContext) -> None:
    """Resolve the Kafka, Connect and Debezium jars from Maven Central (run by `make setup`)."""
    settings = context.settings
    log_file = StatePaths(settings.state_dir).log_file("maven")
    with console.status("resolving Kafka, Kafka Connect and Debezium jars with Maven"):
        layout = install_jars(Path.cwd(), settings.jars_dir, log_file)
    console.print(f"[green]✓[/] jars in {layout.root}")


@click.command()
@click.option(
    "--detach", is_flag=True, help="Return once everything is ready; stop later with `tidewire down`."
)
@click.option("--demo", is_flag=True, help="Then run the demo: write rows as an upstream writer would.")
@pass_cli_context
def up(context: CliContext, detach: bool, demo: bool) -> None:
    """Start Postgres, Kafka, Kafka Connect, the stream workers and the API on loopback.

    What already runs is left alone; what a crash left behind is cleaned up first.
    """
    from connectors.apply import apply_connectors

    stack = LocalStack(context.settings)
    report = stack.up(progress=_print_progress)
    # In the foreground, whatever ends the command stops the stack: Ctrl-C while waiting, but also
    # Ctrl-C during the demo's indexing, or a connector or demo error.
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a process manager's stop is a Ctrl-C
    try:
        if report.cleaned_stale:
            console.print(f"cleaned up records of a crashed run: {', '.join(report.cleaned_stale)}")
        with console.status("connector: applying"):
            states = apply_connectors(context.settings)
        for state in states:
            console.print(f"[green]✓[/] connector {state.name}: {state.state}")
        _print_summary(stack)
        if demo:
            from tidewire.demo import run_demo

            run_demo(context.settings, console)
        if detach:
            return
        serve_until_interrupted()
    finally:
        if not detach:
            # An impatient second Ctrl-C (or a process manager's repeated SIGTERM) must not abandon the
            # stop half way and leave services running; every service's stop is bounded in time.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            console.print("stopping… (further interrupts are ignored until every service has stopped)")
            stack.down(progress=_print_progress)


@click.command()
@click.option("--purge", is_flag=True, help="Also delete the state directory (all data and logs).")
@pass_cli_context
def down(context: CliContext, purge: bool) -> None:
    """Stop every service of the local stack, leaving no process behind."""
    stopped = LocalStack(context.settings).down(purge=purge, progress=_print_progress)
    if not stopped and not purge:
        console.print("nothing was running")


@click.command()
@json_option
@pass_cli_context
def status(context: CliContext, as_json: bool) -> None:
    """Show each service's state, the addresses to use, and where the logs are."""
    document = LocalStack(context.settings).status()
    if as_json:
        print_json(document)
        return
    table = Table("service", "state", "log")
    for name, state in document["services"].items():
        colour = "green" if state == RUNNING else "red"
        table.add_row(name, f"[{colour}]{state}[/]", document["logs"][name])
    Console().print(table)
    for key in ("postgres_dsn", "kafka_bootstrap", "connect_url", "api_url", "state_dir"):
        click.echo(f"{key}: {document[key]}")


def _print_progress(message: str) -> None:
    marker = "[green]✓[/]" if "ready" in message or "stopped" in message else "·"
    console.print(f"{marker} {message}")


def _print_summary(stack: LocalStack) -> None:
    document = stack.status()
    console.print(
        f"Postgres   {document['postgres_dsn']}\n"
        f"Kafka      {document['kafka_bootstrap']}\n"
        f"Connect    {document['connect_url']}\n"
        f"API        {document['api_url']}  (OpenAPI: {document['api_url']}/docs)\n"
        f"Logs       {Path(document['state_dir']) / 'logs'}"
    )


def serve_until_interrupted() -> None:
    """Say the stack is serving, then block until Ctrl-C or SIGTERM, and return normally on it."""
    try:
        # The line is printed inside the guard: whoever waits for it may interrupt at once, and an
        # interrupt between the print and the guard would end `up` with 130 instead of a clean stop.
        console.print("serving until Ctrl-C (then everything stops; use --detach to keep it running)")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return


def register(cli: click.Group) -> None:
    for command in (up, down, status, install_jars_command):
        cli.add_command(command)

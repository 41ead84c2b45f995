"""``tidewire worker``: one stream worker process (run N copies for N members of the consumer group)."""

from __future__ import annotations

import click

from tidewire.cli.app import CliContext, log_as_a_service, pass_cli_context
from tidewire.errors import ConfigurationError


@click.command()
@click.option(
    "--web-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Faust web server port (default: streams.web_port; 0: off). Each copy needs its own.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Prometheus /metrics port (default: streams.metrics_port; 0: off). Each copy needs its own.",
)
@click.option(
    "--stack",
    "stack_dir",
    default=None,
    hidden=True,
    help="State directory of the local stack that started this worker (marks it for `tidewire down`).",
)
@pass_cli_context
def worker(
    context: CliContext, web_port: int | None, metrics_port: int | None, stack_dir: str | None
) -> None:
    """Run a stream worker (embed, ingest and webhooks agents) in the streams consumer group."""
    from streams.worker import run_worker

    settings = context.settings
    web = settings.streams.web_port if web_port is None else web_port
    metrics = settings.streams.metrics_port if metrics_port is None else metrics_port
    if web and metrics and web == metrics:
        raise ConfigurationError(f"--web-port and --metrics-port are both {web}; give them different ports")
    log_as_a_service("DEBUG" if context.debug else settings.log_level)
    run_worker(settings, web_port=web or None, metrics_port=metrics or None, debug=context.debug)


def register(cli: click.Group) -> None:
    cli.add_command(worker)

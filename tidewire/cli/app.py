"""The root ``tidewire`` click group and the context every command receives."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from tidewire.kafka_clients import CLIENT_LOGGER_NAME
from tidewire.settings import Settings, load_settings

# Loggers of libraries whose lines only repeat what a command's own one-line error says: librdkafka's
# refused connections, urllib3's retries of Kafka Connect. --debug shows them; the long-running
# services (API, workers) log them at their own level (log_as_a_service).
_REPEATING_LOGGERS = (CLIENT_LOGGER_NAME, "urllib3")


@dataclass
class CliContext:
    """What the root group hands every command: the settings, read once, and output flags."""

    config_file: Path | None
    debug: bool
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        # Read lazily so `tidewire --help` works even with a broken config file.
        if self._settings is None:
            self._settings = load_settings(self.config_file)
        return self._settings


pass_cli_context = click.make_pass_decorator(CliContext)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Settings file (default: ./tidewire.toml, or $TIDEWIRE_CONFIG).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(package_name="tidewire")
@click.pass_context
def cli(context: click.Context, config_file: Path | None, debug: bool) -> None:
    """Tidewire: keep a vector index of your Postgres data fresh."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in _REPEATING_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.CRITICAL)
    if config_file is not None:
        # The processes a command starts (`up` starts the API and the workers) read the same file.
        os.environ["TIDEWIRE_CONFIG"] = str(config_file.resolve())
    context.obj = CliContext(config_file=config_file, debug=debug)


def log_as_a_service(level: str) -> None:
    """A long-running command (the API, a worker) logs at ``level``, its libraries' lines included."""
    logging.getLogger().setLevel(level)
    for name in _REPEATING_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)


def print_json(document: Any) -> None:
    """Print one JSON document on stdout (the contract of every ``--json`` flag)."""
    click.echo(json.dumps(document, indent=2, sort_keys=True, default=str))


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")

"""The ``tidewire`` command line.

Each command group lives in its own module and registers itself on :data:`cli`.
:func:`main` is the entry point: it turns every error into one line on stderr and
a non-zero exit, unless ``--debug`` asks for the traceback.
"""

from __future__ import annotations

import sys

import click

# Importing a command module registers its commands on `cli`.
from tidewire.cli import (  # noqa: F401  # noqa: E402, I001
    api_commands,
    bench_commands,
    connector_commands,
    db_commands,
    dlq_commands,
    embedding_commands,
    operations_commands,
    stack_commands,
    worker_commands,
)
from tidewire.cli.app import CliContext, cli
from tidewire.errors import TidewireError, first_line

for _module in (
    stack_commands,
    db_commands,
    connector_commands,
    worker_commands,
    dlq_commands,
    api_commands,
    operations_commands,
):
    _module.register(cli)

__all__ = ["CliContext", "cli", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="tidewire", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.exceptions.Exit as exit_request:
        return exit_request.exit_code
    except click.UsageError as error:
        # Click would print the usage and a blank line too; the contract is one line.
        command = error.ctx.command_path if error.ctx is not None else "tidewire"
        message = " ".join(error.format_message().split())
        click.echo(f"error: {message} (see '{command} -h')", err=True)
        return error.exit_code
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except TidewireError as error:
        if debug:
            raise
        # One line: a message that carries more (a log tail after "see <log file>") shows it with --debug.
        click.echo(f"error: {first_line(error.message)}", err=True)
        return error.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as error:  # the last line of defence: one line, never a traceback by default
        if debug:
            raise
        click.echo(
            f"error: unexpected {type(error).__name__}: {first_line(str(error))} (rerun with --debug for details)",
            err=True,
        )
        return 1
    return 0


def run() -> None:  # pragma: no cover - console script shim
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``tidewire serve`` (the read API under uvicorn), ``tidewire keys create|list|revoke`` and
``tidewire answers prune``."""

from __future__ import annotations

from datetime import timedelta

import click

from tidewire.cli.app import CliContext, json_option, log_as_a_service, pass_cli_context, print_json


@click.command()
@click.option("--host", default=None, help="Listen address (default: api.host).")
@click.option("--port", type=int, default=None, help="Listen port (default: api.port).")
@click.option(
    "--stack",
    "stack_dir",
    default=None,
    hidden=True,
    help="State directory of the local stack that started this API (marks it for `tidewire down`).",
)
@pass_cli_context
def serve(context: CliContext, host: str | None, port: int | None, stack_dir: str | None) -> None:
    """Serve the read API (search, chat, events) until interrupted."""
    from api.app import create_app  # imported here: the other commands do not need the web stack
    from api.server import serve_with_uvicorn

    settings = context.settings
    log_as_a_service(settings.log_level)
    serve_with_uvicorn(
        create_app(settings),
        host=host or settings.api.host,
        port=port or settings.api.port,
        api=settings.api,
        log_level=settings.log_level,
    )


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (each key reads exactly one tenant)."""


def _store(context: CliContext):
    from api.auth import KeyStore

    settings = context.settings
    pepper = settings.api.key_pepper.get_secret_value().encode() if settings.api.key_pepper else None
    return KeyStore(settings.postgres, pepper=pepper)


@keys.command()
@click.option("--tenant", required=True, help="The tenant the key may read.")
@click.option("--name", default=None, help="A label to recognise the key by in `keys list`.")
@json_option
@pass_cli_context
def create(context: CliContext, tenant: str, name: str | None, as_json: bool) -> None:
    """Create a key and print it — the only time it is shown."""
    new_key = _store(context).create(tenant, name=name)
    if as_json:
        print_json({"tenant": new_key.tenant_id, "key": new_key.key, "key_id": new_key.key_id})
    else:
        click.echo(new_key.key)
        click.echo(
            f"(key id {new_key.key_id}, tenant {new_key.tenant_id}; store it now: it is not kept)", err=True
        )


@keys.command(name="list")
@click.option("--tenant", default=None, help="Only this tenant's keys.")
@json_option
@pass_cli_context
def list_keys(context: CliContext, tenant: str | None, as_json: bool) -> None:
    """List keys (ids, tenants, state; never the secrets)."""
    rows = _store(context).list(tenant)
    if as_json:
        print_json({"keys": rows})
        return
    if not rows:
        click.echo("no API keys; create one with `tidewire keys create --tenant T`")
    for row in rows:
        state = f"revoked {row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked"] else "active"
        label = f" ({row['name']})" if row["name"] else ""
        click.echo(
            f"{row['key_id']}  {row['tenant_id']}  {state}  created {row['created_at']:%Y-%m-%d %H:%M}{label}"
        )


@keys.command()
@click.argument("key_id")
@json_option
@pass_cli_context
def revoke(context: CliContext, key_id: str, as_json: bool) -> None:
    """Revoke KEY_ID (the id `keys list` shows, or the whole key). Takes effect within api.key_cache_ttl_s."""
    revoked_at = _store(context).revoke(key_id)
    if as_json:
        print_json({"key_id": key_id, "revoked_at": revoked_at})
    else:
        click.echo(f"revoked {key_id}")


@click.group()
def answers() -> None:
    """Stored chat answers (the semantic cache)."""


@answers.command()
@click.option(
    "--older-than-days",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Delete answers older than this many days (default: api.answer_retention_days).",
)
@json_option
@pass_cli_context
def prune(context: CliContext, older_than_days: float | None, as_json: bool) -> None:
    """Delete every tenant's stored chat answers past their retention; run it daily, e.g. from cron."""
    from tidewire.answer_retention import prune_answers

    settings = context.settings
    days = settings.api.answer_retention_days if older_than_days is None else older_than_days
    deleted = prune_answers(settings.postgres, timedelta(days=days))
    if as_json:
        print_json({"deleted": deleted, "older_than_days": days})
    else:
        click.echo(f"deleted {deleted} answer(s) older than {days:g} day(s)")


def register(cli: click.Group) -> None:
    cli.add_command(serve)
    cli.add_command(keys)
    cli.add_command(answers)

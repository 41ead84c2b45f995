"""Database access shared by every process: connection pools and schema migrations (Alembic)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg_pool import ConnectionPool
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError as SqlAlchemyOperationalError

from tidewire.errors import ServiceError, StorageError
from tidewire.settings import PostgresSettings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(settings: PostgresSettings) -> Config:
    """An Alembic configuration built from settings, so no alembic.ini has to be found on disk."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would mangle a '%' in the password.
    config.set_main_option("sqlalchemy.url", settings.sqlalchemy_url().replace("%", "%%"))
    config.attributes["replication_role"] = settings.replication_user
    config.attributes["api_role"] = settings.api_user
    # Only for migration 0005, which creates the API's role where the migrating role may create roles.
    config.attributes["api_password"] = settings.api_password.get_secret_value()
    return config


def running_migration_config() -> Config:
    """The Alembic configuration of the migration running now (:func:`alembic_config`'s), for the
    values it carries (role names, the API password) and for :func:`revision_module`."""
    from alembic import op  # bound only while Alembic runs a migration

    config = op.get_context().config
    if config is None:
        raise StorageError("migrations run only through `tidewire db upgrade` / `tidewire db downgrade`")
    return config


def revision_module(revision_id: str) -> ModuleType:
    """An earlier (frozen) migration's module, for a later one that builds on or restores its
    definitions instead of copying them (called while a migration runs)."""
    script = ScriptDirectory.from_config(running_migration_config()).get_revision(revision_id)
    if script is None:
        raise StorageError(
            f"migration {revision_id} is missing from the migrations folder; reinstall tidewire"
        )
    return script.module


def changed_definition(
    definition: str, changes: Sequence[tuple[str, str]], *, base: str, revision: str
) -> str:
    """``definition`` (SQL of migration ``base``) with each ``(old, new)`` replacement of migration
    ``revision`` made; each ``old`` must occur exactly once, or the installed migrations do not match."""
    for old, new in changes:
        if definition.count(old) != 1:
            raise StorageError(
                f"migration {base}'s definition is not the one {revision} changes; reinstall tidewire"
            )
        definition = definition.replace(old, new)
    return definition


def upgrade(settings: PostgresSettings, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    _run_alembic(command.upgrade, settings, revision)


def downgrade(settings: PostgresSettings, revision: str) -> None:
    """Revert migrations down to ``revision`` (``base`` reverts all)."""
    _run_alembic(command.downgrade, settings, revision)


def current_revision(settings: PostgresSettings) -> str | None:
    """The revision the database is at, or None before the first migration."""
    engine = create_engine(settings.sqlalchemy_url())
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SqlAlchemyOperationalError as error:
        raise ServiceError.postgres_unreachable(settings, error.orig or error) from None
    finally:
        engine.dispose()


def _run_alembic(action, settings: PostgresSettings, revision: str) -> None:
    try:
        action(alembic_config(settings), revision)
    except SqlAlchemyOperationalError as error:
        raise ServiceError.postgres_unreachable(settings, error.orig or error, "to migrate") from None


def connection_pool(settings: PostgresSettings, *, name: str) -> ConnectionPool:
    """A psycopg pool of the application role; open it with ``with pool:`` or ``pool.open()``."""
    return ConnectionPool(
        settings.dsn(),
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        name=name,
        open=False,
    )

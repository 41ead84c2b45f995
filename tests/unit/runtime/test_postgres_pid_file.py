"""A ``postmaster.pid`` left by a server that died, whose pid another program holds now (pid reuse after a
host restart): not our server, never signalled, and removed so postgres can start again."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tidewire.runtime.postgres import PostgresServer, is_postmaster_of
from tidewire.runtime.state import StatePaths
from tidewire.settings import PostgresSettings


@pytest.fixture
def other_program() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "60"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def _server_with_pid_file(tmp_path: Path, pid: int) -> PostgresServer:
    server = PostgresServer(PostgresSettings(), StatePaths(tmp_path / ".tidewire"))
    server.data_dir.mkdir(parents=True)
    (server.data_dir / "postmaster.pid").write_text(f"{pid}\n{server.data_dir}\n1700000000\n55432\n")
    return server


def test_a_pid_file_naming_another_program_is_not_a_running_server(
    tmp_path: Path, other_program: subprocess.Popen[bytes]
) -> None:
    server = _server_with_pid_file(tmp_path, other_program.pid)
    assert not server.status().running


def test_stop_never_signals_the_program_holding_a_stale_pid_and_removes_the_pid_file(
    tmp_path: Path, other_program: subprocess.Popen[bytes]
) -> None:
    server = _server_with_pid_file(tmp_path, other_program.pid)
    server.stop()
    assert psutil.Process(other_program.pid).status() != psutil.STATUS_ZOMBIE
    assert other_program.poll() is None
    assert not (server.data_dir / "postmaster.pid").exists()


def test_a_pid_file_naming_a_dead_pid_is_not_a_running_server(tmp_path: Path) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    assert not _server_with_pid_file(tmp_path, finished.pid).status().running


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["/opt/pg/bin/postgres", "-D", "/srv/data"], True),
        (["/opt/pg/bin/postgres", "-D/srv/data"], True),
        (["/opt/pg/bin/postgres", "-D", "/srv/data2"], False),
        (["sleep", "-D", "/srv/data"], False),
        ([], False),
    ],
)
def test_is_postmaster_of_compares_the_program_and_the_whole_data_directory(
    arguments: list[str], expected: bool
) -> None:
    assert is_postmaster_of(arguments, Path("/srv/data")) is expected

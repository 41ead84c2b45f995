"""Lifecycle of a second, isolated stack (own state directory and ports): start, crash, recover, stop.

It is separate from the session's shared stack so that stopping and killing it cannot
disturb the other tests. The tests in this module run in order.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from alembic.script import ScriptDirectory

from tests.conftest import REPO_ROOT
from tests.integration.conftest import TIDEWIRE, CliRunner
from tidewire.database import alembic_config
from tidewire.runtime.readiness import port_is_free
from tidewire.settings import load_settings

PORTS = {
    "TIDEWIRE_POSTGRES__PORT": 55532,
    "TIDEWIRE_KAFKA__PORT": 19192,
    "TIDEWIRE_KAFKA__CONTROLLER_PORT": 19193,
    "TIDEWIRE_CONNECT__PORT": 18183,
    "TIDEWIRE_STREAMS__WEB_PORT": 16166,
    "TIDEWIRE_STREAMS__METRICS_PORT": 19566,
    "TIDEWIRE_API__PORT": 18100,
}


@pytest.fixture(scope="module")
def isolated(run_cli: CliRunner) -> Iterator[dict[str, str]]:
    # Not pytest's tmp_path: another pytest session may prune those folders while this stack runs.
    parent = Path(tempfile.mkdtemp(prefix="tidewire-lifecycle-"))
    env = {name: str(port) for name, port in PORTS.items()}
    env["TIDEWIRE_STATE_DIR"] = str(parent / "state")
    yield env
    run_cli("down", "--purge", env=env)
    shutil.rmtree(parent, ignore_errors=True)


def _processes_of(state_dir: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if state_dir in " ".join(process.info.get("cmdline") or []):
            found.append(process)
    return found


def _status(run_cli: CliRunner, env: dict[str, str]) -> dict:
    result = run_cli("status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_port_in_use_is_one_clear_line_and_starts_nothing(
    isolated: dict[str, str], run_cli: CliRunner
) -> None:
    with socket.socket() as squatter:
        # A previous run's connections may linger in TIME_WAIT on this port.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", PORTS["TIDEWIRE_KAFKA__PORT"]))
        squatter.listen()
        result = run_cli("up", "--detach", env=isolated)
    assert result.returncode == 3
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "port in use: 127.0.0.1:19192 (kafka.port)" in result.stderr
    assert "Traceback" not in result.stderr
    assert _processes_of(isolated["TIDEWIRE_STATE_DIR"]) == []


def test_up_starts_every_service(isolated: dict[str, str], run_cli: CliRunner) -> None:
    result = run_cli("up", "--detach", env=isolated)
    assert result.returncode == 0, result.stderr
    assert _status(run_cli, isolated)["services"] == {
        "postgres": "running",
        "kafka": "running",
        "connect": "running",
        "worker-0": "running",
        "api": "running",
    }
    logs = Path(isolated["TIDEWIRE_STATE_DIR"]) / "logs"
    assert {"postgres.log", "kafka.log", "connect.log", "worker-0.log", "api.log"} <= {
        path.name for path in logs.iterdir()
    }


def test_migrations_are_reversible(isolated: dict[str, str], run_cli: CliRunner) -> None:
    assert json.loads(run_cli("db", "downgrade", "base", "--json", env=isolated).stdout) == {"revision": None}
    assert json.loads(run_cli("db", "current", "--json", env=isolated).stdout)["revision"] is None
    upgraded = run_cli("db", "upgrade", env=isolated)
    head = ScriptDirectory.from_config(alembic_config(load_settings().postgres)).get_current_head()
    assert upgraded.returncode == 0 and upgraded.stdout.strip() == f"database at {head}"
    assert json.loads(run_cli("db", "current", "--json", env=isolated).stdout)["revision"] == head
    assert json.loads(run_cli("db", "upgrade", "--json", env=isolated).stdout) == {"revision": head}


def test_up_recovers_from_a_crashed_run(isolated: dict[str, str], run_cli: CliRunner) -> None:
    victims = _processes_of(isolated["TIDEWIRE_STATE_DIR"])
    assert victims
    for process in victims:
        process.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=10)
    assert set(_status(run_cli, isolated)["services"].values()) == {"stopped"}

    result = run_cli("up", "--detach", env=isolated)

    assert result.returncode == 0, result.stderr
    assert "cleaned up records of a crashed run" in result.stderr
    states = _status(run_cli, isolated)["services"]
    assert set(states.values()) == {"running"}, (states, result.stderr)


def test_a_second_interrupt_while_a_foreground_up_stops_leaves_nothing_running(
    isolated: dict[str, str], run_cli: CliRunner
) -> None:
    """A foreground `up` stops the whole stack when interrupted. A second interrupt during that stop (an
    impatient Ctrl-C, a process manager's repeated SIGTERM) is ignored instead of abandoning the stop
    half way with services still running."""
    process = subprocess.Popen(
        [TIDEWIRE, "up"],
        env={**os.environ, **isolated},
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or ()], daemon=True).start()

    def wait_for_line(fragment: str, timeout_s: float = 240) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if fragment in lines.get(timeout=1):
                    return
            except queue.Empty:
                assert process.poll() is None, f"`up` exited ({process.returncode}) before {fragment!r}"
        raise AssertionError(f"no {fragment!r} within {timeout_s}s")

    try:
        wait_for_line("serving until Ctrl-C")
        process.send_signal(signal.SIGTERM)
        wait_for_line("stopping")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0  # the stop completed, as after a single interrupt
    assert set(_status(run_cli, isolated)["services"].values()) == {"stopped"}
    assert _processes_of(isolated["TIDEWIRE_STATE_DIR"]) == []


def test_down_leaves_no_process_and_frees_the_ports(isolated: dict[str, str], run_cli: CliRunner) -> None:
    result = run_cli("down", env=isolated)
    assert result.returncode == 0, result.stderr
    assert _processes_of(isolated["TIDEWIRE_STATE_DIR"]) == []
    for port in PORTS.values():
        assert port_is_free("127.0.0.1", port), port
    assert set(_status(run_cli, isolated)["services"].values()) == {"stopped"}


def test_down_purge_removes_the_state_directory(isolated: dict[str, str], run_cli: CliRunner) -> None:
    assert run_cli("down", "--purge", env=isolated).returncode == 0
    assert not os.path.exists(isolated["TIDEWIRE_STATE_DIR"])

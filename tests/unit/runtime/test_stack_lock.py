"""One `up` or `down` at a time per state directory: a second is refused in one line naming the holder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tidewire.errors import ServiceError
from tidewire.runtime.stack_lock import stack_lock
from tidewire.runtime.state import StatePaths

TIDEWIRE = str(Path(sys.executable).with_name("tidewire"))


def _tidewire(state_dir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TIDEWIRE, *arguments],
        capture_output=True,
        text=True,
        env={**os.environ, "TIDEWIRE_STATE_DIR": str(state_dir)},
        cwd=REPO_ROOT,
        timeout=120,
    )


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    lock_file = StatePaths(tmp_path / ".tidewire").stack_lock
    refused = pytest.raises(ServiceError, match=rf"`tidewire up` \(pid {os.getpid()}\) is changing the stack")
    with stack_lock(lock_file, "up"), refused, stack_lock(lock_file, "down"):
        pass


def test_the_lock_is_free_again_once_its_holder_is_done(tmp_path: Path) -> None:
    lock_file = StatePaths(tmp_path / ".tidewire").stack_lock
    with stack_lock(lock_file, "up"):
        pass
    with stack_lock(lock_file, "down"):
        assert f"(pid {os.getpid()})" in lock_file.read_text()


@pytest.mark.parametrize("command", [["up", "--detach"], ["down"]])
def test_the_cli_refuses_up_and_down_while_another_one_changes_the_stack(
    tmp_path: Path, command: list[str]
) -> None:
    state_dir = tmp_path / ".tidewire"
    with stack_lock(StatePaths(state_dir).stack_lock, "up"):
        result = _tidewire(state_dir, *command)
    assert result.returncode == 4, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"`tidewire up` (pid {os.getpid()}) is changing the stack" in result.stderr
    assert f"run `tidewire {command[0]}` again" in result.stderr


def test_down_where_no_stack_ever_ran_creates_no_state_directory(tmp_path: Path) -> None:
    state_dir = tmp_path / ".tidewire"
    result = _tidewire(state_dir, "down")
    assert result.returncode == 0, result.stderr
    assert not state_dir.exists()

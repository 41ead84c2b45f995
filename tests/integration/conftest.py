"""The real stack, started once per test run (or reused when a developer left one running)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connectors.apply import apply_connectors
from tests.conftest import REPO_ROOT
from tidewire.runtime.stack import RUNNING, LocalStack
from tidewire.settings import Settings, load_settings

TIDEWIRE = str(Path(sys.executable).with_name("tidewire"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/integration needs the real stack.
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The settings the suite's stack runs with (the same a developer's `tidewire up` uses)."""
    return load_settings()


@pytest.fixture(scope="session")
def local_stack(settings: Settings) -> Iterator[LocalStack]:
    """Postgres, Kafka and Connect with the default connector applied; stopped at the end if we started it."""
    stack = LocalStack(settings)
    already_running = all(state == RUNNING for state in stack.service_states().values())
    if not already_running:
        stack.up()
    apply_connectors(settings)
    yield stack
    if not already_running:
        stack.down()


CliRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def run_cli() -> CliRunner:
    """Run the installed `tidewire` command as a user would; returns the completed process."""

    def run(
        *arguments: str, env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TIDEWIRE, *arguments],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO_ROOT,
            env={**os.environ, **(env or {})},
            check=False,
        )

    return run

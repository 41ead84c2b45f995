"""Which processes `tidewire down` takes for its own: whole arguments, never a path's prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidewire.runtime.stack import is_stack_process
from tidewire.runtime.state import StatePaths

PATHS = StatePaths(Path("/srv/app/.tidewire"))
DATA = "/srv/app/.tidewire/postgres/data"


@pytest.mark.parametrize(
    "arguments",
    [
        ["/usr/bin/java", "-Xmx512m", "-Dtidewire.state=/srv/app/.tidewire", "kafka.Kafka"],
        [
            "/venv/bin/python",
            "-c",
            "from tidewire.cli import run; run()",
            "worker",
            "--stack",
            "/srv/app/.tidewire",
        ],
        ["/opt/pg/bin/postgres", "-D", DATA],
        ["/opt/pg/bin/postgres", f"-D{DATA}"],
    ],
)
def test_the_stacks_own_processes_are_recognised(arguments: list[str]) -> None:
    assert is_stack_process(arguments, PATHS)


@pytest.mark.parametrize(
    "arguments",
    [
        # Another stack whose state directory starts with this one's path.
        ["/usr/bin/java", "-Dtidewire.state=/srv/app/.tidewire2", "kafka.Kafka"],
        ["/venv/bin/python", "-c", "run()", "serve", "--stack", "/srv/app/.tidewire-test"],
        ["/opt/pg/bin/postgres", "-D", "/srv/app/.tidewire2/postgres/data"],
        # Not a server of its data: someone editing its configuration.
        ["vim", f"{DATA}/postgresql.conf"],
        ["less", "-D", DATA],
    ],
)
def test_a_process_that_only_mentions_the_path_is_left_alone(arguments: list[str]) -> None:
    assert not is_stack_process(arguments, PATHS)

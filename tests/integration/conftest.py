"""The real stack, started once per test run (or reused when a developer left one running)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from connectors.apply import apply_connectors
from tests.conftest import REPO_ROOT
from tidewire.runtime.stack import RUNNING, LocalStack
from tidewire.settings import Settings, load_settings

TIDEWIRE = str(Path(sys.executable).with_name("tidewire"))
# The ids of the source rows and the tenant names tests write start with `fresh_test_prefix()`.
TEST_NAME_PATTERN = "^it-[0-9a-f]{8}-"


def fresh_test_prefix() -> str:
    """A prefix no other test run uses, matched by ``TEST_NAME_PATTERN`` (the end-of-run cleanup)."""
    return f"it-{uuid.uuid4().hex[:8]}-"


DROP_EMPTY_TENANT_PARTITIONS = """
DO $$
DECLARE
  v_partition regclass;
  v_empty boolean;
BEGIN
  FOR v_partition IN
    SELECT inhrelid::regclass FROM pg_inherits
    WHERE inhparent = 'public.tidewire_chunks'::regclass
      AND inhrelid <> 'public.tidewire_chunks_default'::regclass
  LOOP
    EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM %s)', v_partition) INTO v_empty;
    IF v_empty THEN
      EXECUTE format('DROP TABLE %s', v_partition);
    END IF;
  END LOOP;
END
$$
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/integration needs the real stack.
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The settings the suite's stack runs with (the same a developer's `tidewire up` uses)."""
    return load_settings()


@dataclass(frozen=True)
class StackOrigin:
    """How this session got its stack, recorded before any test ran."""

    started_by_session: bool  # False: it reuses a stack that was already running
    documents_rows_at_start: int  # rows of public.documents at that moment

    @property
    def documents_owned_by_session(self) -> bool:
        """Every row of ``public.documents`` was written by this run's tests.

        Not so on a stack that was already running (it may serve a developer or another test run)
        or that started on a state directory holding rows (the demo corpus, a developer's data).
        Tests that destroy shared rows (a TRUNCATE of ``public.documents``) skip otherwise.
        """
        return self.started_by_session and self.documents_rows_at_start == 0


STACK_ORIGIN = pytest.StashKey[StackOrigin]()


@pytest.fixture(scope="session")
def local_stack(settings: Settings, request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    """Postgres, Kafka and Connect with the default connector applied; stopped at the end if we started it."""
    stack = LocalStack(settings)
    already_running = all(state == RUNNING for state in stack.service_states().values())
    if not already_running:
        stack.up()
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        row = connection.execute("SELECT count(*) FROM public.documents").fetchone()
    request.config.stash[STACK_ORIGIN] = StackOrigin(not already_running, int(row[0]) if row else 0)
    apply_connectors(settings)
    yield stack
    if not already_running:
        stack.down()
        return
    # On a stack that outlives the run, the source rows the tests wrote (ids from the `new_id`
    # fixture) go: the stack's own worker then removes their vectors, as it would for any delete.
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        connection.execute(f"DELETE FROM public.documents WHERE id ~ '{TEST_NAME_PATTERN}'")
        connection.execute(f"DELETE FROM tidewire_answers WHERE tenant_id ~ '{TEST_NAME_PATTERN}'")
        # Every tenant a test wrote got a partition of the chunks table (migration 0007); the empty
        # ones go, a writer makes them again when it needs them.
        connection.execute(DROP_EMPTY_TENANT_PARTITIONS)


@pytest.fixture(scope="session")
def stack_origin(local_stack: LocalStack, request: pytest.FixtureRequest) -> StackOrigin:
    """Whether this session started the stack, and what ``public.documents`` held then."""
    return request.config.stash[STACK_ORIGIN]


def forget_pipeline_rows(settings: Settings, pipeline: str) -> None:
    """Delete what a test pipeline left in the vector tables. The suite often runs on a developer's
    own stack, where test vectors would otherwise pile up in the HNSW graphs that searches and
    benchmarks walk."""
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        for table in ("tidewire_chunks", "tidewire_document_state", "tidewire_pipeline_truncations"):
            connection.execute(f"DELETE FROM {table} WHERE pipeline = %s", (pipeline,))


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

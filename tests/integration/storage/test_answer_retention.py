"""`tidewire answers prune` deletes stored chat answers past their retention, across tenants, in batches."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import psycopg
import pytest

from tests.integration.conftest import CliRunner, fresh_test_prefix
from tidewire.answer_retention import prune_answers
from tidewire.errors import StorageError
from tidewire.runtime.stack import LocalStack
from tidewire.settings import PostgresSettings, Settings


def store_answers(settings: Settings, tenant: str, ages_days: list[float]) -> list[uuid.UUID]:
    """Answers as the API stores them, created ``ages_days`` ago."""
    answer_ids = [uuid.uuid4() for _ in ages_days]
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        for answer_id, age in zip(answer_ids, ages_days, strict=True):
            connection.execute(
                "INSERT INTO tidewire_answers (answer_id, tenant_id, question, question_embedding, answer, "
                "sources, source_documents, provider, created_at) VALUES (%s, %s, 'q', "
                "array_fill(0.1, ARRAY[384])::vector, 'a', '[]', '{}', 'extractive', now() - %s::interval)",
                (answer_id, tenant, timedelta(days=age)),
            )
    return answer_ids


def remaining(settings: Settings, answer_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT answer_id FROM tidewire_answers WHERE answer_id = ANY(%s)", (answer_ids,)
        ).fetchall()
    return {row[0] for row in rows}


def test_prune_deletes_answers_past_the_retention_of_every_tenant(
    local_stack: LocalStack, settings: Settings, run_cli: CliRunner
) -> None:
    prefix = fresh_test_prefix()
    old_a, young_a = store_answers(settings, f"{prefix}a", [40, 1])
    (old_b,) = store_answers(settings, f"{prefix}b", [31])

    result = run_cli("answers", "prune", "--json")  # api.answer_retention_days: 30
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["older_than_days"] == 30 and report["deleted"] >= 2
    assert remaining(settings, [old_a, young_a, old_b]) == {young_a}

    result = run_cli("answers", "prune", "--older-than-days", "0.5")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("deleted ") and "older than 0.5 day(s)" in result.stdout
    assert remaining(settings, [young_a]) == set()


def test_prune_goes_on_batch_after_batch(local_stack: LocalStack, settings: Settings) -> None:
    answer_ids = store_answers(settings, f"{fresh_test_prefix()}batches", [400, 401, 402, 403, 404])
    assert prune_answers(settings.postgres, timedelta(days=399), batch_size=2) >= 5
    assert remaining(settings, answer_ids) == set()


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_a_retention_that_is_not_a_positive_number_is_one_line_and_deletes_nothing(
    local_stack: LocalStack, settings: Settings, run_cli: CliRunner, value: str
) -> None:
    (answer_id,) = store_answers(settings, f"{fresh_test_prefix()}bad", [500])
    result = run_cli("answers", "prune", "--older-than-days", value)
    assert result.returncode == 2
    assert result.stderr.startswith("error: Invalid value for '--older-than-days'")
    assert result.stderr.count("\n") == 1
    assert remaining(settings, [answer_id]) == {answer_id}


def test_a_database_without_the_answers_table_is_a_clear_error(scratch_database: PostgresSettings) -> None:
    with pytest.raises(StorageError, match="run `tidewire db upgrade` first"):
        prune_answers(scratch_database, timedelta(days=30))

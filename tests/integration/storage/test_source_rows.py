"""fetch_source_rows against real tables: any primary key type, odd ids, missing rows, one query."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.integration.storage.conftest import open_pool
from tests.integration.storage.wire_counter import RoundTripCounter
from tidewire.pipeline_spec import PipelineSpec
from tidewire.runtime.stack import LocalStack
from tidewire.settings import Settings
from tidewire.source_rows import fetch_source_rows


@pytest.fixture
def source_table(local_stack: LocalStack, settings: Settings) -> Iterator[str]:
    """A throwaway table with an integer key (not captured by CDC), dropped afterwards."""
    table = f"test_source_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        connection.execute(
            f"CREATE TABLE public.{table} (pk bigint PRIMARY KEY, org text NOT NULL, title text, "
            "body text, tags jsonb NOT NULL DEFAULT '{}')"
        )
        connection.execute(
            f"INSERT INTO public.{table} (pk, org, title, body, tags) VALUES "
            "(1, 'acme', 'one', repeat('long body ', 50000), '{\"a\": 1}'), (2, 'acme', 'two', NULL, '{}')"
        )
    yield table
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        connection.execute(f"DROP TABLE IF EXISTS public.{table}")


def _spec(table: str) -> PipelineSpec:
    return PipelineSpec(
        name="source-rows",
        source_table=f"public.{table}",
        primary_key="pk",
        tenant_column="org",
        text_template="{title}\n\n{body}",
        metadata_columns=["tags"],
    )


def test_rows_by_integer_key_in_one_round_trip(source_table: str, settings: Settings) -> None:
    postgres = settings.postgres
    dsn_template = (
        f"host=127.0.0.1 port={{port}} dbname={postgres.database} user={postgres.user} "
        f"password={postgres.password.get_secret_value()} sslmode=disable gssencmode=disable"
    )

    async def body() -> tuple[dict[str, dict[str, Any]], int]:
        async with (
            RoundTripCounter(postgres.host, postgres.port) as counter,
            open_pool(dsn_template.format(port=counter.port)) as pool,
        ):
            start = counter.ready_for_query
            rows = await fetch_source_rows(pool, _spec(source_table), ["1", "2", "404"])
            return rows, counter.ready_for_query - start

    rows, round_trips = asyncio.run(body())
    assert round_trips == 1
    assert set(rows) == {"1", "2"}
    assert rows["1"]["body"] == "long body " * 50000  # a TOASTed value comes back whole
    assert rows["1"]["tags"] == {"a": 1} and rows["1"]["org"] == "acme"
    assert rows["2"]["body"] is None


def test_text_keys_with_quotes_and_backslashes(local_stack: LocalStack, settings: Settings) -> None:
    table = f"test_source_{uuid.uuid4().hex[:10]}"
    odd_ids = ["plain", 'with "quotes"', "back\\slash", "comma,brace}{", ""]
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        connection.execute(f"CREATE TABLE public.{table} (id text PRIMARY KEY, title text)")
        for document_id in odd_ids:
            connection.execute(
                f"INSERT INTO public.{table} VALUES (%s, %s)", (document_id, f"t:{document_id}")
            )
    spec = PipelineSpec(
        name="odd",
        source_table=f"public.{table}",
        tenant_column=None,
        text_template="{title}",
        metadata_columns=[],
    )

    async def body() -> dict[str, dict[str, Any]]:
        async with open_pool(settings.postgres.dsn()) as pool:
            return await fetch_source_rows(pool, spec, [*odd_ids, "missing"])

    try:
        rows = asyncio.run(body())
    finally:
        with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
            connection.execute(f"DROP TABLE public.{table}")
    assert {key: row["title"] for key, row in rows.items()} == {key: f"t:{key}" for key in odd_ids}

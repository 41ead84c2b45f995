"""Pipeline specs checked against real tables, and the publication kept equal to the captured tables."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from connectors.debezium_config import publication_tables
from connectors.publication import published_tables, sync_publication
from tests.integration.conftest import CliRunner
from tidewire.errors import ConfigurationError
from tidewire.pipeline_spec import PipelineSpec
from tidewire.pipeline_validation import validate_pipelines
from tidewire.runtime.stack import LocalStack
from tidewire.settings import Settings

TableFactory = Callable[[str], str]


@pytest.fixture
def table_factory(local_stack: LocalStack, settings: Settings) -> Iterator[TableFactory]:
    """Create throwaway tables (``{name}`` in the DDL is replaced by a unique name); dropped afterwards."""
    created: list[tuple[str, str]] = []

    def create(ddl: str) -> str:
        name = f"test_validation_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
            connection.execute(ddl.replace("{name}", f"public.{name}"))
        created.append(("VIEW" if ddl.startswith("CREATE VIEW") else "TABLE", name))
        return f"public.{name}"

    yield create
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        for kind, name in created:
            connection.execute(f"DROP {kind} IF EXISTS public.{name}")


def test_the_default_pipeline_matches_the_documents_table(
    local_stack: LocalStack, settings: Settings
) -> None:
    (table,) = validate_pipelines(settings.postgres, [PipelineSpec()])
    assert table.primary_key == ("id",)
    assert table.owner == settings.postgres.user
    assert table.replica_identity == "default"
    assert {"id", "tenant_id", "title", "body", "metadata"} <= set(table.columns)


def test_every_problem_of_every_pipeline_is_named_in_one_line(
    table_factory: TableFactory, settings: Settings
) -> None:
    no_key = table_factory("CREATE TABLE {name} (id text, body text)")
    composite = table_factory("CREATE TABLE {name} (a text, b text, body text, PRIMARY KEY (a, b))")
    other_key = table_factory("CREATE TABLE {name} (uid uuid PRIMARY KEY, body text)")
    typo = table_factory("CREATE TABLE {name} (id text PRIMARY KEY, title text, body text, org text)")
    view = table_factory("CREATE VIEW {name} AS SELECT 'x'::text AS id, 'y'::text AS body")
    pipelines = [
        PipelineSpec(name="missing", source_table="public.does_not_exist", text_template="{body}"),
        PipelineSpec(
            name="no-key",
            source_table=no_key,
            tenant_column=None,
            text_template="{body}",
            metadata_columns=[],
        ),
        PipelineSpec(
            name="composite",
            source_table=composite,
            tenant_column=None,
            text_template="{body}",
            metadata_columns=[],
        ),
        PipelineSpec(
            name="other-key",
            source_table=other_key,
            tenant_column=None,
            text_template="{body}",
            metadata_columns=[],
        ),
        PipelineSpec(
            name="typo",
            source_table=typo,
            tenant_column="org",
            text_template="{titel}\n{body}",
            metadata_columns=["tags"],
        ),
        PipelineSpec(
            name="view", source_table=view, tenant_column=None, text_template="{body}", metadata_columns=[]
        ),
    ]
    with pytest.raises(ConfigurationError) as caught:
        validate_pipelines(settings.postgres, pipelines)
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.code == "configuration_error"
    assert "pipeline 'missing': source table public.does_not_exist does not exist" in message
    assert f"pipeline 'no-key': {no_key} has no primary key" in message
    assert f"pipeline 'composite': {composite} has a composite primary key (a, b)" in message
    assert (
        f"pipeline 'other-key': primary_key is 'id' but the primary key of {other_key} is 'uid'; set primary_key = \"uid\""
        in message
    )
    assert (
        f"pipeline 'typo': text_template names column 'titel', which {typo} does not have (columns: id, title, body, org)"
        in message
    )
    assert "pipeline 'typo': metadata_columns names column 'tags'" in message
    assert f"pipeline 'view': source table {view} does not exist (or is not a table)" in message


def test_connector_apply_refuses_an_unknown_column_before_changing_anything(
    local_stack: LocalStack, run_cli: CliRunner, tmp_path: Path, settings: Settings
) -> None:
    config = tmp_path / "tidewire.toml"
    config.write_text('[[pipelines]]\nname = "documents"\ntext_template = "{title}\\n\\n{bodyy}"\n')
    with psycopg.connect(settings.postgres.dsn()) as connection:
        before = published_tables(connection)
    result = run_cli("--config", str(config), "connector", "apply")
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        "error: invalid pipelines: pipeline 'documents': text_template names column 'bodyy'"
    )
    assert "(columns: id, tenant_id, title, body, metadata, updated_at)" in line
    with psycopg.connect(settings.postgres.dsn()) as connection:
        assert published_tables(connection) == before


def test_the_publication_holds_exactly_the_captured_tables(
    local_stack: LocalStack, settings: Settings
) -> None:
    sources = validate_pipelines(settings.postgres, settings.pipelines)
    # The session fixture applied the connector: syncing again changes nothing.
    assert sync_publication(settings.postgres, sources, publication_tables(settings.pipelines)) is False
    with psycopg.connect(settings.postgres.dsn()) as connection:
        assert published_tables(connection) == set(publication_tables(settings.pipelines))
        (granted,) = connection.execute(
            "SELECT has_table_privilege(%s, 'public.documents', 'SELECT')",
            (settings.postgres.replication_user,),
        ).fetchone() or (False,)
    assert granted


def test_a_table_of_another_owner_is_refused_with_the_fix(
    table_factory: TableFactory, settings: Settings
) -> None:
    table = table_factory("CREATE TABLE {name} (id text PRIMARY KEY, body text)")
    (source,) = validate_pipelines(
        settings.postgres,
        [
            PipelineSpec(
                name="foreign",
                source_table=table,
                tenant_column=None,
                text_template="{body}",
                metadata_columns=[],
            )
        ],
    )
    foreign = source.__class__(**{**source.__dict__, "owner": "someone_else"})
    with pytest.raises(ConfigurationError, match=f"owned by 'someone_else'.*ALTER TABLE {table} OWNER TO"):
        sync_publication(settings.postgres, [foreign], [table])

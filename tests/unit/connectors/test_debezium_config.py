"""The Debezium config rendered from the pipeline specs."""

from __future__ import annotations

from pathlib import Path

from connectors.debezium_config import (
    CONNECTOR_NAME,
    HEARTBEAT_TABLE,
    SIGNAL_TABLE,
    UNAVAILABLE_VALUE_PLACEHOLDER,
    connector_spec,
    publication_tables,
    render_connector_config,
)
from tidewire.pipeline_spec import PipelineSpec
from tidewire.settings import load_settings

PIPELINES = [
    PipelineSpec(),
    PipelineSpec(
        name="articles", source_table="content.articles", primary_key="article_id", text_template="{headline}"
    ),
]


def _config(tmp_dir: Path) -> dict[str, str]:
    settings = load_settings(pipelines=PIPELINES)
    return render_connector_config(connector_spec(settings.pipelines), settings)


def test_one_connector_captures_every_pipeline_table_and_the_signal_table(
    clean_tidewire_environment: Path,
) -> None:
    config = _config(clean_tidewire_environment)
    assert config["table.include.list"] == f"public.documents,content.articles,{SIGNAL_TABLE}"
    assert connector_spec(PIPELINES).name == CONNECTOR_NAME
    assert config["slot.name"] == "tidewire_documents"
    assert config["publication.name"] == "tidewire"
    assert config["publication.autocreate.mode"] == "disabled"


def test_the_publication_holds_exactly_the_sources_heartbeat_and_signal() -> None:
    assert publication_tables(PIPELINES) == (
        "public.documents",
        "content.articles",
        HEARTBEAT_TABLE,
        SIGNAL_TABLE,
    )


def test_change_semantics_settings(clean_tidewire_environment: Path) -> None:
    config = _config(clean_tidewire_environment)
    assert config["plugin.name"] == "pgoutput"
    assert (
        config["unavailable.value.placeholder"] == UNAVAILABLE_VALUE_PLACEHOLDER == "__tidewire_unavailable__"
    )
    assert config["skipped.operations"] == "none"  # truncates are emitted
    assert config["tombstones.on.delete"] == "true"
    assert config["signal.data.collection"] == SIGNAL_TABLE
    assert config["heartbeat.action.query"] == f"UPDATE {HEARTBEAT_TABLE} SET beat_at = now() WHERE id = 1"
    assert int(config["heartbeat.interval.ms"]) > 0
    assert int(config["poll.interval.ms"]) < 500  # Debezium's default is 500
    assert config["key.converter.schemas.enable"] == config["value.converter.schemas.enable"] == "false"
    assert config["topic.prefix"] == "cdc"
    assert all(isinstance(value, str) for value in config.values())

"""Applying the connector: check the pipelines, sync the publication, create-or-update, wait until running."""

from __future__ import annotations

from connectors.connect_client import ConnectClient, ConnectorState
from connectors.debezium_config import (
    CONNECTOR_CLASS,
    connector_spec,
    publication_tables,
    render_connector_config,
)
from connectors.publication import sync_publication
from tidewire.errors import ConnectError
from tidewire.pipeline_validation import validate_pipelines
from tidewire.settings import Settings


def connect_client(settings: Settings) -> ConnectClient:
    return ConnectClient(settings.connect.url, timeout_s=settings.connect.request_timeout_s)


def connector_names(settings: Settings) -> list[str]:
    """The connectors Tidewire manages for these settings (one: it captures every pipeline)."""
    return [connector_spec(settings.pipelines).name]


def apply_connectors(settings: Settings, *, timeout_s: float = 90.0) -> list[ConnectorState]:
    """Create or update the connectors of all pipelines and wait until they and their tasks run.

    1. Check every pipeline spec against its live table (one error naming every problem).
    2. Make the publication hold exactly the source tables plus heartbeat and signal tables.
    3. Render, validate with the plugin, PUT (idempotent) and wait until RUNNING.
    """
    # 1. Pipelines against the database
    sources = validate_pipelines(settings.postgres, settings.pipelines)
    # 2. Publication
    sync_publication(settings.postgres, sources, publication_tables(settings.pipelines))
    # 3. Connector
    spec = connector_spec(settings.pipelines)
    config = render_connector_config(spec, settings)
    client = connect_client(settings)
    problems = client.validate(CONNECTOR_CLASS, {**config, "name": spec.name})
    if problems:
        raise ConnectError(f"connector {spec.name} config is invalid: {'; '.join(problems)}")
    client.put_config(spec.name, config)
    return [client.wait_until_running(spec.name, timeout_s=timeout_s)]

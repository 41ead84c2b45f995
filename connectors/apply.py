"""Applying connectors: render, validate, create-or-update, wait until running."""

from __future__ import annotations

from connectors.connect_client import ConnectClient, ConnectorState
from connectors.debezium_config import CONNECTOR_CLASS, default_connector_spec, render_connector_config
from tidewire.errors import ConnectError
from tidewire.settings import Settings


def connect_client(settings: Settings) -> ConnectClient:
    return ConnectClient(settings.connect.url, timeout_s=settings.connect.request_timeout_s)


def apply_default_connector(settings: Settings, *, timeout_s: float = 90.0) -> ConnectorState:
    """Create or update the default pipeline's connector and wait until it and its task run."""
    spec = default_connector_spec()
    config = render_connector_config(spec, settings)
    client = connect_client(settings)
    problems = client.validate(CONNECTOR_CLASS, {**config, "name": spec.name})
    if problems:
        raise ConnectError(f"connector {spec.name} config is invalid: {'; '.join(problems)}")
    client.put_config(spec.name, config)
    return client.wait_until_running(spec.name, timeout_s=timeout_s)

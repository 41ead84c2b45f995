"""Worker services of the local stack: names and per-copy ports."""

from __future__ import annotations

from pathlib import Path

from streams.app import broker_url, create_app
from tidewire.runtime.processes import ProcessRegistry
from tidewire.runtime.state import StatePaths
from tidewire.runtime.worker import StreamWorkers
from tidewire.settings import Settings, StreamsSettings


def workers(tmp_path: Path, **streams: object) -> StreamWorkers:
    settings = Settings(streams=StreamsSettings(**streams))  # type: ignore[arg-type]
    paths = StatePaths(tmp_path)
    return StreamWorkers(settings, paths, ProcessRegistry(paths.run))


def test_each_copy_gets_its_own_ports(tmp_path: Path) -> None:
    group = workers(tmp_path, workers=3, web_port=7000, metrics_port=9000)
    assert group.names() == ["worker-0", "worker-1", "worker-2"]
    assert [group.ports(name) for name in group.names()] == [(7000, 9000), (7001, 9001), (7002, 9002)]


def test_zero_turns_a_port_off(tmp_path: Path) -> None:
    group = workers(tmp_path, workers=1, web_port=0, metrics_port=None)
    assert group.ports("worker-0") == (None, None)


def test_broker_url_lists_every_bootstrap_server() -> None:
    assert broker_url("a:9092, b:9093") == "kafka://a:9092;kafka://b:9093"


def test_the_app_is_built_without_connecting() -> None:
    app = create_app(Settings(), web_port=None)
    assert app.conf.id == "tidewire-streams"
    assert app.conf.web_enabled is False
    assert {agent for agent in app.agents} == {"embed", "ingest"}  # no webhooks configured

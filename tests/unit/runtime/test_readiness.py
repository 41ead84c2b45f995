"""Port checks before a service starts: IPv4 and IPv6 hosts, busy ports, hosts that do not resolve."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tidewire.errors import PrerequisiteError
from tidewire.runtime.readiness import port_is_free


def _ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
def listener(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    family, host = request.param
    with socket.socket(family, socket.SOCK_STREAM) as server:
        server.bind((host, 0))
        server.listen()
        yield host, server.getsockname()[1]


def _unused_port(family: socket.AddressFamily, host: str) -> int:
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def test_a_free_ipv4_port_is_free() -> None:
    assert port_is_free("127.0.0.1", _unused_port(socket.AF_INET, "127.0.0.1"))


@pytest.mark.parametrize("listener", [(socket.AF_INET, "127.0.0.1")], indirect=True)
def test_a_listened_ipv4_port_is_busy(listener: tuple[str, int]) -> None:
    host, port = listener
    assert not port_is_free(host, port)


@pytest.mark.skipif(not _ipv6_loopback_available(), reason="no IPv6 loopback on this machine")
def test_a_free_ipv6_port_is_free() -> None:
    # Probed with an IPv4 socket, "::1" could never be bound and every IPv6 host looked busy.
    assert port_is_free("::1", _unused_port(socket.AF_INET6, "::1"))


@pytest.mark.skipif(not _ipv6_loopback_available(), reason="no IPv6 loopback on this machine")
@pytest.mark.parametrize("listener", [(socket.AF_INET6, "::1")], indirect=True)
def test_a_listened_ipv6_port_is_busy(listener: tuple[str, int]) -> None:
    host, port = listener
    assert not port_is_free(host, port)


def test_a_host_that_does_not_resolve_is_a_prerequisite_error_not_a_busy_port() -> None:
    with pytest.raises(PrerequisiteError, match=r"cannot resolve the host 'no-such-host\.invalid'"):
        port_is_free("no-such-host.invalid", 5432)

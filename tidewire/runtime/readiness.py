"""Waiting for a service to say it is ready, with a deadline and a reason when it is not."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from tidewire.errors import PrerequisiteError
from tidewire.runtime.processes import ProcessRecord


class NotReadyYet(Exception):
    """Raised by a readiness probe: the service is not ready; the message says why."""


def wait_until_ready(
    probe: Callable[[], None],
    *,
    timeout_s: float,
    process: ProcessRecord | None = None,
    interval_s: float = 0.25,
) -> str | None:
    """Call ``probe`` until it returns without raising :class:`NotReadyYet`.

    Returns None when ready, else the last reason (also when ``process`` died meanwhile).
    """
    deadline = time.monotonic() + timeout_s
    reason = "no answer yet"
    while time.monotonic() < deadline:
        if process is not None and not process.is_running():
            return f"the process exited ({reason})"
        try:
            probe()
            return None
        except NotReadyYet as not_ready:
            reason = str(not_ready)
        time.sleep(interval_s)
    return f"not ready after {timeout_s:.0f}s ({reason})"


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port and we could bind it: every address ``host`` resolves
    to (IPv4 and IPv6 alike, so ``::1`` or ``localhost`` is checked the way a server would bind it).
    A host that does not resolve is a :class:`PrerequisiteError`, not a busy port."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise PrerequisiteError(
            f"cannot resolve the host {host!r}: {error.strerror}; check its setting"
        ) from None
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe_socket:
            probe_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe_socket.bind(address)
            except OSError:
                return False
    return True


def port_accepts_connections(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False

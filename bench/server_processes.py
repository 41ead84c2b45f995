"""The HTTP servers the API benchmark runs in child processes: started, waited for, stopped.

Each runs in its own session with its output in a log file, and is stopped (SIGTERM, then
SIGKILL) when the benchmark ends, however it ends.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx
import psutil

from bench.errors import BenchmarkError
from tidewire.runtime.processes import read_log_tail, stop_process_tree


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """One server process of the benchmark; a context manager that stops it on exit."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        port: int,
        log_file: Path,
        environment: Mapping[str, str] | None = None,
        ready_path: str | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.port = port
        self.log_file = log_file
        self.environment = dict(environment or {})
        self.ready_path = ready_path
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise BenchmarkError(f"{self.name} is not running")
        return self._popen.pid

    def start(self) -> ServerProcess:
        """Start the process (output to ``log_file``)."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "wb") as log:
            self._popen = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **self.environment},
            )
        return self

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Wait until the server answers (``ready_path`` with a 2xx, else a TCP connection)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._popen is None or self._popen.poll() is not None:
                raise BenchmarkError(
                    f"{self.name} exited during start-up; see {self.log_file}:\n{read_log_tail(self.log_file)}"
                )
            if self._answers():
                return
            time.sleep(0.2)
        raise BenchmarkError(f"{self.name} did not become ready in {timeout_s:.0f}s; see {self.log_file}")

    def _answers(self) -> bool:
        try:
            if self.ready_path is None:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            return httpx.get(self.url + self.ready_path, timeout=2).is_success
        except (OSError, httpx.HTTPError):
            return False

    def rss_bytes(self) -> int:
        """Resident memory of the server process."""
        return int(psutil.Process(self.pid).memory_info().rss)

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        if self._popen is None:
            return
        # It may have exited already (a crash shows in its log).
        with contextlib.suppress(psutil.NoSuchProcess):
            stop_process_tree(psutil.Process(self._popen.pid), timeout_s=15)
        self._popen.wait(timeout=5)
        self._popen = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

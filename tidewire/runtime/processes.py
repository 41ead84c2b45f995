"""Detached service processes and their pid records in the state directory.

A service is started in its own session (so Ctrl-C in the terminal does not reach it and
``tidewire down`` from another shell can stop it) and recorded as ``run/<name>.json`` with
its pid and the process start time. The start time guards against pid reuse after a crash:
a record whose pid now belongs to another process is stale, not "running".
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from tidewire.errors import ServiceError


@dataclass(frozen=True)
class ProcessRecord:
    """What the state directory remembers about a service process."""

    name: str
    pid: int
    started_at: float
    command: list[str]
    log_file: str

    def process(self) -> psutil.Process | None:
        """The live process this record describes, or None if it exited or the pid was reused."""
        try:
            process = psutil.Process(self.pid)
            # create_time() is rounded differently across calls; a second of slack is plenty.
            if abs(process.create_time() - self.started_at) > 1.0:
                return None
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            return process
        except psutil.NoSuchProcess:
            return None

    def is_running(self) -> bool:
        return self.process() is not None


class ProcessRegistry:
    """Pid records of the services of one state directory."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def _path(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    def get(self, name: str) -> ProcessRecord | None:
        path = self._path(name)
        try:
            data = json.loads(path.read_text())
            return ProcessRecord(**data)
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, TypeError):
            # A record cut short by a crash describes nothing we can trust.
            path.unlink(missing_ok=True)
            return None

    def save(self, record: ProcessRecord) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        temporary = self._path(record.name).with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(record)))
        temporary.replace(self._path(record.name))

    def forget(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def names(self) -> list[str]:
        if not self.run_dir.is_dir():
            return []
        return sorted(path.stem for path in self.run_dir.glob("*.json"))


def start_detached(
    name: str,
    command: Sequence[str],
    *,
    log_file: Path,
    registry: ProcessRegistry,
    environment: Mapping[str, str] | None = None,
    working_dir: Path | None = None,
) -> ProcessRecord:
    """Start ``command`` in a new session with output appended to ``log_file``; record it."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {name}\n".encode())
        log.flush()
        try:
            popen = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(environment or {})},
                cwd=working_dir,
            )
        except OSError as error:
            raise ServiceError(f"could not start {name}: {error.strerror} ({command[0]})") from None
    record = ProcessRecord(
        name=name,
        pid=popen.pid,
        started_at=psutil.Process(popen.pid).create_time(),
        command=list(command),
        log_file=str(log_file),
    )
    registry.save(record)
    return record


def stop_process_tree(process: psutil.Process, *, timeout_s: float = 20.0) -> None:
    """SIGTERM a process and its children, wait, then SIGKILL whatever is left."""
    try:
        family = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(family, timeout=timeout_s)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(alive, timeout=5)


def read_log_tail(log_file: Path | str, lines: int = 15) -> str:
    """The last lines of a service log, for error messages that point at the cause."""
    try:
        text = Path(log_file).read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])

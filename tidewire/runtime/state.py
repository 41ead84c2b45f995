"""The layout of the state directory (default ``.tidewire/``): data, logs, pid records, configs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

# Unix socket paths are limited to 107 bytes; leave room for "/.s.PGSQL.<port>".
_MAX_SOCKET_DIR_LENGTH = 80


@dataclass(frozen=True)
class StatePaths:
    """Every path the local runtime writes, derived from one root."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def stack_lock(self) -> Path:
        """Held by `up` and `down` while they change the stack (:mod:`tidewire.runtime.stack_lock`)."""
        return self.run / "stack.lock"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def postgres_data(self) -> Path:
        return self.root / "postgres" / "data"

    @property
    def postgres_socket_dir(self) -> Path:
        preferred = self.root / "postgres" / "socket"
        if len(str(preferred)) <= _MAX_SOCKET_DIR_LENGTH:
            return preferred
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return Path("/tmp") / f"tidewire-{digest}"

    @property
    def kafka_data(self) -> Path:
        return self.root / "kafka" / "data"

    @property
    def streams_data(self) -> Path:
        """Faust's own data directory (table state, recovery markers); one per app id beneath it."""
        return self.root / "streams"

    def log_file(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    def create(self) -> None:
        for folder in (self.logs, self.run, self.config):
            folder.mkdir(parents=True, exist_ok=True)

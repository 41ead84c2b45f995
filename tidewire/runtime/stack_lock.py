"""One `up` or `down` at a time per state directory.

Two `tidewire up` started together would both find a service stopped and both start it: the second
fails on a busy port, and its clean-up then stops what the first one started. `up` and `down` hold an
exclusive ``flock`` on ``run/stack.lock`` while they change the stack; a second one is refused at
once with the holder's pid. The kernel drops the lock when its holder exits, however it exits, so a
crashed `up` never leaves the stack locked.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tidewire.errors import ServiceError


@contextmanager
def stack_lock(lock_file: Path, action: str) -> Iterator[None]:
    """Hold the stack's lock while ``action`` ("up", "down") runs; :class:`ServiceError` when another
    process holds it."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ServiceError(
                f"{holder} is changing the stack of {lock_file.parent.parent} right now; "
                f"wait for it to finish, then run `tidewire {action}` again"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"`tidewire {action}` (pid {os.getpid()})")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()

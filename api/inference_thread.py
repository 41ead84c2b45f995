"""The thread the API runs its model on, scheduled below the event loop.

Every request in flight waits on the one event-loop thread, while a query-embedding batch is work that
can wait a little. Where the API shares its cores (with Postgres; on the 2-core benchmark machine with
the whole stack), the kernel would otherwise hand a core to a model call as readily as to the event
loop, and every request stalls behind the batch. Here the model is loaded and called on a thread with a
higher nice value, which any process may give its own threads; the threads it starts (ONNX Runtime's
thread pool, the engine's side-by-side model calls) inherit it. Under the search benchmark's load the
p95 fell by about 7% and the CPU per search by about 5% (docs/benchmarks.md): the event loop hands the
database its queries sooner, and the model takes larger, cheaper batches.

Linux only: there a nice value belongs to a thread. Elsewhere ``setpriority`` would lower the whole
process, event loop included, so nothing is changed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

logger = logging.getLogger(__name__)
Result = TypeVar("Result")


def lower_current_thread_priority(niceness: int) -> None:
    """Give the calling thread (and the threads it starts from now on) at least nice value ``niceness``.

    Nothing happens at 0, off Linux, or when the thread's nice value is already as high. A refusal by
    the system is logged, not raised: the model then runs at the event loop's priority, slower but correct.
    """
    if niceness <= 0 or not sys.platform.startswith("linux"):
        return
    thread_id = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, thread_id) < niceness:
            os.setpriority(os.PRIO_PROCESS, thread_id, niceness)
    except OSError as error:
        logger.warning("could not lower the inference thread's priority to nice %d: %s", niceness, error)


class InferenceThread:
    """One thread, at nice ``niceness``, for loading the model and for every model call."""

    def __init__(self, niceness: int) -> None:
        self.executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="tidewire-inference",
            initializer=lower_current_thread_priority,
            initargs=(niceness,),
        )

    async def run(self, function: Callable[..., Result], *arguments: object) -> Result:
        """``function(*arguments)`` on the inference thread, awaited without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *arguments)

    def shutdown(self) -> None:
        """Wait for the call in progress, if any, and stop the thread."""
        self.executor.shutdown(wait=True)

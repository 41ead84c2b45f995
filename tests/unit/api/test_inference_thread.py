"""The inference thread: the model runs below the event loop's priority, and so do the threads it starts."""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import pytest

from api.embedding import QueryEmbedder
from api.inference_thread import InferenceThread, lower_current_thread_priority

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="nice values are per thread on Linux only"
    ),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def this_thread_niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def niceness_of_a_thread_started_here() -> int:
    seen: list[int] = []
    child = threading.Thread(target=lambda: seen.append(this_thread_niceness()))
    child.start()
    child.join()
    return seen[0]


async def test_the_model_thread_and_the_threads_it_starts_run_below_the_event_loop() -> None:
    event_loop_niceness = this_thread_niceness()
    inference = InferenceThread(event_loop_niceness + 5)
    try:
        assert await inference.run(this_thread_niceness) == event_loop_niceness + 5
        # What ONNX Runtime's pool threads and the engine's side-by-side calls will be.
        assert await inference.run(niceness_of_a_thread_started_here) == event_loop_niceness + 5
    finally:
        inference.shutdown()
    assert this_thread_niceness() == event_loop_niceness  # the event loop's own thread is untouched


async def test_niceness_0_changes_nothing_and_a_higher_one_is_never_lowered() -> None:
    def lowered_twice() -> tuple[int, int]:
        start = this_thread_niceness()
        lower_current_thread_priority(start + 6)
        lower_current_thread_priority(start + 2)  # would need privileges to go back: left as is
        return start, this_thread_niceness()

    unchanged = InferenceThread(0)
    try:
        assert await unchanged.run(this_thread_niceness) == this_thread_niceness()
        start, after = await unchanged.run(lowered_twice)
    finally:
        unchanged.shutdown()
    assert after == start + 6


async def test_query_embeddings_are_computed_on_the_inference_thread() -> None:
    threads: list[str] = []

    class RecordingEmbedder:
        model_id = "recording"
        dim = 2

        def embed(self, texts: list[str]) -> np.ndarray:
            threads.append(threading.current_thread().name)
            return np.ones((len(texts), 2), dtype=np.float32)

    inference = InferenceThread(1)
    embedder = QueryEmbedder(RecordingEmbedder(), cache_size=0, executor=inference.executor)
    try:
        await embedder.embed("a question", tenant_id="t")
    finally:
        await embedder.aclose()
        inference.shutdown()
    assert len(threads) == 1 and threads[0].startswith("tidewire-inference")

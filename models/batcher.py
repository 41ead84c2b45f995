"""Merge concurrent embedding requests into model-sized batches, off the event loop.

Many callers (stream agents, API requests) ask for a few embeddings each. :class:`EmbeddingBatcher`
queues their requests, waits at most ``max_wait_ms`` after the first one for others to join,
stops collecting once ``max_rows`` rows or ``max_tokens`` padded tokens are queued, and then runs
the whole group in its single inference thread, where :func:`models.batch_planning.plan_batches`
buckets the rows by length. Tokenization runs in a second thread so it overlaps inference.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from models.batch_planning import bucketed_length
from models.embedder import Embedder
from models.errors import EmbeddingError

logger = logging.getLogger(__name__)


@dataclass
class _Request:
    token_ids: list[list[int]]
    future: asyncio.Future[np.ndarray]


class EmbeddingBatcher:
    """Asynchronous front of an :class:`Embedder`; use as ``async with EmbeddingBatcher(...)``."""

    def __init__(self, embedder: Embedder, *, max_rows: int, max_tokens: int, max_wait_ms: float) -> None:
        self._embedder = embedder
        self._max_rows = max_rows
        self._max_tokens = max_tokens
        self._max_wait_s = max_wait_ms / 1000.0
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tidewire-embed")
        self._tokenization = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tidewire-tokenize")
        self._worker: asyncio.Task[None] | None = None
        self._in_flight: list[_Request] = []
        self.batches_run = 0

    async def __aenter__(self) -> EmbeddingBatcher:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()

    def start(self) -> None:
        """Start the collecting task on the running event loop."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._collect_and_run(), name="embedding-batcher"
            )

    async def close(self) -> None:
        """Stop collecting, fail requests still queued, and release the threads."""
        stranded = list(self._in_flight)  # read before cancelling: the worker clears it on exit
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        while not self._queue.empty():
            stranded.append(self._queue.get_nowait())
        for request in stranded:
            if not request.future.done():
                request.future.set_exception(EmbeddingError("the embedding batcher was closed"))
        self._in_flight = []
        # Waiting for a running batch to finish must not block the event loop.
        await asyncio.to_thread(self._inference.shutdown, True)
        await asyncio.to_thread(self._tokenization.shutdown, True)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` (float32, ``[len(texts), dim]``), batched with other callers' texts."""
        if self._worker is None:
            raise EmbeddingError(
                "the embedding batcher is not started; use `async with EmbeddingBatcher(...)`"
            )
        if not texts:
            return np.empty((0, self._embedder.dim), dtype=np.float32)
        loop = asyncio.get_running_loop()
        token_ids = await loop.run_in_executor(
            self._tokenization, self._embedder.tokenizer.encode_batch, list(texts)
        )
        request = _Request(token_ids=token_ids, future=loop.create_future())
        await self._queue.put(request)
        return await request.future

    async def _collect_and_run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = await self._collect()
            live = [request for request in group if not request.future.done()]
            if not live:
                continue
            rows = [ids for request in live for ids in request.token_ids]
            self._in_flight = live
            try:
                embeddings = await loop.run_in_executor(self._inference, self._embedder.embed_token_ids, rows)
            except Exception as error:
                for request in live:
                    if not request.future.done():
                        request.future.set_exception(error)
                continue
            finally:
                self._in_flight = []
            self.batches_run += 1
            offset = 0
            for request in live:
                count = len(request.token_ids)
                if not request.future.done():  # the caller may have been cancelled meanwhile
                    request.future.set_result(embeddings[offset : offset + count])
                offset += count

    async def _collect(self) -> list[_Request]:
        """The first queued request, plus whatever joins within ``max_wait`` up to the limits."""
        loop = asyncio.get_running_loop()
        group = [await self._queue.get()]
        rows = len(group[0].token_ids)
        tokens = self._padded_tokens(group[0])
        deadline = loop.time() + self._max_wait_s
        while rows < self._max_rows and tokens < self._max_tokens:
            if self._queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    request = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                request = self._queue.get_nowait()
            group.append(request)
            rows += len(request.token_ids)
            tokens += self._padded_tokens(request)
        return group

    def _padded_tokens(self, request: _Request) -> int:
        limits = self._embedder.options.limits
        return sum(bucketed_length(len(ids), limits) for ids in request.token_ids)

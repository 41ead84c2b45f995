"""Query embeddings for search and chat: the indexing engine's model, an LRU cache, micro-batching.

Concurrent queries are embedded together in one model call (run in a worker thread, so the
event loop never blocks on inference: in the API the low-priority one of :mod:`api.inference_thread`);
a query the same tenant repeats is answered from the cache.
The cache is per tenant: a hit (faster, and counted on ``/metrics``) would otherwise tell a tenant
that another one had just asked the very same question.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Protocol

import numpy as np

MAX_BATCH = 64


class TextEmbedder(Protocol):
    """What the API needs of an embedder (``models.embedder.Embedder`` is one)."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray: ...


class QueryEmbedder:
    """Embeds query texts: LRU-cached, batched across concurrent callers, off the event loop."""

    def __init__(
        self,
        embedder: TextEmbedder,
        *,
        cache_size: int,
        on_lookup: Callable[[bool], None] | None = None,
        executor: Executor | None = None,
    ) -> None:
        """``executor`` runs the model calls (by default the event loop's default executor)."""
        self.embedder = embedder
        self._executor = executor
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()  # (tenant, text)
        self._pending: list[tuple[tuple[str, str], asyncio.Future[np.ndarray]]] = []
        self._worker: asyncio.Task[None] | None = None
        self._on_lookup = on_lookup or (lambda hit: None)

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    async def embed(self, text: str, *, tenant_id: str) -> np.ndarray:
        """The L2-normalized embedding of ``text`` (float32, read-only), asked for by ``tenant_id``."""
        key = (tenant_id, text)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            self._on_lookup(True)
            return cached
        self._on_lookup(False)
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append((key, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="tidewire-query-embedder")
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        # Whatever queued while the previous batch ran goes into the next one.
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            texts = list(dict.fromkeys(text for (_, text), _ in batch))
            try:
                vectors = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self.embedder.embed, texts
                )
            except Exception as error:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            by_text = {}
            for text, vector in zip(texts, vectors, strict=True):
                vector = np.ascontiguousarray(vector, dtype=np.float32)
                vector.flags.writeable = False
                by_text[text] = vector
            for key in dict.fromkeys(key for key, _ in batch):
                self._remember(key, by_text[key[1]])
            for key, future in batch:
                if not future.done():
                    future.set_result(by_text[key[1]])

    def _remember(self, key: tuple[str, str], vector: np.ndarray) -> None:
        if self._cache_size <= 0:
            return
        self._cache[key] = vector
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker

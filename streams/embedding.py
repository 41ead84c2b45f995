"""The embedding engine as the stream agents use it: chunk texts, embed chunks, name the model.

The agents depend on the :class:`Embedding` protocol only, so unit tests run them with a fake;
:func:`open_embedding_engine` builds the real one from ``models/`` (the ONNX embedder behind the
shared :class:`~models.batcher.EmbeddingBatcher`, which merges concurrent requests into batches).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Protocol

import numpy as np

from tidewire.pipeline_spec import ChunkingSpec
from tidewire.settings import EmbeddingSettings

if TYPE_CHECKING:
    from models.batcher import EmbeddingBatcher
    from models.chunking import TextChunker
    from models.embedder import Embedder


class Embedding(Protocol):
    """What the embed agent needs from the model."""

    @property
    def model_id(self) -> str: ...

    def chunk(self, text: str, chunking: ChunkingSpec) -> list[str]:
        """Chunk texts of ``text`` (CPU work: call it off the event loop)."""

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalized float32 embeddings, ``[len(texts), dim]``, in input order."""


class EmbeddingEngine:
    """The ONNX embedder, its token-aware chunkers (one per chunking spec) and the shared batcher."""

    def __init__(self, embedder: Embedder, batcher: EmbeddingBatcher) -> None:
        self._embedder = embedder
        self._batcher = batcher
        self._chunkers: dict[tuple[int, int], TextChunker] = {}

    @property
    def model_id(self) -> str:
        return self._embedder.model_id

    def chunk(self, text: str, chunking: ChunkingSpec) -> list[str]:
        from models.chunking import TextChunker

        key = (chunking.max_tokens, chunking.overlap_tokens)
        chunker = self._chunkers.get(key)
        if chunker is None:
            chunker = TextChunker(
                self._embedder.tokenizer,
                chunk_tokens=chunking.max_tokens,
                overlap_tokens=chunking.overlap_tokens,
            )
            self._chunkers[key] = chunker
        return [chunk.text for chunk in chunker.chunk(text)]

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        return await self._batcher.embed(texts)


@asynccontextmanager
async def open_embedding_engine(settings: EmbeddingSettings) -> AsyncIterator[EmbeddingEngine]:
    """Load the built ONNX model (off the loop: it takes seconds) and start the shared batcher."""
    from models.batcher import EmbeddingBatcher
    from models.embedder import Embedder

    embedder = await asyncio.to_thread(Embedder.from_settings, settings)
    batcher = EmbeddingBatcher(
        embedder,
        max_rows=settings.max_batch_rows,
        max_tokens=settings.max_batch_tokens,
        max_wait_ms=settings.max_wait_ms,
    )
    try:
        async with batcher:
            yield EmbeddingEngine(embedder, batcher)
    finally:
        await asyncio.to_thread(embedder.close)

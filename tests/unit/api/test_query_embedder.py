"""Query embeddings: LRU cache and batching of concurrent callers into one model call."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from api.embedding import QueryEmbedder

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class CountingEmbedder:
    model_id = "counting"
    dim = 4

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([[len(text), 1, 0, 0] for text in texts], dtype=np.float32)


async def test_concurrent_queries_share_one_model_call_and_repeats_hit_the_cache() -> None:
    model = CountingEmbedder()
    lookups: list[bool] = []
    embedder = QueryEmbedder(model, cache_size=2, on_lookup=lookups.append)
    vectors = await asyncio.gather(*(embedder.embed(text, tenant_id="t") for text in ("a", "bb", "a", "ccc")))
    assert [int(vector[0]) for vector in vectors] == [1, 2, 1, 3]
    assert len(model.calls) == 1 and sorted(model.calls[0]) == ["a", "bb", "ccc"]
    assert not vectors[0].flags.writeable
    await embedder.embed("ccc", tenant_id="t")
    assert len(model.calls) == 1 and lookups[-1] is True
    await embedder.embed("a", tenant_id="t")  # evicted (cache of 2: bb, ccc)
    assert len(model.calls) == 2
    await embedder.aclose()


async def test_a_failing_model_fails_the_waiting_callers() -> None:
    class Broken(CountingEmbedder):
        def embed(self, texts: list[str]) -> np.ndarray:
            raise RuntimeError("no model")

    embedder = QueryEmbedder(Broken(), cache_size=10)
    with pytest.raises(RuntimeError, match="no model"):
        await embedder.embed("x", tenant_id="t")


async def test_a_tenant_never_hits_what_another_tenant_asked() -> None:
    model = CountingEmbedder()
    lookups: list[bool] = []
    embedder = QueryEmbedder(model, cache_size=10, on_lookup=lookups.append)
    await embedder.embed("merger with acme corp", tenant_id="beta")
    await embedder.embed("merger with acme corp", tenant_id="alpha")
    await embedder.embed("merger with acme corp", tenant_id="alpha")
    assert lookups == [False, False, True]
    await embedder.aclose()

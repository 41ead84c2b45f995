"""The asynchronous batcher: merges concurrent callers, keeps results apart, never blocks the loop."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from models.batcher import EmbeddingBatcher
from models.embedder import Embedder
from models.errors import EmbeddingError
from tests.unit.models.conftest import Reference, cosine


async def _embed_concurrently(batcher: EmbeddingBatcher, groups: list[list[str]]) -> list[np.ndarray]:
    return list(await asyncio.gather(*(batcher.embed(group) for group in groups)))


def test_concurrent_callers_share_batches_and_get_their_own_rows(
    fp32_embedder: Embedder, reference: Reference
) -> None:
    groups = [[text] for text in reference.texts]

    async def scenario() -> tuple[list[np.ndarray], int]:
        async with EmbeddingBatcher(fp32_embedder, max_rows=64, max_tokens=16_384, max_wait_ms=50) as batcher:
            results = await _embed_concurrently(batcher, groups)
            return results, batcher.batches_run

    results, batches_run = asyncio.run(scenario())
    assert batches_run < len(groups), "requests were merged"
    direct = fp32_embedder.embed(reference.texts)
    assert cosine(np.vstack(results), direct).min() >= 0.9999


def test_row_limit_splits_collection(fp32_embedder: Embedder) -> None:
    async def scenario() -> int:
        async with EmbeddingBatcher(fp32_embedder, max_rows=2, max_tokens=16_384, max_wait_ms=20) as batcher:
            await _embed_concurrently(batcher, [["one"], ["two"], ["three"], ["four"], ["five"]])
            return batcher.batches_run

    assert asyncio.run(scenario()) >= 3


def test_the_event_loop_keeps_running_during_inference(fp32_embedder: Embedder, reference: Reference) -> None:
    async def scenario() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        async with EmbeddingBatcher(fp32_embedder, max_rows=64, max_tokens=16_384, max_wait_ms=1) as batcher:
            task = asyncio.create_task(ticker())
            await batcher.embed(reference.texts * 4)
            task.cancel()
        return ticks

    assert asyncio.run(scenario()) > 0


def test_empty_request_and_closed_batcher(fp32_embedder: Embedder) -> None:
    async def scenario() -> None:
        batcher = EmbeddingBatcher(fp32_embedder, max_rows=8, max_tokens=1024, max_wait_ms=1)
        with pytest.raises(EmbeddingError, match="not started"):
            await batcher.embed(["x"])
        async with batcher:
            assert (await batcher.embed([])).shape == (0, fp32_embedder.dim)

    asyncio.run(scenario())


def test_a_cancelled_caller_does_not_disturb_the_others(fp32_embedder: Embedder) -> None:
    async def scenario() -> np.ndarray:
        async with EmbeddingBatcher(fp32_embedder, max_rows=64, max_tokens=16_384, max_wait_ms=30) as batcher:
            doomed = asyncio.create_task(batcher.embed(["cancel me"]))
            survivor = asyncio.create_task(batcher.embed(["keep me"]))
            await asyncio.sleep(0)
            doomed.cancel()
            return await survivor

    result = asyncio.run(scenario())
    assert cosine(result, fp32_embedder.embed(["keep me"])).min() >= 0.9999


def test_closing_fails_waiting_callers_instead_of_hanging(
    fp32_embedder: Embedder, reference: Reference
) -> None:
    async def scenario() -> list[object]:
        batcher = EmbeddingBatcher(fp32_embedder, max_rows=4, max_tokens=16_384, max_wait_ms=1)
        batcher.start()
        callers = [asyncio.create_task(batcher.embed(reference.texts)) for _ in range(3)]
        await asyncio.sleep(0.05)
        await batcher.close()
        return await asyncio.wait_for(asyncio.gather(*callers, return_exceptions=True), timeout=30)

    outcomes = asyncio.run(scenario())
    assert any(isinstance(outcome, EmbeddingError) for outcome in outcomes)

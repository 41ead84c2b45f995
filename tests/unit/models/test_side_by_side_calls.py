"""Model calls run side by side (one thread each) give the embeddings of calls run one at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from models.batch_planning import plan_batches
from models.embedder import SMALL_CALL_TOKENS, Embedder
from tests.unit.models.conftest import Reference, cosine
from tidewire.settings import EmbeddingSettings

FP32_INVARIANCE = 0.9999


@pytest.fixture(scope="module")
def one_at_a_time(embedding_settings: EmbeddingSettings, built_model: object) -> Embedder:
    settings = embedding_settings.model_copy(update={"concurrent_calls": 1, "intra_op_threads": 2})
    return Embedder.from_settings(settings, variant="fp32")


@pytest.fixture(scope="module")
def side_by_side(embedding_settings: EmbeddingSettings, built_model: object) -> Iterator[Embedder]:
    settings = embedding_settings.model_copy(update={"concurrent_calls": 3, "intra_op_threads": 2})
    embedder = Embedder.from_settings(settings, variant="fp32")
    yield embedder
    embedder.close()


def test_side_by_side_calls_match_one_at_a_time(
    one_at_a_time: Embedder, side_by_side: Embedder, reference: Reference
) -> None:
    texts = reference.texts * 3  # several model calls' worth, in every length the fixture has
    expected = one_at_a_time.embed(texts)
    got = side_by_side.embed(texts)
    assert got.shape == expected.shape
    assert cosine(got, expected).min() >= FP32_INVARIANCE
    assert not np.isnan(got).any()


def test_a_small_request_is_shared_between_the_calls(side_by_side: Embedder, one_at_a_time: Embedder) -> None:
    token_ids = side_by_side.tokenizer.encode_batch([f"query number {index}" for index in range(12)])
    lengths = [len(ids) for ids in token_ids]
    # One call's worth of tokens: one call at a time keeps it whole; side by side splits it in three.
    assert len(plan_batches(lengths, one_at_a_time.limits_for(lengths))) == 1
    assert len(plan_batches(lengths, side_by_side.limits_for(lengths))) == 3
    single = side_by_side.tokenizer.encode_batch(["one text"])
    assert side_by_side.limits_for([len(single[0])]) == side_by_side.options.limits


class RecordingSession:
    """An ONNX Runtime session that counts the calls made on it."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.calls = 0

    def run(self, *arguments: Any, **keywords: Any) -> Any:
        self.calls += 1
        return self._session.run(*arguments, **keywords)


def test_a_small_lone_call_runs_on_one_thread_and_a_large_one_on_all(
    side_by_side: Embedder, one_at_a_time: Embedder
) -> None:
    all_threads = RecordingSession(side_by_side._session)
    one_thread = RecordingSession(side_by_side._side_by_side[0])  # type: ignore[index]
    calls = side_by_side._side_by_side[1]  # type: ignore[index]
    saved = side_by_side._session, side_by_side._side_by_side
    side_by_side._session, side_by_side._side_by_side = all_threads, (one_thread, calls)  # type: ignore[assignment]
    try:
        query = ["where is the light that shines in darkness"]
        got = side_by_side.embed(query)
        assert (one_thread.calls, all_threads.calls) == (1, 0)
        assert cosine(got, one_at_a_time.embed(query)).min() >= FP32_INVARIANCE

        long_text = [" ".join(f"word{index}" for index in range(400))]  # past SMALL_CALL_TOKENS
        assert len(side_by_side.tokenizer.encode_batch(long_text)[0]) >= SMALL_CALL_TOKENS
        side_by_side.embed(long_text)
        assert (one_thread.calls, all_threads.calls) == (1, 1)
    finally:
        side_by_side._session, side_by_side._side_by_side = saved

"""A text's embedding does not depend on its batch or on how much padding it ran with."""

from __future__ import annotations

import numpy as np

from models.batch_planning import PlannedBatch
from models.embedder import Embedder
from tests.unit.models.conftest import Reference, cosine

FP32_INVARIANCE = 0.9999


def test_embedding_alone_equals_embedding_in_a_mixed_batch(
    fp32_embedder: Embedder, reference: Reference
) -> None:
    together = fp32_embedder.embed(reference.texts)
    alone = np.vstack([fp32_embedder.embed([text]) for text in reference.texts])
    assert cosine(together, alone).min() >= FP32_INVARIANCE


def test_embedding_does_not_depend_on_padding_length(fp32_embedder: Embedder) -> None:
    text = "The LORD is my shepherd; I shall not want."
    token_ids = fp32_embedder.tokenizer.encode_batch([text])
    tight = fp32_embedder.run_batch(token_ids, PlannedBatch((0,), len(token_ids[0])))
    padded = fp32_embedder.run_batch(token_ids, PlannedBatch((0,), 256))
    assert cosine(tight, padded).min() >= FP32_INVARIANCE


def test_embedding_does_not_depend_on_batch_neighbours(fp32_embedder: Embedder, reference: Reference) -> None:
    text = reference.texts[0]
    long_neighbour = reference.texts[-1]  # truncated at 256 tokens: the most padding for `text`
    first = fp32_embedder.embed([text, long_neighbour])[0]
    second = fp32_embedder.embed(["a", text, "b" * 50, long_neighbour, long_neighbour])[1]
    assert float(cosine(first, second)) >= FP32_INVARIANCE


def test_output_order_follows_input_order(fp32_embedder: Embedder, reference: Reference) -> None:
    forward = fp32_embedder.embed(reference.texts)
    backward = fp32_embedder.embed(reference.texts[::-1])[::-1]
    assert cosine(forward, backward).min() >= FP32_INVARIANCE

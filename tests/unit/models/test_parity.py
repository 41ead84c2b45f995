"""Parity with sentence-transformers (tests/fixtures/minilm_reference.json), per variant."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from models.build import BuildResult, Variant
from models.embedder import Embedder, cuda_available
from tests.unit.models.conftest import Reference, cosine
from tidewire.settings import EmbeddingSettings

MINIMUM_COSINE: dict[Variant, float] = {"fp32": 0.999, "int8": 0.98, "fp16": 0.995}


def test_reference_matches_the_model_configuration(fp32_embedder: Embedder, reference: Reference) -> None:
    assert reference.dim == fp32_embedder.dim == 384
    assert reference.max_seq_length == fp32_embedder.max_tokens == 256


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_cpu_variant_matches_the_reference_on_every_text(
    variant: Variant, embedder_for: Callable[[Variant], Embedder], reference: Reference
) -> None:
    embeddings = embedder_for(variant).embed(reference.texts)
    similarities = cosine(embeddings, reference.embeddings)
    worst = int(np.argmin(similarities))
    assert similarities[worst] >= MINIMUM_COSINE[variant], (
        f"{variant}: cosine {similarities[worst]:.4f} on {reference.texts[worst][:60]!r}"
    )


def test_embeddings_are_unit_length(fp32_embedder: Embedder, reference: Reference) -> None:
    norms = np.linalg.norm(fp32_embedder.embed(reference.texts), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_fp16_model_loads_and_runs_on_cpu(
    embedder_for: Callable[[Variant], Embedder], reference: Reference
) -> None:
    # ONNX Runtime's CPU provider runs the fp16 graph (upcasting), which validates the file;
    # its speed and GPU numerics are checked by the CUDA test below.
    embeddings = embedder_for("fp16").embed(reference.texts[:4])
    assert np.isfinite(embeddings).all()
    assert cosine(embeddings, reference.embeddings[:4]).min() >= MINIMUM_COSINE["fp16"]


@pytest.mark.skipif(not cuda_available(), reason="needs onnxruntime-gpu and a CUDA GPU")
def test_fp16_on_cuda_matches_the_reference(
    built_model: BuildResult, embedding_settings: EmbeddingSettings, reference: Reference
) -> None:
    embedder = Embedder.from_settings(
        embedding_settings.model_copy(update={"provider": "cuda", "variant": "fp16"})
    )
    assert embedder.provider == "cuda"
    similarities = cosine(embedder.embed(reference.texts), reference.embeddings)
    assert similarities.min() >= MINIMUM_COSINE["fp16"]

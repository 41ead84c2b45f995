"""Memory stays flat over many random batch shapes (ONNX Runtime keeps memory per shape)."""

from __future__ import annotations

import pytest

from bench.embed import measure_memory_on_random_shapes
from models.embedder import Embedder

ALLOWED_GROWTH_MIB = 64.0


@pytest.mark.slow
def test_rss_is_flat_after_many_random_shapes(fp32_embedder: Embedder) -> None:
    # Warm-up is the first third; the rest may bring new shapes but must not bring new memory.
    memory = measure_memory_on_random_shapes(fp32_embedder, 150, max_rows=8)
    assert memory["growth_mib"] < ALLOWED_GROWTH_MIB, memory

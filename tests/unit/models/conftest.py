"""Fixtures of the embedding engine tests: the built model (cached), embedders, the reference."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from models.build import BuildResult, Variant, ensure_models_built
from models.embedder import Embedder
from tidewire.settings import EmbeddingSettings

REFERENCE_FILE = Path(__file__).parents[2] / "fixtures" / "minilm_reference.json"


@dataclass(frozen=True)
class Reference:
    """The sentence-transformers embeddings the engine must match."""

    texts: list[str]
    embeddings: np.ndarray
    max_seq_length: int
    dim: int


@pytest.fixture(scope="session")
def embedding_settings(pytestconfig: pytest.Config) -> EmbeddingSettings:
    defaults = EmbeddingSettings()
    # The configured (relative) model dir is resolved against the repository, as `make setup` does.
    model_dir = (
        defaults.model_dir if defaults.model_dir.is_absolute() else pytestconfig.rootpath / defaults.model_dir
    )
    return defaults.model_copy(update={"model_dir": model_dir, "provider": "cpu"})


@pytest.fixture(scope="session")
def built_model(embedding_settings: EmbeddingSettings) -> BuildResult:
    # Cheap when `make setup` already built it: the builder only checks the manifest.
    return ensure_models_built(embedding_settings.model_dir, model_id=embedding_settings.model_id)


@pytest.fixture(scope="session")
def embedder_for(
    built_model: BuildResult, embedding_settings: EmbeddingSettings
) -> Callable[[Variant], Embedder]:
    cache: dict[Variant, Embedder] = {}

    def open_embedder(variant: Variant) -> Embedder:
        if variant not in cache:
            cache[variant] = Embedder.from_settings(embedding_settings, variant=variant)
        return cache[variant]

    return open_embedder


@pytest.fixture(scope="session")
def fp32_embedder(embedder_for: Callable[[Variant], Embedder]) -> Embedder:
    return embedder_for("fp32")


@pytest.fixture(scope="session")
def reference() -> Reference:
    raw = json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))
    return Reference(
        texts=[item["text"] for item in raw["items"]],
        embeddings=np.array([item["embedding"] for item in raw["items"]], dtype=np.float32),
        max_seq_length=raw["max_seq_length"],
        dim=raw["dim"],
    )


def cosine(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity."""
    return (left * right).sum(axis=-1) / (np.linalg.norm(left, axis=-1) * np.linalg.norm(right, axis=-1))

"""Provider, variant and thread choices (no model needed)."""

from __future__ import annotations

import pytest

from models import embedder as embedder_module
from models.embedder import (
    CPU_INFERENCE_BATCH_TOKENS,
    EmbedderOptions,
    default_concurrent_calls,
    default_inference_batch_tokens,
    default_pad_multiple,
    default_thread_count,
    resolve_provider,
    resolve_variant,
)
from models.errors import ProviderUnavailableError
from tidewire.settings import EmbeddingSettings


@pytest.fixture
def without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedder_module.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])


@pytest.fixture
def with_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        embedder_module.ort,
        "get_available_providers",
        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )


@pytest.mark.usefixtures("without_cuda")
def test_auto_is_cpu_without_cuda_and_cuda_is_an_error() -> None:
    assert resolve_provider("auto") == "cpu"
    assert resolve_provider("cpu") == "cpu"
    with pytest.raises(ProviderUnavailableError, match="onnxruntime-gpu"):
        resolve_provider("cuda")


@pytest.mark.usefixtures("with_cuda")
def test_auto_is_cuda_when_onnxruntime_gpu_is_installed() -> None:
    assert resolve_provider("auto") == "cuda"
    assert resolve_provider("cpu") == "cpu"


@pytest.mark.parametrize(
    ("requested", "provider", "expected"),
    [("auto", "cpu", "int8"), ("auto", "cuda", "fp16"), ("fp32", "cuda", "fp32"), ("fp16", "cpu", "fp16")],
)
def test_variant_choice(requested: str, provider: str, expected: str) -> None:
    assert resolve_variant(requested, provider) == expected  # type: ignore[arg-type]


@pytest.mark.usefixtures("without_cuda")
def test_options_from_settings() -> None:
    settings = EmbeddingSettings(
        intra_op_threads=3,
        max_batch_rows=16,
        max_batch_tokens=1024,
        inference_batch_tokens=2048,
        pad_multiple=16,
    )
    options = EmbedderOptions.from_settings(settings, max_tokens=256)
    assert (options.provider, options.variant, options.intra_op_threads) == ("cpu", "int8", 3)
    assert (options.limits.max_rows, options.limits.max_tokens, options.limits.pad_multiple) == (16, 1024, 16)
    assert options.limits.max_length == 256
    assert not options.cpu_memory_arena and not options.intra_op_spinning
    assert EmbedderOptions.from_settings(EmbeddingSettings(), max_tokens=256).intra_op_threads >= 1


@pytest.mark.usefixtures("without_cuda")
def test_cpu_defaults_pad_exactly_and_run_small_model_calls() -> None:
    options = EmbedderOptions.from_settings(EmbeddingSettings(), max_tokens=256)
    assert options.limits.pad_multiple == 1
    assert options.limits.max_tokens == CPU_INFERENCE_BATCH_TOKENS
    with_arena = EmbedderOptions.from_settings(EmbeddingSettings(cpu_memory_arena=True), max_tokens=256)
    assert with_arena.limits.pad_multiple == 8
    assert default_pad_multiple("cuda", cpu_memory_arena=False) == 8
    assert default_inference_batch_tokens("cuda") > EmbeddingSettings().max_batch_tokens


@pytest.mark.usefixtures("without_cuda")
def test_calls_run_side_by_side_on_every_core_of_the_cpu_by_default() -> None:
    options = EmbedderOptions.from_settings(EmbeddingSettings(), max_tokens=256)
    assert options.concurrent_calls == default_thread_count()
    chosen = EmbedderOptions.from_settings(EmbeddingSettings(concurrent_calls=3), max_tokens=256)
    assert chosen.concurrent_calls == 3
    assert default_concurrent_calls("cuda") == 1


@pytest.mark.usefixtures("with_cuda")
def test_freed_heap_memory_is_reused_on_the_cpu_only() -> None:
    assert EmbedderOptions.from_settings(
        EmbeddingSettings(provider="cpu"), max_tokens=256
    ).reuse_freed_heap_memory
    assert not EmbedderOptions.from_settings(EmbeddingSettings(), max_tokens=256).reuse_freed_heap_memory
    switched_off = EmbeddingSettings(provider="cpu", reuse_freed_heap_memory=False)
    assert not EmbedderOptions.from_settings(switched_off, max_tokens=256).reuse_freed_heap_memory

"""The model build: graph fusion, manifest, cache hits and misses."""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

import onnx
import pytest

from models.build import (
    ALL_VARIANTS,
    BUILDER_VERSION,
    INT8_FP32_WEIGHTS,
    BuildResult,
    ensure_models_built,
    load_manifest,
    require_manifest,
)
from models.errors import ModelNotBuiltError, ModelSourceError
from models.weights import locate_minilm


def test_manifest_describes_the_build(built_model: BuildResult) -> None:
    manifest = built_model.manifest
    assert manifest.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert (manifest.dim, manifest.max_tokens, manifest.builder_version) == (384, 256, BUILDER_VERSION)
    assert set(manifest.variants) == set(ALL_VARIANTS)
    assert set(manifest.input_files) == {"model.safetensors", "config.json", "tokenizer.json"}
    assert len(manifest.inputs_sha256) == 64
    for artifact in manifest.variants.values():
        assert (built_model.directory / artifact.file).stat().st_size == artifact.size
    assert load_manifest(built_model.directory) == manifest


@pytest.mark.parametrize("variant", ["fp32", "fp16"])
def test_transformer_fusion_happened(built_model: BuildResult, variant: str) -> None:
    operators = built_model.manifest.variants[variant].operators
    assert operators["Attention"] == 6
    assert operators["SkipLayerNormalization"] == 12
    assert operators["BiasGelu"] == 6
    assert "Softmax" not in operators and "Erf" not in operators


def test_int8_keeps_the_sensitive_matmuls_in_fp32(built_model: BuildResult) -> None:
    model = onnx.load(built_model.directory / built_model.manifest.variants["int8"].file)
    float_weights = {node.input[1] for node in model.graph.node if node.op_type == "MatMul"}
    assert set(INT8_FP32_WEIGHTS) <= float_weights
    assert built_model.manifest.variants["int8"].operators["MatMulInteger"] == (36 - len(INT8_FP32_WEIGHTS))


def test_second_build_is_a_quick_cache_hit(built_model: BuildResult) -> None:
    started = time.perf_counter()
    again = ensure_models_built(built_model.directory.parent, model_id=built_model.manifest.model_id)
    assert again.rebuilt is False
    assert time.perf_counter() - started < 0.5


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotBuiltError, match="tidewire model build"):
        require_manifest(tmp_path, "sentence-transformers/all-MiniLM-L6-v2")


def test_missing_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    source = replace(locate_minilm(), weights_file=tmp_path / "absent.safetensors")
    with pytest.raises((ModelSourceError, FileNotFoundError)):
        ensure_models_built(tmp_path / "models", source=source)


@pytest.mark.slow
def test_changed_inputs_trigger_a_rebuild(tmp_path: Path) -> None:
    packaged = locate_minilm()
    copy = tmp_path / "weights"
    shutil.copytree(packaged.directory, copy)
    source = replace(
        packaged,
        directory=copy,
        weights_file=copy / "model.safetensors",
        config_file=copy / "config.json",
        tokenizer_file=copy / "tokenizer.json",
    )
    first = ensure_models_built(tmp_path / "models", source=source)
    assert first.rebuilt
    assert not ensure_models_built(tmp_path / "models", source=source).rebuilt
    # Same size, new content: the stat shortcut must not hide it.
    tokenizer_text = source.tokenizer_file.read_text(encoding="utf-8").replace('"[UNK]"', '"[UNQ]"', 1)
    source.tokenizer_file.write_text(tokenizer_text, encoding="utf-8")
    second = ensure_models_built(tmp_path / "models", source=source)
    assert second.rebuilt
    assert second.manifest.inputs_sha256 != first.manifest.inputs_sha256

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
    assert operators["BiasGelu"] == 6
    assert "Softmax" not in operators and "Erf" not in operators


def test_fp32_keeps_residual_layer_norms_unfused_and_fp16_fuses_them(built_model: BuildResult) -> None:
    # Add → LayerNormalization ran faster on the CPU than SkipLayerNormalization (see models/build.py).
    fp32 = built_model.manifest.variants["fp32"].operators
    fp16 = built_model.manifest.variants["fp16"].operators
    assert "SkipLayerNormalization" not in fp32 and fp32["LayerNormalization"] == 13
    assert fp16["SkipLayerNormalization"] == 12


def test_int8_quantizes_every_weight_matmul_and_splits_outlier_channels(built_model: BuildResult) -> None:
    model = onnx.load(built_model.directory / built_model.manifest.variants["int8"].file)
    float_weights = [node.input[1] for node in model.graph.node if node.op_type == "MatMul"]
    outlier_weights = [name for name in float_weights if name.endswith("/outlier_rows")]
    # Every one of the 36 weight MatMuls is int8; the float ones left are attention (Q·K, P·V, 12)
    # and the small outlier-channel MatMuls, a handful of rows each.
    assert built_model.manifest.variants["int8"].operators["MatMulInteger"] == 36
    assert len(float_weights) == 12 + len(outlier_weights)
    assert outlier_weights
    initializers = {item.name: item for item in model.graph.initializer}
    for name in outlier_weights:
        assert 1 <= initializers[name].dims[0] <= 4


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

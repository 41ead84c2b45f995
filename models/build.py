"""Build the ONNX variants of the embedding model into a content-addressed cache directory.

Variants (see docs/embedding.md for how they were chosen):

- ``fp32``: the reference. The hand-built graph after ONNX Runtime's BERT fusions
  (``Attention``, ``BiasGelu``); matches sentence-transformers. Residual adds stay ``Add →
  LayerNormalization``: on the CPU that pair ran faster than the fused ``SkipLayerNormalization``
  kernel, and on CUDA the session fuses them again at load time.
- ``int8``: for CPUs. Per-channel, MatMul-only dynamic quantization of the *unfused* graph
  (ONNX Runtime fuses it again at load time, and ``DynamicQuantizeMatMul`` beat the quantized
  ``QAttention`` here), after splitting the few activation outlier channels out of the
  quantized MatMuls into small fp32 ones (:mod:`models.outlier_channels`).
- ``fp16``: for CUDA. The graph built in half precision with float32 pooling, then fused.

The directory holds one folder per model with the ``.onnx`` files, the tokenizer and a
``manifest.json`` that records what the files were built from. A build happens only when the
inputs (weights, config, tokenizer, builder version, recipe) change; checking that is cheap
because the manifest remembers each input file's size and mtime next to its hash.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from pydantic import BaseModel, ValidationError

from models.errors import ModelBuildError, ModelNotBuiltError
from models.outlier_channels import OutlierPolicy
from models.weights import ModelSource, locate_minilm

if TYPE_CHECKING:
    import onnx

# onnx, numpy and onnxruntime are imported inside the build functions: the up-to-date check
# runs on every `make setup` and should not pay for loading them.

logger = logging.getLogger(__name__)

Variant = Literal["fp32", "int8", "fp16"]
ALL_VARIANTS: tuple[Variant, ...] = get_args(Variant)

# Bump when the graph, the optimization or the quantization recipe changes: it invalidates caches.
BUILDER_VERSION = "2"
MANIFEST_FILE = "manifest.json"
TOKENIZER_FILE = "tokenizer.json"

INT8_OUTLIER_POLICY = OutlierPolicy()


class InputFile(BaseModel):
    """One input of the build, with the stat data that lets an unchanged file skip re-hashing."""

    size: int
    mtime_ns: int
    sha256: str


class VariantArtifact(BaseModel):
    """One built ``.onnx`` file."""

    file: str
    sha256: str
    size: int
    operators: dict[str, int]


class ModelManifest(BaseModel):
    """``manifest.json``: what was built, from what, by which builder."""

    model_id: str
    dim: int
    max_tokens: int
    builder_version: str
    inputs_sha256: str
    input_files: dict[str, InputFile]
    tokenizer_file: str
    variants: dict[str, VariantArtifact]
    built_at: str
    build_seconds: float


@dataclass(frozen=True)
class BuildResult:
    """What :func:`ensure_models_built` did."""

    directory: Path
    manifest: ModelManifest
    rebuilt: bool


def model_directory(model_dir: Path, model_id: str) -> Path:
    """The cache folder of one model inside ``settings.embedding.model_dir``."""
    return model_dir / model_id.replace("/", "--")


def load_manifest(directory: Path) -> ModelManifest | None:
    """The manifest of a built model, or None when there is none (or it is unreadable)."""
    try:
        return ModelManifest.model_validate_json((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError):
        return None


def require_manifest(model_dir: Path, model_id: str) -> tuple[Path, ModelManifest]:
    """Directory and manifest of a built model; a :class:`ModelNotBuiltError` when it is missing."""
    directory = model_directory(model_dir, model_id)
    manifest = load_manifest(directory)
    if manifest is None:
        raise ModelNotBuiltError(f"no built model in {directory}; run `tidewire model build`")
    return directory, manifest


def ensure_models_built(
    model_dir: Path,
    *,
    model_id: str = "sentence-transformers/all-MiniLM-L6-v2",
    source: ModelSource | None = None,
    force: bool = False,
) -> BuildResult:
    """Build every variant into ``model_dir`` unless an up-to-date build is already there.

    1. Hash the inputs (cheaply, reusing the manifest's hashes for files whose stat is unchanged).
    2. Under a file lock, return the existing build if its manifest and files match.
    3. Otherwise build all variants into a temporary folder and move them in, manifest last.
    """
    source = source or locate_minilm(model_id)
    directory = model_directory(model_dir, model_id)
    directory.mkdir(parents=True, exist_ok=True)
    with _build_lock(directory):
        # 1. Inputs
        previous = load_manifest(directory)
        input_files = _hash_inputs(source, previous)
        inputs_sha256 = _combined_inputs_hash(input_files)
        # 2. Up to date?
        if not force and previous is not None and _is_current(directory, previous, inputs_sha256):
            return BuildResult(directory=directory, manifest=previous, rebuilt=False)
        # 3. Build
        manifest = _build_all(directory, source, input_files, inputs_sha256)
        return BuildResult(directory=directory, manifest=manifest, rebuilt=True)


@contextlib.contextmanager
def _build_lock(directory: Path) -> Iterator[None]:
    # Two `make setup` runs (or test sessions) at once must not interleave writes.
    with (directory / ".build.lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _hash_inputs(source: ModelSource, previous: ModelManifest | None) -> dict[str, InputFile]:
    known = previous.input_files if previous is not None else {}
    result: dict[str, InputFile] = {}
    for path in source.input_files:
        stat = path.stat()
        cached = known.get(path.name)
        if cached is not None and cached.size == stat.st_size and cached.mtime_ns == stat.st_mtime_ns:
            result[path.name] = cached
            continue
        result[path.name] = InputFile(size=stat.st_size, mtime_ns=stat.st_mtime_ns, sha256=_file_sha256(path))
    return result


def _combined_inputs_hash(input_files: dict[str, InputFile]) -> str:
    recipe = {
        "builder_version": BUILDER_VERSION,
        "inputs": {name: item.sha256 for name, item in sorted(input_files.items())},
        "int8_outliers": INT8_OUTLIER_POLICY.as_recipe(),
        "onnx": version("onnx"),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_current(directory: Path, manifest: ModelManifest, inputs_sha256: str) -> bool:
    if manifest.builder_version != BUILDER_VERSION or manifest.inputs_sha256 != inputs_sha256:
        return False
    if set(manifest.variants) != set(ALL_VARIANTS):
        return False
    if not (directory / manifest.tokenizer_file).is_file():
        return False
    for artifact in manifest.variants.values():
        path = directory / artifact.file
        if not path.is_file() or path.stat().st_size != artifact.size:
            return False
    return True


def _build_all(
    directory: Path, source: ModelSource, input_files: dict[str, InputFile], inputs_sha256: str
) -> ModelManifest:
    import numpy as np
    import onnx

    from models.graph_builder import build_bert_sentence_graph

    started = time.perf_counter()
    config = source.load_config()
    weights = source.load_weights()
    artifacts: dict[str, VariantArtifact] = {}
    with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as scratch_name:
        scratch = Path(scratch_name)
        plain_fp32 = build_bert_sentence_graph(config, weights)
        plain_fp32_path = scratch / "plain-fp32.onnx"
        onnx.save(plain_fp32, plain_fp32_path)
        num_heads, hidden = config.num_attention_heads, config.hidden_size

        fused_fp32 = _fuse_transformer_ops(
            plain_fp32, num_heads, hidden, variant="fp32", fuse_skip_layer_norm=False
        )
        artifacts["fp32"] = _write_artifact(scratch, "fp32", fused_fp32)

        int8_path = scratch / "model-int8.onnx"
        _quantize_int8(plain_fp32_path, int8_path, source)
        artifacts["int8"] = _write_artifact(scratch, "int8", onnx.load(int8_path))

        plain_fp16 = build_bert_sentence_graph(config, weights, compute_dtype=np.float16)
        fused_fp16 = _fuse_transformer_ops(
            plain_fp16, num_heads, hidden, variant="fp16", fuse_skip_layer_norm=True
        )
        artifacts["fp16"] = _write_artifact(scratch, "fp16", fused_fp16)

        shutil.copyfile(source.tokenizer_file, scratch / TOKENIZER_FILE)
        for name in [*(artifact.file for artifact in artifacts.values()), TOKENIZER_FILE]:
            os.replace(scratch / name, directory / name)

    manifest = ModelManifest(
        model_id=source.model_id,
        dim=config.hidden_size,
        max_tokens=source.max_seq_length,
        builder_version=BUILDER_VERSION,
        inputs_sha256=inputs_sha256,
        input_files=input_files,
        tokenizer_file=TOKENIZER_FILE,
        variants=artifacts,
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        build_seconds=round(time.perf_counter() - started, 2),
    )
    # The manifest goes last and atomically: a build interrupted before this point is redone.
    manifest_tmp = directory / (MANIFEST_FILE + ".tmp")
    manifest_tmp.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(manifest_tmp, directory / MANIFEST_FILE)
    logger.info("built %s variants in %.1fs", ",".join(artifacts), manifest.build_seconds)
    return manifest


def _fuse_transformer_ops(
    model: onnx.ModelProto, num_heads: int, hidden_size: int, *, variant: str, fuse_skip_layer_norm: bool
) -> onnx.ModelProto:
    """Apply ONNX Runtime's BERT fusions and check that every layer was fused.

    ``fuse_skip_layer_norm`` False keeps ``Add → LayerNormalization`` (faster on the CPU; the CUDA
    session fuses it at load time).
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    expected_layers = sum(1 for node in model.graph.node if node.op_type == "Softmax")
    options = FusionOptions("bert")
    # Symbolic shape inference needs sympy; the graph is regular enough to fuse without it.
    options.enable_shape_inference = False
    options.enable_skip_layer_norm = fuse_skip_layer_norm
    # opt_level 0: Python fusions only. Levels ≥ 1 pre-optimize through onnxruntime with
    # provider-specific output (and import torch); the session applies those at load time anyway.
    with _quiet_onnxruntime_transformers():
        optimizer = optimize_model(
            model,
            model_type="bert",
            num_heads=num_heads,
            hidden_size=hidden_size,
            opt_level=0,
            optimization_options=options,
        )
    fused = optimizer.model
    counts = _operator_counts(fused)
    residual_norms = counts.get("SkipLayerNormalization" if fuse_skip_layer_norm else "LayerNormalization", 0)
    # Unfused, the embeddings' LayerNorm counts too.
    expected_norms = 2 * expected_layers + (0 if fuse_skip_layer_norm else 1)
    if counts.get("Attention", 0) != expected_layers or residual_norms != expected_norms:
        raise ModelBuildError(
            f"{variant}: transformer fusion incomplete ({counts}); "
            f"the graph no longer matches onnxruntime's BERT patterns"
        )
    return fused


@contextlib.contextmanager
def _quiet_onnxruntime_transformers() -> Iterator[None]:
    # The optimizer warns that our producer is not "pytorch" and that shape inference is off;
    # both are expected here.
    names = (
        "onnxruntime.transformers",
        "onnx_model",
        "onnx_model_bert",
        "fusion_base",
        "fusion_skiplayernorm",
        "fusion_attention",
        "optimizer",
    )
    saved = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _quantize_int8(plain_fp32_path: Path, int8_path: Path, source: ModelSource) -> None:
    """Split the outlier channels out (in fp32), then quantize every other weight MatMul to int8."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from tokenizers import Tokenizer

    from models.outlier_channels import calibration_token_ids, measure_channel_maxima, split_outlier_channels

    model = onnx.load(plain_fp32_path)
    tokenizer = Tokenizer.from_file(str(source.tokenizer_file))
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if cls_id is None or sep_id is None:
        raise ModelBuildError(f"int8: {source.tokenizer_file} has no [CLS]/[SEP] token")
    calibration = calibration_token_ids(
        tokenizer.get_vocab(), cls_id=cls_id, sep_id=sep_id, policy=INT8_OUTLIER_POLICY
    )
    split = split_outlier_channels(model, measure_channel_maxima(model, calibration), INT8_OUTLIER_POLICY)
    if not split.float_matmul_names:
        raise ModelBuildError("int8: no activation outlier channels found; the calibration looks broken")
    logger.info("int8: outlier channels kept in fp32: %s", split.channels)
    split_path = plain_fp32_path.with_name("split-fp32.onnx")
    onnx.save(split.model, split_path)
    with _without_preprocessing_advice():
        quantize_dynamic(
            split_path,
            int8_path,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            weight_type=QuantType.QInt8,
            # The small outlier MatMuls stay fp32: keeping them out of int8 is their whole point.
            nodes_to_exclude=split.float_matmul_names,
            # Only weight MatMuls: quantizing Q·K and attention·V activations costs accuracy for little.
            extra_options={"MatMulConstBOnly": True},
        )


class _DropPreprocessingAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextlib.contextmanager
def _without_preprocessing_advice() -> Iterator[None]:
    # quantize_dynamic logs a warning on the root logger advising shape pre-processing, which
    # applies to static quantization of CNNs; it would only confuse `make setup` output.
    advice_filter = _DropPreprocessingAdvice()
    root = logging.getLogger()
    root.addFilter(advice_filter)
    for handler in root.handlers:
        handler.addFilter(advice_filter)
    try:
        yield
    finally:
        root.removeFilter(advice_filter)
        for handler in root.handlers:
            handler.removeFilter(advice_filter)


def _write_artifact(scratch: Path, variant: Variant, model: onnx.ModelProto) -> VariantArtifact:
    import onnx

    file_name = f"model-{variant}.onnx"
    path = scratch / file_name
    onnx.save(model, path)
    return VariantArtifact(
        file=file_name,
        sha256=_file_sha256(path),
        size=path.stat().st_size,
        operators=_operator_counts(model),
    )


def _operator_counts(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def variant_path(directory: Path, manifest: ModelManifest, variant: Variant) -> Path:
    """Path of one built variant."""
    artifact = manifest.variants.get(variant)
    if artifact is None:
        raise ModelNotBuiltError(f"variant {variant} is not built in {directory}; run `tidewire model build`")
    return directory / artifact.file

"""Run the embedding model: pick provider and variant, tokenize, batch, infer.

:class:`Embedder` is synchronous and thread-safe for concurrent :meth:`Embedder.embed` calls
(ONNX Runtime sessions are); the asynchronous front is :mod:`models.batcher`.

On the CPU a request that splits into several model calls runs them side by side, one thread each,
on a second session of the same model, instead of one after another on all cores: a call on one
thread never waits at ONNX Runtime's per-operator barrier for a thread that Postgres or Kafka
preempted. A request that is one model call runs on the session with all the threads, unless it is
small (under :data:`SMALL_CALL_TOKENS` padded tokens, as a search query is): then it runs on one
thread, where it is as fast and costs far less CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort
import psutil

from models.batch_planning import BatchLimits, PlannedBatch, plan_batches
from models.build import ModelManifest, Variant, require_manifest, variant_path
from models.errors import EmbeddingError, ProviderUnavailableError
from models.graph_builder import ATTENTION_MASK, INPUT_IDS, SENTENCE_EMBEDDING
from models.heap_reuse import reuse_freed_heap_memory
from models.tokenizer import TextTokenizer
from tidewire.settings import EmbeddingSettings

logger = logging.getLogger(__name__)

Provider = Literal["cuda", "cpu"]

# Below this many padded tokens a lone model call runs on one thread. On the 2-core benchmark
# machine, idle, a 17-token query took 0.85 ms on one thread against 1.11 ms on two (0.84 against
# 1.40 ms of CPU), 128 tokens 5.95 against 6.57 ms; only from 256 tokens did two threads finish
# sooner (a 256-token chunk: 9.5 against 13.9 ms). Handing each operator's work to a second thread
# and waiting for it costs more than the split saves on small matrices.
SMALL_CALL_TOKENS = 256
_ORT_PROVIDERS: dict[Provider, str] = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}


def cuda_available() -> bool:
    """Whether onnxruntime-gpu is installed (it lists CUDA only when built with it)."""
    return _ORT_PROVIDERS["cuda"] in ort.get_available_providers()


def resolve_provider(requested: Literal["auto", "cuda", "cpu"]) -> Provider:
    """``auto`` is CUDA when onnxruntime-gpu is installed, else CPU; ``cuda`` without it is an error."""
    if requested == "cpu":
        return "cpu"
    if cuda_available():
        return "cuda"
    if requested == "cuda":
        raise ProviderUnavailableError(
            "embedding.provider is cuda but onnxruntime has no CUDAExecutionProvider; "
            "install onnxruntime-gpu or set embedding.provider = cpu"
        )
    return "cpu"


def resolve_variant(requested: Literal["auto", "fp32", "int8", "fp16"], provider: Provider) -> Variant:
    """``auto`` is the fastest accurate variant for the provider: fp16 on CUDA, int8 on CPU."""
    if requested != "auto":
        return requested
    return "fp16" if provider == "cuda" else "int8"


def default_thread_count() -> int:
    # One thread per physical core: hyper-threads share the FMA units the MatMuls saturate.
    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1


def default_concurrent_calls(provider: Provider) -> int:
    """Model calls run side by side when ``embedding.concurrent_calls`` is 0 (auto): one per core on
    the CPU (measured +27% on verses over one call at a time on two threads, +30% with other
    processes loading the cores), one on CUDA, where a single call already fills the device."""
    return default_thread_count() if provider == "cpu" else 1


def default_pad_multiple(provider: Provider, cpu_memory_arena: bool) -> int:
    """Shape buckets only where memory is kept per shape: the CUDA arena, or the CPU arena when on.

    On the CPU with the arena and memory patterns off nothing is cached per shape, so padding each
    batch only to its longest row is free of memory growth and saved 10-15% of the inference time
    on verses (8-token buckets padded a 39-token average by 3.5 tokens).
    """
    return 8 if provider == "cuda" or cpu_memory_arena else 1


# On the CPU a model call of a few hundred padded tokens ran faster per sentence than one of
# thousands: its activations (tokens × 1536 floats in the feed-forward) stay in the core's caches.
# With freed buffers reused (models.heap_reuse) 128-512 tokens measured within 4%, 256 best, 1,024
# 11% slower.
# Measured with `tidewire bench embed` (docs/benchmarks.md). A GPU wants the largest batches.
CPU_INFERENCE_BATCH_TOKENS = 256


def default_inference_batch_tokens(provider: Provider) -> int:
    """Padded tokens per model call when ``embedding.inference_batch_tokens`` is 0 (auto)."""
    return CPU_INFERENCE_BATCH_TOKENS if provider == "cpu" else 1 << 30


@dataclass(frozen=True)
class EmbedderOptions:
    """Runtime choices of one :class:`Embedder`, resolved from :class:`EmbeddingSettings`."""

    variant: Variant
    provider: Provider
    intra_op_threads: int
    limits: BatchLimits
    cpu_memory_arena: bool = False
    intra_op_spinning: bool = False
    concurrent_calls: int = 1
    reuse_freed_heap_memory: bool = False

    @classmethod
    def from_settings(
        cls, settings: EmbeddingSettings, *, max_tokens: int, variant: Variant | None = None
    ) -> EmbedderOptions:
        provider = resolve_provider(settings.provider)
        return cls(
            variant=variant or resolve_variant(settings.variant, provider),
            provider=provider,
            intra_op_threads=settings.intra_op_threads or default_thread_count(),
            limits=BatchLimits(
                max_rows=settings.max_batch_rows,
                max_tokens=min(
                    settings.max_batch_tokens,
                    settings.inference_batch_tokens or default_inference_batch_tokens(provider),
                ),
                pad_multiple=settings.pad_multiple
                or default_pad_multiple(provider, settings.cpu_memory_arena),
                max_length=max_tokens,
            ),
            cpu_memory_arena=settings.cpu_memory_arena,
            intra_op_spinning=settings.intra_op_spinning,
            concurrent_calls=settings.concurrent_calls or default_concurrent_calls(provider),
            reuse_freed_heap_memory=settings.reuse_freed_heap_memory and provider == "cpu",
        )


class Embedder:
    """Text → L2-normalized sentence embeddings with ONNX Runtime: one session for a single model
    call on all threads and, when ``concurrent_calls`` > 1, one of one thread for calls side by side."""

    def __init__(self, directory: Path, manifest: ModelManifest, options: EmbedderOptions) -> None:
        self.manifest = manifest
        self.options = options
        self.tokenizer = TextTokenizer(directory / manifest.tokenizer_file, manifest.max_tokens)
        self.model_path = variant_path(directory, manifest, options.variant)
        if options.reuse_freed_heap_memory:
            reuse_freed_heap_memory()
        self._session = _create_session(self.model_path, options)
        self._use_io_binding = options.provider == "cuda"
        self._side_by_side: tuple[ort.InferenceSession, ThreadPoolExecutor] | None = None
        if options.concurrent_calls > 1:
            single_threaded = _create_session(self.model_path, replace(options, intra_op_threads=1))
            calls = ThreadPoolExecutor(options.concurrent_calls, thread_name_prefix="tidewire-model-call")
            self._side_by_side = (single_threaded, calls)

    @classmethod
    def from_settings(cls, settings: EmbeddingSettings, *, variant: Variant | None = None) -> Embedder:
        """Open the built model in ``settings.model_dir`` (build it first with ``tidewire model build``)."""
        directory, manifest = require_manifest(settings.model_dir, settings.model_id)
        options = EmbedderOptions.from_settings(settings, max_tokens=manifest.max_tokens, variant=variant)
        try:
            return cls(directory, manifest, options)
        except ProviderUnavailableError:
            if settings.provider != "auto":
                raise
            # onnxruntime-gpu is installed but no GPU answered: `auto` means "CUDA if it works".
            logger.warning("CUDA provider unavailable, falling back to the CPU")
            cpu_settings = settings.model_copy(update={"provider": "cpu"})
            options = EmbedderOptions.from_settings(
                cpu_settings, max_tokens=manifest.max_tokens, variant=variant
            )
            return cls(directory, manifest, options)

    def close(self) -> None:
        """Stop the threads of side-by-side calls (the sessions go with the object)."""
        if self._side_by_side is not None:
            self._side_by_side[1].shutdown(wait=True)

    @property
    def model_id(self) -> str:
        return self.manifest.model_id

    @property
    def dim(self) -> int:
        return self.manifest.dim

    @property
    def max_tokens(self) -> int:
        return self.manifest.max_tokens

    @property
    def variant(self) -> Variant:
        return self.options.variant

    @property
    def provider(self) -> Provider:
        return self.options.provider

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` (float32, ``[len(texts), dim]``), in input order.

        Each text is truncated at the model's limit; split long documents with
        :class:`models.chunking.TextChunker` first so nothing is lost.
        """
        return self.embed_token_ids(self.tokenizer.encode_batch(texts))

    def embed_token_ids(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Embeddings of already tokenized texts (with [CLS]/[SEP]), batched by length."""
        result = np.empty((len(token_ids), self.dim), dtype=np.float32)
        lengths = [len(ids) for ids in token_ids]
        batches = plan_batches(lengths, self.limits_for(lengths))
        rows_of = [[token_ids[index] for index in batch.indices] for batch in batches]
        if self._side_by_side is None or len(batches) == 1:
            session = None
            if self._side_by_side is not None and batches and batches[0].padded_tokens < SMALL_CALL_TOKENS:
                session = self._side_by_side[0]  # one small call: on one thread (SMALL_CALL_TOKENS)
            for batch, rows in zip(batches, rows_of, strict=True):
                result[list(batch.indices)] = self.run_batch(rows, batch, session)
            return result
        session, calls = self._side_by_side
        running = [
            calls.submit(self.run_batch, rows, batch, session)
            for batch, rows in zip(batches, rows_of, strict=True)
        ]
        for batch, call in zip(batches, running, strict=True):
            result[list(batch.indices)] = call.result()
        return result

    def limits_for(self, lengths: Sequence[int]) -> BatchLimits:
        """The batch limits for rows of these token lengths, with model calls made small enough that
        a request which fits in fewer calls than ``concurrent_calls`` still gives every one a share."""
        limits = self.options.limits
        calls = self.options.concurrent_calls
        if calls == 1 or len(lengths) < 2:
            return limits
        share = -(-sum(lengths) // calls)
        if share >= limits.max_tokens:
            return limits
        return replace(limits, max_tokens=max(share, max(lengths)))

    def run_batch(
        self, rows: Sequence[Sequence[int]], batch: PlannedBatch, session: ort.InferenceSession | None = None
    ) -> np.ndarray:
        """One model call on ``rows``, right-padded to ``batch.padded_length`` (on ``session``, by
        default the one with all the threads)."""
        input_ids = np.full((len(rows), batch.padded_length), self.tokenizer.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(rows), batch.padded_length), dtype=np.int64)
        for row, ids in enumerate(rows):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        try:
            if self._use_io_binding:
                return self._run_bound(input_ids, attention_mask)
            outputs = (session or self._session).run(
                [SENTENCE_EMBEDDING], {INPUT_IDS: input_ids, ATTENTION_MASK: attention_mask}
            )
        except Exception as error:  # onnxruntime raises its own non-exported exception types
            raise EmbeddingError(f"inference failed on a batch of {input_ids.shape}: {error}") from error
        return np.asarray(outputs[0], dtype=np.float32)

    def _run_bound(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        # On GPU, IO binding copies the inputs once and lets the output live on the device until
        # the single copy back, instead of ORT staging every tensor through pageable memory.
        binding = self._session.io_binding()
        binding.bind_cpu_input(INPUT_IDS, input_ids)
        binding.bind_cpu_input(ATTENTION_MASK, attention_mask)
        binding.bind_output(SENTENCE_EMBEDDING, "cuda")
        self._session.run_with_iobinding(binding)
        return np.asarray(binding.copy_outputs_to_cpu()[0], dtype=np.float32)


def _create_session(model_path: Path, options: EmbedderOptions) -> ort.InferenceSession:
    session_options = ort.SessionOptions()
    session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session_options.intra_op_num_threads = options.intra_op_threads
    # The graph is a chain: inter-op parallelism only adds threads competing for the same cores.
    session_options.inter_op_num_threads = 1
    # Memory patterns are planned and cached per input shape; with per-batch padding the shapes
    # vary, so the cache would only grow. The CPU arena likewise keeps its high-water mark per
    # shape; without it memory returns to the allocator (see docs/embedding.md, "Memory").
    session_options.enable_mem_pattern = False
    session_options.enable_cpu_mem_arena = options.cpu_memory_arena
    session_options.log_severity_level = 3
    # Spinning threads burn the cores that Kafka, Postgres and the stream workers share with us;
    # on a loaded 2-core machine it measured slower (89 vs 112 int8 verses/s), not faster.
    session_options.add_session_config_entry(
        "session.intra_op.allow_spinning", "1" if options.intra_op_spinning else "0"
    )

    providers: list[str | tuple[str, dict[str, str]]]
    if options.provider == "cuda":
        providers = [
            (
                _ORT_PROVIDERS["cuda"],
                {
                    "device_id": "0",
                    "arena_extend_strategy": "kSameAsRequested",
                    "cudnn_conv_algo_search": "DEFAULT",
                },
            ),
            _ORT_PROVIDERS["cpu"],
        ]
    else:
        providers = [_ORT_PROVIDERS["cpu"]]
    # ONNX Runtime's CPU SkipLayerNormalization kernel measured slower than the Add and
    # LayerNormalization it replaces (a profile of the int8 model: 19% of the time vs 6%), so on
    # the CPU residual adds stay unfused; CUDA keeps the fusion.
    disabled_optimizers = ["SkipLayerNormFusion"] if options.provider == "cpu" else None
    try:
        session = ort.InferenceSession(
            str(model_path), session_options, providers=providers, disabled_optimizers=disabled_optimizers
        )
    except Exception as error:  # onnxruntime's exception classes are not importable portably
        raise EmbeddingError(
            f"cannot load {model_path}: {error}; rebuild with `tidewire model build --force`"
        ) from error
    if options.provider == "cuda" and session.get_providers()[0] != _ORT_PROVIDERS["cuda"]:
        raise ProviderUnavailableError(
            "CUDAExecutionProvider is installed but could not start (no GPU or CUDA libraries?); "
            "set embedding.provider = cpu"
        )
    logger.debug(
        "loaded %s on %s with %d threads", model_path.name, session.get_providers(), options.intra_op_threads
    )
    return session

"""Errors of the embedding engine, each a :class:`~tidewire.errors.TidewireError` with a stable code."""

from __future__ import annotations

from tidewire.errors import TidewireError


class EmbeddingError(TidewireError):
    """Root of the embedding engine's errors."""

    code = "embedding_error"
    exit_code = 6


class ModelSourceError(EmbeddingError):
    """The packaged weights or tokenizer cannot be found or read."""

    code = "model_source_missing"


class ModelBuildError(EmbeddingError):
    """Building, optimizing or quantizing an ONNX variant failed."""

    code = "model_build_failed"


class ModelNotBuiltError(EmbeddingError):
    """A variant was asked for that is not in the model directory."""

    code = "model_not_built"


class ProviderUnavailableError(EmbeddingError):
    """The configured execution provider (or variant) cannot run on this machine."""

    code = "provider_unavailable"


class EmbeddingInputError(EmbeddingError):
    """Input to embed is not what the command or function expects."""

    code = "embedding_input_invalid"
    exit_code = 2

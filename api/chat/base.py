"""What a chat provider is, and the errors it raises."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from tidewire.errors import TidewireError


@dataclass(frozen=True)
class Source:
    """A retrieved chunk given to a provider, numbered for citations (``[n]``)."""

    n: int
    document_id: str
    chunk_index: int
    text: str
    score: float


@dataclass(frozen=True)
class ChatRequest:
    """One question with its sources; providers build their own prompt from it."""

    question: str
    sources: list[Source]


@dataclass
class Usage:
    """What a generation cost; filled in by the provider while it streams."""

    provider: str = ""
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int = 0
    attempts: list[str] = field(default_factory=list)


class ChatProvider(Protocol):
    """Streams an answer as text pieces. Cancelling the iteration cancels the upstream call."""

    name: str
    model: str | None

    def stream(self, request: ChatRequest, usage: Usage) -> AsyncIterator[str]: ...


class ProviderError(TidewireError):
    """A provider failed before or while answering. ``retryable``: the same call may succeed later;
    ``retry_after_s``: when, if the provider said so (HTTP ``Retry-After``)."""

    code = "provider_error"

    def __init__(
        self, message: str, *, retryable: bool, retry_after_s: float | None = None, code: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class CircuitOpenError(ProviderError):
    code = "provider_circuit_open"

    def __init__(self, name: str) -> None:
        super().__init__(f"provider {name} is failing; skipped until its circuit closes", retryable=False)


class NoProviderError(ProviderError):
    code = "no_provider"

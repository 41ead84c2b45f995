"""The provider chain: the first provider that starts answering wins; one that fails before its
first token hands over to the next. A failure after the first token ends the answer with an error
(a half-written answer is never continued by another model)."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence

from api.chat.base import ChatProvider, ChatRequest, NoProviderError, ProviderError, Usage

logger = logging.getLogger(__name__)


class ProviderChain:
    def __init__(self, providers: Sequence[ChatProvider]) -> None:
        if not providers:
            raise ValueError("a provider chain needs at least one provider")
        self.providers = list(providers)

    async def stream(self, request: ChatRequest, usage: Usage) -> AsyncGenerator[str, None]:
        failures: list[str] = []
        for provider in self.providers:
            started = False
            usage.provider, usage.model = provider.name, provider.model
            usage.attempts.append(provider.name)
            try:
                async for piece in provider.stream(request, usage):
                    started = True
                    yield piece
                return
            except ProviderError as error:
                if started:
                    raise
                logger.warning("chat provider %s failed, trying the next: %s", provider.name, error.message)
                failures.append(f"{provider.name}: {error.message}")
        raise NoProviderError("every chat provider failed: " + "; ".join(failures), retryable=True)

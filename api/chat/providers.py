"""Building the provider chain from settings."""

from __future__ import annotations

from collections.abc import Sequence

from api.chat.base import ChatProvider
from api.chat.chain import ProviderChain
from api.chat.extractive import ExtractiveProvider
from api.chat.openai import OpenAICompatibleProvider
from tidewire.settings import ChatProviderSettings, ExtractiveChatProvider, OpenAIChatProvider


def build_provider(config: ChatProviderSettings) -> ChatProvider:
    if isinstance(config, OpenAIChatProvider):
        return OpenAICompatibleProvider(config)
    assert isinstance(config, ExtractiveChatProvider)
    return ExtractiveProvider(name=config.name, max_sentences=config.max_sentences)


def build_chain(configs: Sequence[ChatProviderSettings]) -> ProviderChain:
    """The configured providers in order; the extractive provider alone when none is configured."""
    providers = [build_provider(config) for config in configs] or [ExtractiveProvider()]
    return ProviderChain(providers)


async def close_chain(chain: ProviderChain) -> None:
    for provider in chain.providers:
        if isinstance(provider, OpenAICompatibleProvider):
            await provider.aclose()

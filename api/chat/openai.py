"""A streaming client for any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM,
Ollama, llama.cpp server).

Steps of one generation (:meth:`OpenAICompatibleProvider.stream`):
1. skip the provider while its circuit is open;
2. POST with ``stream: true``; on 429/5xx or a connection error retry (up to ``max_retries``),
   waiting what ``Retry-After`` says (a longer wait than ``max_retry_after_s`` gives up instead);
3. stream the ``data:`` lines, yielding each content delta; a silence longer than the read
   timeout (``first_token_timeout_s`` before the first token, ``timeout_s`` after) fails;
4. record success or failure on the breaker. Cancelling the iteration closes the HTTP stream,
   which is what cancels the upstream generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime

import httpx

from api.chat.base import ChatRequest, CircuitOpenError, ProviderError, Usage
from api.chat.breaker import CircuitBreaker
from api.chat.prompt import build_messages
from tidewire.settings import OpenAIChatProvider

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


def backoff_s(attempt: int) -> float:
    return float(min(0.25 * 2**attempt, 4.0))


class OpenAICompatibleProvider:
    def __init__(self, config: OpenAIChatProvider, *, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.name = config.name
        self.model: str | None = config.model
        self.breaker = CircuitBreaker(failures=config.breaker_failures, reset_s=config.breaker_reset_s)
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=64),
        )
        self._url = config.base_url.rstrip("/") + "/chat/completions"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def stream(self, request: ChatRequest, usage: Usage) -> AsyncIterator[str]:
        # 1. Circuit open: do not even try.
        if not self.breaker.allow():
            raise CircuitOpenError(self.name)
        usage.provider, usage.model = self.name, self.config.model
        verdict = False
        try:
            async for piece in self._stream_with_retries(request, usage):
                yield piece
            verdict = True
            self.breaker.record_success()
        except ProviderError:
            verdict = True
            self.breaker.record_failure()
            raise
        finally:
            if not verdict:  # cancelled or closed by the consumer: no verdict on the provider
                self.breaker.release_trial()

    async def _stream_with_retries(self, request: ChatRequest, usage: Usage) -> AsyncIterator[str]:
        # 2. Retries happen only before the first token: a partial answer is never repeated.
        attempt = 0
        while True:
            started = False
            try:
                async for piece in self._stream_once(request, usage):
                    started = True
                    yield piece
                return
            except ProviderError as error:
                if started or not error.retryable or attempt >= self.config.max_retries:
                    raise
                wait_s = error.retry_after_s if error.retry_after_s is not None else backoff_s(attempt)
                if wait_s > self.config.max_retry_after_s:
                    raise
                attempt += 1
                await asyncio.sleep(wait_s)

    async def _stream_once(self, request: ChatRequest, usage: Usage) -> AsyncIterator[str]:
        headers = {"Accept": "text/event-stream"}
        if self.config.api_key is not None:
            headers["Authorization"] = f"Bearer {self.config.api_key.get_secret_value()}"
        body = {
            "model": self.config.model,
            "messages": build_messages(request),
            "stream": True,
            "max_tokens": self.config.max_tokens,
            "temperature": self.config.temperature,
        }
        try:
            async with self._client.stream(
                "POST",
                self._url,
                json=body,
                headers=headers,
                timeout=httpx.Timeout(
                    self.config.first_token_timeout_s, connect=self.config.connect_timeout_s
                ),
            ) as response:
                if response.status_code != 200:
                    await _raise_for_status(self.name, response)
                async for piece in self._read_deltas(response, usage):
                    yield piece
        except httpx.TimeoutException as error:
            raise ProviderError(
                f"provider {self.name} timed out ({type(error).__name__})",
                retryable=True,
                code="provider_timeout",
            ) from error
        except httpx.TransportError as error:
            raise ProviderError(
                f"provider {self.name} unreachable: {type(error).__name__}",
                retryable=True,
                code="provider_unreachable",
            ) from error

    async def _read_deltas(self, response: httpx.Response, usage: Usage) -> AsyncIterator[str]:
        # 3. Server-sent `data:` lines until `[DONE]`.
        lines = response.aiter_lines()
        first = True
        while True:
            timeout_s = self.config.first_token_timeout_s if first else self.config.timeout_s
            try:
                line = await asyncio.wait_for(anext(lines), timeout_s)
            except StopAsyncIteration:
                return
            except TimeoutError:
                with contextlib.suppress(Exception):
                    await lines.aclose()  # type: ignore[attr-defined]
                raise ProviderError(
                    f"provider {self.name} went silent for {timeout_s:.0f}s",
                    retryable=True,
                    code="provider_timeout",
                ) from None
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                chunk = json.loads(data)
                choices = chunk.get("choices") or []
                delta = (choices[0].get("delta") or {}).get("content") if choices else None
                if chunk.get("usage"):
                    usage.prompt_tokens = chunk["usage"].get("prompt_tokens")
            except (ValueError, AttributeError, TypeError) as error:
                raise ProviderError(
                    f"provider {self.name} sent a malformed stream chunk",
                    retryable=False,
                    code="provider_protocol",
                ) from error
            if delta:
                first = False
                usage.completion_tokens += 1
                yield delta


async def _raise_for_status(name: str, response: httpx.Response) -> None:
    status = response.status_code
    with contextlib.suppress(Exception):
        await response.aread()
    raise ProviderError(
        f"provider {name} answered HTTP {status}",
        retryable=status in RETRYABLE_STATUS,
        retry_after_s=parse_retry_after(response.headers.get("retry-after")),
        code="provider_http_error",
    )

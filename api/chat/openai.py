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

The HTTP client is one aiohttp session per provider (connection pool reused across answers),
created on first use inside the running loop. aiohttp rather than httpx: a streamed answer is
read line by line, and httpx/httpcore spend several times aiohttp's CPU per received chunk
(locks, async-library detection and decoding layers on every read) — the largest part of an
answer's CPU when hundreds stream at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime

import aiohttp

from api.chat.base import ChatRequest, CircuitOpenError, ProviderError, Usage
from api.chat.breaker import CircuitBreaker
from api.chat.prompt import build_messages
from tidewire.settings import OpenAIChatProvider

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
KEEPALIVE_TIMEOUT_S = 4.0


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
    """One OpenAI-compatible endpoint: streaming, retries before the first token, circuit breaker."""

    def __init__(self, config: OpenAIChatProvider) -> None:
        self.config = config
        self.name = config.name
        self.model: str | None = config.model
        self.breaker = CircuitBreaker(failures=config.breaker_failures, reset_s=config.breaker_reset_s)
        self._session: aiohttp.ClientSession | None = None
        self._url = config.base_url.rstrip("/") + "/chat/completions"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                # Idle connections are dropped before common servers drop them (uvicorn: 5 s), so
                # few requests go out on a connection the server is closing (see _post).
                connector=aiohttp.TCPConnector(limit=512, keepalive_timeout=KEEPALIVE_TIMEOUT_S),
                # Only connecting is bounded here: reads are bounded per line by _read_deltas
                # (first_token_timeout_s, then timeout_s), and the response head by _stream_once.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.config.connect_timeout_s),
                raise_for_status=False,
            )
        return self._session

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

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
        response: aiohttp.ClientResponse | None = None
        finished = False
        try:
            # The response head must come within first_token_timeout_s too.
            async with asyncio.timeout(self.config.first_token_timeout_s):
                response = await self._post(body, headers)
            if response.status != 200:
                await _raise_for_status(self.name, response)
            async for piece in self._read_deltas(response, usage):
                yield piece
            finished = True
        except TimeoutError as error:  # also aiohttp's connect timeouts, which subclass it
            raise ProviderError(
                f"provider {self.name} timed out ({type(error).__name__})",
                retryable=True,
                code="provider_timeout",
            ) from error
        except aiohttp.ClientError as error:
            raise ProviderError(
                f"provider {self.name} unreachable: {type(error).__name__}",
                retryable=True,
                code="provider_unreachable",
            ) from error
        finally:
            if response is not None:
                if finished:
                    response.release()  # read to the end: the connection goes back to the pool
                else:
                    # Cancelled, failed or abandoned mid-stream: closing the connection is what
                    # tells the upstream server to stop generating. The transport closes its socket
                    # on the loop's next turn: take that turn now, so the upstream sees it before
                    # the caller hears of the failure.
                    response.close()
                    await asyncio.sleep(0)

    async def _post(self, body: dict[str, object], headers: dict[str, str]) -> aiohttp.ClientResponse:
        """POST the request, once more when the server closed the pooled connection it went out on.

        A server closes an idle keep-alive connection on its own timer (uvicorn, which vLLM runs on,
        after 5 s); a request written just then meets a closed socket, and the server never read
        it. aiohttp repeats such a request by itself only for idempotent methods, and this is a
        POST: repeat it here, on another connection, whatever ``max_retries`` says (those count
        answers the provider refused). A server that disconnects twice in a row is unreachable.
        """
        try:
            return await self._client().post(self._url, json=body, headers=headers)
        except aiohttp.ServerDisconnectedError:
            return await self._client().post(self._url, json=body, headers=headers)

    async def _read_deltas(self, response: aiohttp.ClientResponse, usage: Usage) -> AsyncIterator[str]:
        # 3. Server-sent `data:` lines until `[DONE]`.
        first = True
        while True:
            timeout_s = self.config.first_token_timeout_s if first else self.config.timeout_s
            try:
                async with asyncio.timeout(timeout_s):
                    raw = await response.content.readline()
            except TimeoutError:
                raise ProviderError(
                    f"provider {self.name} went silent for {timeout_s:.0f}s",
                    retryable=True,
                    code="provider_timeout",
                ) from None
            except ValueError as error:  # a line longer than the reader's limit
                raise ProviderError(
                    f"provider {self.name} sent an overlong stream line",
                    retryable=False,
                    code="provider_protocol",
                ) from error
            if not raw:
                return
            if not raw.startswith(b"data:"):
                continue
            data = raw[5:].strip()
            if data == b"[DONE]":
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


async def _raise_for_status(name: str, response: aiohttp.ClientResponse) -> None:
    status = response.status
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with asyncio.timeout(5):
            await response.read()
    raise ProviderError(
        f"provider {name} answered HTTP {status}",
        retryable=status in RETRYABLE_STATUS,
        retry_after_s=parse_retry_after(response.headers.get("retry-after")),
        code="provider_http_error",
    )

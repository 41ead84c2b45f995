"""The OpenAI-compatible provider and the fallback chain, against a real local HTTP server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from api.chat.base import ChatRequest, CircuitOpenError, NoProviderError, ProviderError, Source, Usage
from api.chat.chain import ProviderChain
from api.chat.extractive import ExtractiveProvider
from api.chat.openai import OpenAICompatibleProvider, parse_retry_after
from tests.unit.api.support import FakeLlm, serve_in_thread, wait_for
from tidewire.settings import OpenAIChatProvider

pytestmark = pytest.mark.anyio
REQUEST = ChatRequest("what is it?", [Source(1, "doc-1", 0, "It is a test. Nothing more.", 0.9)])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def llm() -> Iterator[tuple[FakeLlm, str]]:
    fake = FakeLlm()
    with serve_in_thread(fake.app()) as url:
        yield fake, url


ProviderFactory = Callable[..., OpenAICompatibleProvider]


@pytest.fixture
async def provider() -> AsyncIterator[ProviderFactory]:
    """Makes providers of the endpoint at ``url`` serving ``model``; closes their HTTP sessions after."""
    made: list[OpenAICompatibleProvider] = []

    def make(url: str, model: str, **overrides: object) -> OpenAICompatibleProvider:
        config = {
            "base_url": f"{url}/v1",
            "model": model,
            "name": model,
            "first_token_timeout_s": 5.0,
            **overrides,
        }
        made.append(OpenAICompatibleProvider(OpenAIChatProvider.model_validate(config)))
        return made[-1]

    yield make
    for each in made:
        await each.aclose()


async def collect(stream_provider: object, usage: Usage | None = None) -> str:
    usage = usage or Usage()
    return "".join([piece async for piece in stream_provider.stream(REQUEST, usage)])  # type: ignore[attr-defined]


async def test_streams_the_deltas(llm: tuple[FakeLlm, str], provider: ProviderFactory) -> None:
    fake, url = llm
    usage = Usage()
    assert await collect(provider(url, "ok"), usage) == "Hello world."
    assert usage.completion_tokens == 3 and usage.model == "ok"
    sent = fake.calls[-1].messages
    assert sent[0]["role"] == "system" and "doc-1" in sent[1]["content"]


async def test_a_429_is_retried_after_retry_after(
    llm: tuple[FakeLlm, str], provider: ProviderFactory
) -> None:
    fake, url = llm
    assert await collect(provider(url, "rate429")) == "after retry"
    # The fake server marks a call completed after its last chunk is sent, which the client may
    # read first.
    await asyncio.to_thread(
        wait_for, lambda: fake.outcomes("rate429") == ["failed", "completed"], what="the retried call"
    )


async def test_a_500_is_retried_then_fails_and_opens_the_circuit(
    llm: tuple[FakeLlm, str], provider: ProviderFactory
) -> None:
    fake, url = llm
    failing = provider(url, "fail500", max_retries=1, breaker_failures=2, breaker_reset_s=60)
    for _ in range(2):
        with pytest.raises(ProviderError) as failed:
            await collect(failing)
        assert failed.value.retryable
    assert len(fake.outcomes("fail500")) == 4  # 2 calls x (1 try + 1 retry)
    with pytest.raises(CircuitOpenError):
        await collect(failing)
    assert len(fake.outcomes("fail500")) == 4  # the open circuit did not call


async def test_a_hanging_endpoint_times_out_before_the_first_token(
    llm: tuple[FakeLlm, str], provider: ProviderFactory
) -> None:
    fake, url = llm
    started = time.monotonic()
    with pytest.raises(ProviderError) as failed:
        await collect(provider(url, "hang", first_token_timeout_s=0.5, max_retries=0))
    assert failed.value.code == "provider_timeout"
    assert time.monotonic() - started < 5
    wait_for(lambda: fake.outcomes("hang")[-1] == "cancelled", what="the hanging call to be dropped")


async def test_an_unreachable_endpoint_is_a_retryable_error(provider: ProviderFactory) -> None:
    with pytest.raises(ProviderError) as failed:
        await collect(provider("http://127.0.0.1:9", "ok", max_retries=0))
    assert failed.value.retryable and failed.value.code == "provider_unreachable"


async def test_chain_falls_back_to_the_next_provider(
    llm: tuple[FakeLlm, str], provider: ProviderFactory
) -> None:
    _, url = llm
    chain = ProviderChain(
        [
            provider(url, "fail500", name="primary", max_retries=0),
            provider(url, "hang", name="hanging", first_token_timeout_s=0.3, max_retries=0),
            ExtractiveProvider(),
        ]
    )
    usage = Usage()
    answer = await collect(chain, usage)
    assert answer == "It is a test. [1] Nothing more. [1]"
    assert usage.attempts == ["primary", "hanging", "extractive"] and usage.provider == "extractive"


async def test_chain_with_every_provider_failing_says_so(
    llm: tuple[FakeLlm, str], provider: ProviderFactory
) -> None:
    _, url = llm
    with pytest.raises(NoProviderError) as failed:
        await collect(ProviderChain([provider(url, "fail500", max_retries=0)]))
    assert "HTTP 500" in failed.value.message


async def test_cancelling_the_consumer_cancels_the_upstream_call(
    llm: tuple[FakeLlm, str], provider: ProviderFactory
) -> None:
    fake, url = llm
    received: list[str] = []

    async def consume() -> None:
        async for piece in provider(url, "slow").stream(REQUEST, Usage()):
            received.append(piece)

    task = asyncio.create_task(consume())
    while len(received) < 3:
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.to_thread(
        wait_for, lambda: fake.outcomes("slow")[-1] == "cancelled", what="upstream cancel"
    )
    assert len(received) < 100


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


class KeepAliveCloser:
    """A real HTTP/1.1 server that answers the first request of each connection (keeping it open)
    and closes the connection when a second request arrives on it, unanswered — what a server does
    when its idle keep-alive timer fires just as the client reuses the connection."""

    BODY = (
        b'data: {"choices":[{"delta":{"content":"Hello"}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":" again."}}]}\n\n'
        b"data: [DONE]\n\n"
    )

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        answered = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                self.requests += 1
                if answered:
                    return  # the idle timer fired: close without an answer
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    + f"Content-Length: {len(self.BODY)}\r\n\r\n".encode()
                    + self.BODY
                )
                await writer.drain()
                answered += 1
        except asyncio.IncompleteReadError:
            return
        finally:
            writer.close()


async def test_a_keep_alive_connection_the_server_closed_is_not_a_provider_failure(
    provider: ProviderFactory,
) -> None:
    server_side = KeepAliveCloser()
    server = await asyncio.start_server(server_side.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = provider(f"http://127.0.0.1:{port}", "keep-alive", max_retries=0)
    try:
        assert await collect(client) == "Hello again."
        # The pooled connection is reused, closed by the server, and the request goes out again.
        assert await collect(client) == "Hello again."
        assert (server_side.connections, server_side.requests) == (2, 3)
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()

"""A slow OpenAI-compatible chat endpoint for the API benchmark: it stands in for an LLM server.

``POST /v1/chat/completions`` answers every request with the same number of tokens on a fixed
schedule: the first token ``first_token_s`` after the request, then ``tokens_per_s``. With
``"stream": true`` the tokens arrive as server-sent ``data:`` chunks as they are "generated"; with
``"stream": false`` the whole answer comes at once when the last token would have, so both styles
of client wait the same generation time. It sleeps instead of computing, so it costs (almost) no
CPU and never is the bottleneck of what the benchmark compares.

Run it as ``python -m bench.slow_chat_provider --port P``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL = "slow-bench-model"


@dataclass(frozen=True)
class GenerationSchedule:
    """When each token of an answer is ready, counted from the request."""

    first_token_s: float = 0.5
    tokens_per_s: float = 20.0
    tokens: int = 30

    def ready_at_s(self, index: int) -> float:
        """Seconds after the request at which token ``index`` (0-based) is ready."""
        return self.first_token_s + index / self.tokens_per_s

    @property
    def total_s(self) -> float:
        return self.ready_at_s(self.tokens - 1)


def token_text(index: int) -> str:
    """The ``index``-th piece of every answer: words, each with its leading space."""
    return f" word{index}"


def create_provider_app(schedule: GenerationSchedule) -> Starlette:
    """The endpoint as an ASGI app."""

    async def completions(request: Request) -> Response:
        started = time.monotonic()
        body = await request.json()
        if body.get("stream"):
            return StreamingResponse(_stream(schedule, started), media_type="text/event-stream")
        await asyncio.sleep(max(0.0, started + schedule.total_s - time.monotonic()))
        answer = "".join(token_text(index) for index in range(schedule.tokens))
        return JSONResponse(
            {
                "id": "bench",
                "object": "chat.completion",
                "model": MODEL,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
                ],
                "usage": {"completion_tokens": schedule.tokens},
            }
        )

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


async def _stream(schedule: GenerationSchedule, started: float) -> AsyncIterator[bytes]:
    for index in range(schedule.tokens):
        # Sleep to the token's due time (not a fixed interval), so slow writes do not add up.
        await asyncio.sleep(max(0.0, started + schedule.ready_at_s(index) - time.monotonic()))
        chunk = {
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": token_text(index)}}],
        }
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def main() -> None:
    """Entry point of the provider process."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--first-token-s", type=float, default=GenerationSchedule.first_token_s)
    parser.add_argument("--tokens-per-s", type=float, default=GenerationSchedule.tokens_per_s)
    parser.add_argument("--tokens", type=int, default=GenerationSchedule.tokens)
    arguments = parser.parse_args()
    schedule = GenerationSchedule(arguments.first_token_s, arguments.tokens_per_s, arguments.tokens)
    # backlog: the benchmark opens hundreds of connections at once.
    uvicorn.run(
        create_provider_app(schedule),
        host=arguments.host,
        port=arguments.port,
        log_level="warning",
        backlog=4096,
    )


if __name__ == "__main__":
    main()

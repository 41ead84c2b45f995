"""One chat answer, as a sequence of typed events: ``sources``, ``token``…, ``done`` (or ``error``).

Steps of :meth:`ChatService.answer`:
1. embed the question;
2. look it up in the semantic cache; on a hit, replay the cached sources and answer;
3. otherwise retrieve the tenant's top-k chunks and send them as ``sources``;
4. stream the answer through the provider chain as ``token`` events (bounded by ``chat_timeout_s``);
5. store the completed answer with its sources, then send ``done``.
Any failure becomes one ``error`` event. Cancelling the iteration (a client that went away)
cancels the provider call and stores nothing.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from api.chat.base import ChatRequest, Source, Usage
from api.chat.cache import SemanticCache
from api.chat.chain import ProviderChain
from api.embedding import QueryEmbedder
from api.search import SearchService
from tidewire.errors import TidewireError

logger = logging.getLogger(__name__)

ChatEventKind = Literal["sources", "token", "done", "error"]


@dataclass(frozen=True)
class ChatEvent:
    kind: ChatEventKind
    data: dict[str, Any]


class ChatService:
    def __init__(
        self,
        *,
        embedder: QueryEmbedder,
        search: SearchService,
        cache: SemanticCache,
        chain: ProviderChain,
        default_k: int,
        timeout_s: float,
    ) -> None:
        self._embedder = embedder
        self._search = search
        self._cache = cache
        self._chain = chain
        self._default_k = default_k
        self._timeout_s = timeout_s

    async def answer(self, tenant_id: str, question: str, k: int | None = None) -> AsyncIterator[ChatEvent]:
        try:
            async for event in self._answer(tenant_id, question, k or self._default_k):
                yield event
        except TidewireError as error:
            yield ChatEvent("error", {"code": error.code, "message": error.message})
        except TimeoutError:
            yield ChatEvent(
                "error",
                {"code": "chat_timeout", "message": f"no complete answer within {self._timeout_s:.0f}s"},
            )
        except Exception:
            logger.exception("chat answer failed")
            yield ChatEvent("error", {"code": "internal_error", "message": "internal error"})

    async def _answer(self, tenant_id: str, question: str, k: int) -> AsyncIterator[ChatEvent]:
        # 1. Embed.
        embedding = await self._embedder.embed(question, tenant_id=tenant_id)
        # 2. Cached?
        lookup = await self._cache.lookup(tenant_id, embedding)
        cached = lookup.answer
        if cached is not None:
            yield ChatEvent("sources", {"sources": cached.sources})
            for piece in re.findall(r"\S+\s*", cached.answer):
                yield ChatEvent("token", {"text": piece})
            cached_usage = {
                "provider": cached.provider,
                "model": cached.model,
                "cache_distance": round(cached.distance, 4),
            }
            yield ChatEvent("done", {"answer_id": cached.answer_id, "cached": True, "usage": cached_usage})
            return
        # 3. Retrieve.
        retrieval = await self._search.retrieve(tenant_id, text=question, embedding=embedding, k=k)
        sources = [{"n": n, **hit.model_dump()} for n, hit in enumerate(retrieval.hits, start=1)]
        yield ChatEvent("sources", {"sources": sources})
        request = ChatRequest(
            question=question,
            sources=[
                Source(
                    n=s["n"],
                    document_id=s["document_id"],
                    chunk_index=s["chunk_index"],
                    text=s["text"],
                    score=s["score"],
                )
                for s in sources
            ],
        )
        # 4. Generate.
        usage = Usage()
        pieces: list[str] = []
        # The deadline bounds each wait for a piece (not the yields: a timeout around them would
        # cancel whatever the consuming task happens to be awaiting). asyncio.timeout_at rather than
        # wait_for: wait_for runs each wait in a new task, a cost paid on every token.
        deadline = asyncio.get_running_loop().time() + self._timeout_s
        stream = self._chain.stream(request, usage)
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        piece = await anext(stream)
                except StopAsyncIteration:
                    break
                pieces.append(piece)
                yield ChatEvent("token", {"text": piece})
        finally:
            await stream.aclose()
        # 5. Store, then done.
        answer_id = uuid.uuid4()
        usage_document = {
            "provider": usage.provider,
            "model": usage.model,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "attempts": usage.attempts,
        }
        answer = "".join(pieces)
        if answer.strip() and sources:
            await self._cache.store(
                tenant_id,
                question=question,
                embedding=embedding,
                answer=answer,
                sources=sources,
                provider=usage.provider,
                model=usage.model,
                usage=usage_document,
                answer_id=answer_id,
                source_lsns=retrieval.source_lsns,
                built_as_of=lookup.looked_at,
            )
        yield ChatEvent("done", {"answer_id": str(answer_id), "cached": False, "usage": usage_document})

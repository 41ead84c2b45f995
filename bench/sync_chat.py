"""The API benchmark's baseline for chat: the same job done the synchronous way.

``POST /chat`` ``{"question", "k"?}`` → ``{"answer", "sources"}``, in a plain ``def`` FastAPI
endpoint: FastAPI runs it on a bounded pool of worker threads (``--threads``, AnyIO's default of
40 unless told otherwise), and each request holds its thread for its whole life. It does what
``POST /v1/chat`` does before and around generation — embed the question (the same model and
settings), retrieve the tenant's top-k chunks through the API's role and policy with the same
vector query, build the same prompt — then calls the same provider *without* streaming and returns
the whole answer at once. Served exactly as the read API is (:func:`api.server.serve_with_uvicorn`).

What it leaves out, which only favours it: the semantic cache, storing the answer, SSE framing.

Why 40 threads: it is what a synchronous FastAPI endpoint runs on unless told otherwise (AnyIO's
default thread limiter), and the order of magnitude thread-per-request servers are deployed with
(each thread holds a stack, a database connection and an upstream connection while it waits). With
``threads`` threads and an answer that takes ``t`` seconds of generation it completes at most
``threads / t`` answers per second however many requests wait; that bound — one thread held per
request in flight — is what the comparison with the SSE endpoint (which holds no thread while it
waits for tokens) is about. ``tidewire bench api --sync-threads N`` measures another pool size; the
report names the one used.

Run it as ``python -m bench.sync_chat --port P --provider-url URL --tenant T``.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import httpx
import numpy as np
from fastapi import FastAPI
from pgvector.psycopg import register_vector
from psycopg import Connection
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

from api.chat.base import ChatRequest, Source
from api.chat.prompt import build_messages
from api.server import serve_with_uvicorn
from tidewire.settings import Settings, load_settings
from tidewire.vector_store import HNSW_ORDER_BY

CHAT_PATH = "/chat"
_RETRIEVE_SQL = f"""
SELECT document_id, chunk_index, chunk_text, 1 - (embedding <=> %(embedding)s) AS score
FROM tidewire_chunks
WHERE tenant_id = %(tenant)s
ORDER BY {HNSW_ORDER_BY}
LIMIT %(limit)s
"""


class SyncChatCreate(BaseModel):
    question: str = Field(min_length=1, max_length=2_000)
    k: int | None = Field(default=None, ge=1, le=20)


class SyncChatPublic(BaseModel):
    answer: str
    sources: list[dict[str, Any]]


def _configure(connection: Connection[Any]) -> None:
    register_vector(connection)
    connection.commit()


def create_sync_chat_app(settings: Settings, *, tenant: str, provider_url: str, threads: int) -> FastAPI:
    """The baseline app; its lifespan opens the pool, the model and the provider client."""
    from models.embedder import Embedder  # imported here: loading ONNX Runtime is slow

    embedder = Embedder.from_settings(settings.embedding)
    # The model is one ONNX Runtime session shared by the threads; ORT runs concurrent calls safely,
    # but the tokenizer is not documented as thread-safe, so calls are serialised like the API's batcher.
    model_lock = threading.Lock()
    pool = ConnectionPool(
        settings.postgres.api_dsn(), min_size=1, max_size=threads, open=False, configure=_configure
    )
    client = httpx.Client(
        timeout=httpx.Timeout(120.0, connect=5.0),
        limits=httpx.Limits(max_connections=threads, max_keepalive_connections=threads),
    )
    completions_url = provider_url.rstrip("/") + "/chat/completions"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The thread pool that runs `def` endpoints is AnyIO's default limiter: bounded here.
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        pool.open(wait=True)
        try:
            yield
        finally:
            pool.close()
            client.close()

    app = FastAPI(title="synchronous chat baseline", lifespan=lifespan)

    @app.post(CHAT_PATH, response_model=SyncChatPublic)
    def chat(body: SyncChatCreate) -> SyncChatPublic:
        with model_lock:
            embedding = np.asarray(embedder.embed([body.question])[0], dtype=np.float32)
        with pool.connection() as connection, connection.transaction():
            connection.execute("SELECT set_config('tidewire.tenant_id', %s, true)", (tenant,))
            rows = (
                connection.cursor(row_factory=dict_row)
                .execute(
                    _RETRIEVE_SQL,
                    {"embedding": embedding, "tenant": tenant, "limit": body.k or settings.api.chat_k},
                )
                .fetchall()
            )
        sources = [
            Source(
                n=n,
                document_id=row["document_id"],
                chunk_index=row["chunk_index"],
                text=row["chunk_text"],
                score=float(row["score"]),
            )
            for n, row in enumerate(rows, start=1)
        ]
        response = client.post(
            completions_url,
            json={
                "model": "bench",
                "messages": build_messages(ChatRequest(question=body.question, sources=sources)),
                "stream": False,
            },
        )
        response.raise_for_status()
        answer = response.json()["choices"][0]["message"]["content"]
        return SyncChatPublic(
            answer=answer,
            sources=[{"n": s.n, "document_id": s.document_id, "score": s.score} for s in sources],
        )

    return app


def main() -> None:
    """Entry point of the baseline's process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--provider-url", required=True, help="OpenAI-compatible base URL, e.g. http://h:p/v1"
    )
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--threads", type=int, default=40)
    arguments = parser.parse_args()
    settings = load_settings()
    app = create_sync_chat_app(
        settings, tenant=arguments.tenant, provider_url=arguments.provider_url, threads=arguments.threads
    )
    serve_with_uvicorn(
        app, host=arguments.host, port=arguments.port, api=settings.api, log_level=settings.log_level
    )


if __name__ == "__main__":
    main()

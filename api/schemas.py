"""Request and response models of the HTTP API (the contract in DESIGN.md), XBase/XCreate/XPublic."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

MAX_QUERY_CHARS = 2_000
MAX_K = 100


class SearchQuery(BaseModel):
    """The query parameters of ``GET /v1/search``, validated in one pass (one model instead of five
    parameters: FastAPI resolves each declared parameter separately on every request)."""

    q: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="The query text")
    k: int = Field(default=10, ge=1, le=MAX_K)
    mode: Literal["vector", "hybrid"] = "vector"
    filter: str | None = Field(
        default=None,
        max_length=4_096,
        description='JSON object the chunk metadata must contain: {"lang":"en"}',
    )
    after: str | None = Field(
        default=None,
        max_length=1_100,
        description="Read-your-writes token: <document_id>@<ISO-8601 time> or "
        "<document_id>@lsn:<pg_lsn> (docs/api.md)",
    )


class SearchHitPublic(BaseModel):
    document_id: str
    chunk_index: int
    score: float = Field(
        description="vector mode: cosine similarity; hybrid mode: reciprocal-rank fusion score"
    )
    text: str
    metadata: dict[str, Any]


class SearchPublic(BaseModel):
    query: str
    model: str
    took_ms: float
    hits: list[SearchHitPublic]


class ChatBase(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    k: int | None = Field(default=None, ge=1, le=20, description="Chunks to retrieve (default: api.chat_k)")


class ChatCreate(ChatBase):
    """``POST /v1/chat``. Unknown fields are ignored (a ``tenant`` field, say, changes nothing)."""


class ChatSourcePublic(SearchHitPublic):
    """One retrieved chunk a chat answer is grounded in; ``n`` is its citation number ``[n]``."""

    n: int


class ChatDonePublic(BaseModel):
    answer_id: str
    cached: bool
    usage: dict[str, Any]


class DocumentPublic(BaseModel):
    document_id: str
    chunks: int
    model: str | None
    indexed_at: datetime


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorPublic(BaseModel):
    error: ErrorDetail


class HealthPublic(BaseModel):
    """``/healthz`` and ``/readyz``; a 503 also carries the usual ``error`` naming what is down."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
    error: ErrorDetail | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorPublic, "description": description}
    for status, description in (
        (401, "Missing, malformed, unknown or revoked API key"),
        (422, "A parameter is out of bounds or malformed"),
        (429, "Over the key's rate limit; see Retry-After"),
    )
}

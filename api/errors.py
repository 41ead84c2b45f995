"""The read API's errors and the one JSON shape every 4xx/5xx takes: ``{"error": {"code", "message"}}``.

Every error a handler or dependency raises is an :class:`ApiError` (a :class:`TidewireError`)
with an HTTP status and a stable ``code``; :func:`install_error_handlers` renders them and turns
FastAPI's request validation into 422 in the same shape. An unexpected exception is answered by
:class:`api.middleware.RequestContextMiddleware`: a 500 with a code and no traceback (logged with
the request id instead).
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tidewire.errors import TidewireError


class ApiError(TidewireError):
    """An error answered to an HTTP client: status, stable code, one-line message."""

    status_code: int = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.headers = headers or {}


class BadRequestError(ApiError):
    status_code = 400
    code = "bad_request"


class UnauthorizedError(ApiError):
    """Missing, malformed, unknown or revoked API key. Deliberately one message for all of them."""

    status_code = 401
    code = "unauthorized"

    def __init__(
        self, message: str = "a valid API key is required: send `Authorization: Bearer <key>`"
    ) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class NotFoundError(ApiError):
    status_code = 404
    code = "not_found"


class PayloadTooLargeError(ApiError):
    status_code = 413
    code = "payload_too_large"


class ValidationFailedError(ApiError):
    status_code = 422
    code = "validation_error"


class RateLimitedError(ApiError):
    """The key is over its rate limit; ``retry_after_s`` says when the next request fits."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after_s: float) -> None:
        seconds = max(1, math.ceil(retry_after_s))
        super().__init__(
            f"rate limit exceeded for this API key; retry in {seconds}s",
            headers={"Retry-After": str(seconds)},
        )
        self.retry_after_s = retry_after_s


class ServiceUnavailableError(ApiError):
    """A dependency (Postgres, Kafka, the embedding model) is down; retry later."""

    status_code = 503
    code = "unavailable"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


def error_body(code: str, message: str) -> dict[str, Any]:
    """The documented error document."""
    return {"error": {"code": code, "message": message}}


def error_response(
    status_code: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status_code, headers=headers)


def describe_validation(error: RequestValidationError) -> str:
    """One line naming each bad field as the client sent it (``query.k``, ``body.question``)."""
    problems = []
    for item in error.errors()[:5]:
        location = ".".join(str(part) for part in item.get("loc", ()))
        problems.append(f"{location}: {item.get('msg', 'invalid')}" if location else str(item.get("msg")))
    return "; ".join(problems) or "invalid request"


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def install_error_handlers(app: FastAPI) -> None:
    """Render every error in the documented shape."""

    async def api_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiError)
        return error_response(error.status_code, error.code, error.message, error.headers)

    async def validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return error_response(422, "validation_error", describe_validation(error))

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        if isinstance(error.__cause__, UnicodeDecodeError):
            # FastAPI answers a JSON body that is not UTF-8 with a bare 400 (the decode error is not
            # a JSONDecodeError); it is a malformed field like any other, so 422 as documented.
            return error_response(
                422, "validation_error", f"body: not valid UTF-8 at byte {error.__cause__.start}"
            )
        code = _HTTP_CODES.get(error.status_code, "http_error")
        message = error.detail if isinstance(error.detail, str) else "request failed"
        return error_response(error.status_code, code, message, dict(error.headers or {}))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)

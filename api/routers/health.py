"""``/healthz`` (the process is up), ``/readyz`` (its dependencies are), ``/metrics`` (Prometheus)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import Services
from api.schemas import ErrorDetail, HealthPublic

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic, response_model_exclude_none=True)
async def healthz() -> HealthPublic:
    return HealthPublic(status="ok")


@router.get("/readyz", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
async def readyz(request: Request) -> JSONResponse:
    """200 when Postgres answers and the notifications consumer is assigned; else 503 naming what is
    down, in ``checks`` and in the usual ``error`` (code ``not_ready``)."""
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        return _health(503, {"api": "starting"})
    # The model is loaded before the app serves at all, so there is no "model" check to fail here.
    checks = {"postgres": "ok", "kafka": "ok"}
    try:
        async with asyncio.timeout(2):
            async with services.database.pool.connection() as connection:
                await connection.execute("SELECT 1")
    except Exception as error:
        checks["postgres"] = f"down: {type(error).__name__}"
    if not services.hub.ready.is_set():
        checks["kafka"] = f"down: {services.hub.last_error or 'not connected'}"
    down = [name for name, state in checks.items() if state != "ok"]
    return _health(503 if down else 200, checks)


def _health(status_code: int, checks: dict[str, str]) -> JSONResponse:
    if status_code == 200:
        return JSONResponse(HealthPublic(status="ok", checks=checks).model_dump(exclude_none=True))
    down = "; ".join(f"{name} {state}" for name, state in checks.items() if state != "ok")
    body = HealthPublic(
        status="unavailable", checks=checks, error=ErrorDetail(code="not_ready", message=f"not ready: {down}")
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status_code)


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

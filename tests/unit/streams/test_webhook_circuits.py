"""Per-endpoint circuit breakers: an endpoint that keeps failing is dead-lettered untried for a while, so
it no longer holds up the batches (and the other endpoints); one delivery then tests it again."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from streams.errors import DeliveryError
from streams.retry import RetryPolicy
from streams.webhook_circuits import Admission, EndpointCircuit, EndpointCircuits
from tests.unit.api.support import serve_in_thread
from tests.unit.streams.webhook_support import DeadLetters, make_deliverer, notification_message
from tidewire.events import make_event_codec
from tidewire.settings import KafkaSettings

POLICY = RetryPolicy(attempts=3, initial_backoff_s=1.0, max_backoff_s=30.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the breaker alone -------------------------------------------------------------------------


def test_the_circuit_opens_after_the_failures_in_a_row_and_a_success_resets_the_count() -> None:
    async def scenario() -> None:
        circuit = EndpointCircuit(failures_to_open=3, open_s=30.0, clock=Clock())
        for _ in range(2):
            assert await circuit.admit() is Admission.DELIVER
            circuit.failed(Admission.DELIVER)
        circuit.succeeded()
        for _ in range(2):
            circuit.failed(Admission.DELIVER)
        assert await circuit.admit() is Admission.DELIVER  # 2 in a row since the success
        circuit.failed(Admission.DELIVER)
        assert await circuit.admit() is Admission.REFUSE

    asyncio.run(scenario())


def test_after_the_open_time_one_delivery_probes_and_its_outcome_decides() -> None:
    async def scenario() -> None:
        clock = Clock()
        circuit = EndpointCircuit(failures_to_open=1, open_s=30.0, clock=clock)
        circuit.failed(Admission.DELIVER)
        clock.now += 29.9
        assert await circuit.admit() is Admission.REFUSE
        clock.now += 0.2
        assert await circuit.admit() is Admission.PROBE
        circuit.failed(Admission.PROBE)  # still down: open again, for the whole time
        clock.now += 29.9
        assert await circuit.admit() is Admission.REFUSE
        clock.now += 0.2
        assert await circuit.admit() is Admission.PROBE
        circuit.succeeded()
        assert await circuit.admit() is Admission.DELIVER

    asyncio.run(scenario())


async def probing_circuit() -> EndpointCircuit:
    """A circuit opened by one failure, its open time over, and one delivery admitted as its probe."""
    clock = Clock()
    circuit = EndpointCircuit(failures_to_open=1, open_s=30.0, clock=clock)
    circuit.failed(Admission.DELIVER)
    clock.now += 31
    assert await circuit.admit() is Admission.PROBE
    return circuit


def test_deliveries_during_a_probe_wait_for_its_outcome() -> None:
    async def scenario() -> None:
        circuit = await probing_circuit()
        waiting = asyncio.ensure_future(circuit.admit())
        await asyncio.sleep(0.01)
        assert not waiting.done()
        circuit.succeeded()
        assert await waiting is Admission.DELIVER

    asyncio.run(scenario())


def test_a_probe_that_ends_without_an_outcome_lets_the_next_delivery_probe() -> None:
    async def scenario() -> None:
        circuit = await probing_circuit()
        circuit.end_probe()  # cancelled, say
        assert await asyncio.wait_for(circuit.admit(), timeout=1) is Admission.PROBE

    asyncio.run(scenario())


# -- the deliverer with a dead and a healthy receiver ------------------------------------------


def receivers(requests: dict[str, int], dead: dict[str, bool]) -> Starlette:
    """``/healthy`` answers 200; ``/dead`` answers 503 while ``dead["now"]``. Counts the requests."""

    async def healthy(request: Request) -> Response:
        requests["healthy"] += 1
        return JSONResponse({"ok": True})

    async def maybe_dead(request: Request) -> Response:
        requests["dead"] += 1
        return JSONResponse({"error": "down"}, status_code=503) if dead["now"] else JSONResponse({"ok": True})

    return Starlette(
        routes=[Route("/healthy", healthy, methods=["POST"]), Route("/dead", maybe_dead, methods=["POST"])]
    )


def test_a_dead_endpoint_is_dead_lettered_untried_while_its_circuit_is_open_and_the_other_is_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr("streams.retry.asyncio", SimpleNamespace(sleep=no_sleep))
    requests = {"healthy": 0, "dead": 0}
    dead = {"now": True}
    clock = Clock()
    codec = make_event_codec(KafkaSettings())
    dead_letters = DeadLetters()
    offsets = iter(range(1_000))

    def batch(size: int) -> list:  # type: ignore[type-arg]
        return [
            notification_message(codec, f"d-{offset}", offset)
            for offset in (next(offsets) for _ in range(size))
        ]

    with serve_in_thread(receivers(requests, dead)) as url:

        async def scenario() -> None:
            async with httpx.AsyncClient(timeout=5) as client:
                deliverer = make_deliverer(
                    client,
                    [f"{url}/healthy", f"{url}/dead"],
                    policy=POLICY,
                    dead_letters=dead_letters,
                    circuits=EndpointCircuits(failures_to_open=3, open_s=30.0, clock=clock),
                    codec=codec,
                )
                # 1. Three deliveries fail every attempt: 9 requests, and the circuit opens.
                await deliverer.process(batch(3))
                assert requests == {"healthy": 3, "dead": 9}
                assert [letter.attempts for letter in dead_letters.sent] == [3, 3, 3]
                # 2. While open: the dead endpoint gets no request, no backoff is waited, the other is served.
                dead_letters.sent.clear()
                waits.clear()
                await deliverer.process(batch(5))
                assert requests == {"healthy": 8, "dead": 9}
                assert waits == []
                assert [letter.attempts for letter in dead_letters.sent] == [0] * 5
                assert {letter.destination for letter in dead_letters.sent} == {f"{url}/dead"}
                assert isinstance(dead_letters.sent[0].error, DeliveryError)
                assert "circuit is open" in str(dead_letters.sent[0].error)
                # 3. Time is up, still down: one request (the probe, tried once), the rest untried.
                clock.now += 31
                dead_letters.sent.clear()
                await deliverer.process(batch(4))
                assert requests == {"healthy": 12, "dead": 10}
                assert sorted(letter.attempts for letter in dead_letters.sent) == [0, 0, 0, 1]
                # 4. Back up: the probe succeeds, and the deliveries waiting on it go through.
                dead["now"] = False
                clock.now += 31
                dead_letters.sent.clear()
                await deliverer.process(batch(4))
                assert requests == {"healthy": 16, "dead": 14}
                assert dead_letters.sent == []

        asyncio.run(scenario())

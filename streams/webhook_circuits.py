"""A circuit breaker per webhook endpoint, so that one endpoint that is down does not hold up the others.

The webhooks agent acknowledges a batch only once every delivery in it has succeeded or been
dead-lettered, and a failing delivery is retried for up to a minute or so (``webhook_attempts`` with
backoff). Without a breaker an endpoint that is down would cost every later batch, and with it every
other endpoint's deliveries, that minute.

- **Closed** (the normal state): deliveries get every attempt of the retry policy. After
  ``failures_to_open`` deliveries in a row that failed every attempt, the circuit opens.
- **Open** for ``open_s``: the endpoint's deliveries are not tried; each becomes a dead letter at once
  (stage ``deliver``, ``destination`` = the endpoint), which ``tidewire dlq replay`` re-delivers to that
  endpoint only once it is back.
- **Half-open** when that time is up: one delivery is tried, once. Success closes the circuit, failure
  opens it again. The endpoint's other deliveries meanwhile wait for that outcome.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class Admission(enum.Enum):
    """What a delivery may do now."""

    DELIVER = "deliver"  # every attempt of the retry policy
    PROBE = "probe"  # one attempt: the circuit is half-open and this delivery tests the endpoint
    REFUSE = "refuse"  # none: the circuit is open


@dataclass
class EndpointCircuit:
    """The breaker of one endpoint."""

    failures_to_open: int
    open_s: float
    clock: Callable[[], float] = time.monotonic
    failures_in_a_row: int = 0
    open_until: float | None = None
    _probe: asyncio.Future[None] | None = field(default=None, repr=False)

    @property
    def is_open(self) -> bool:
        return self.open_until is not None

    async def admit(self) -> Admission:
        """Whether the next delivery is tried, and how; waits while another delivery probes."""
        while self._probe is not None:
            await asyncio.shield(self._probe)
        if self.open_until is None:
            return Admission.DELIVER
        if self.clock() < self.open_until:
            return Admission.REFUSE
        self._probe = asyncio.get_running_loop().create_future()
        return Admission.PROBE

    def succeeded(self) -> None:
        self.failures_in_a_row = 0
        self.open_until = None
        self.end_probe()

    def failed(self, admission: Admission) -> None:
        """A delivery admitted as ``admission`` failed its last attempt."""
        self.failures_in_a_row += 1
        if admission is Admission.PROBE or self.failures_in_a_row >= self.failures_to_open:
            self.open_until = self.clock() + self.open_s
        self.end_probe()

    def end_probe(self) -> None:
        """Let the deliveries waiting on a probe go on (also when the probe was cancelled: the next
        delivery then probes instead); nothing when no probe runs."""
        if self._probe is not None:
            self._probe.set_result(None)
            self._probe = None


class EndpointCircuits:
    """The breakers of every endpoint, by URL, made on first use."""

    def __init__(
        self, *, failures_to_open: int, open_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._failures_to_open = failures_to_open
        self._open_s = open_s
        self._clock = clock
        self._circuits: dict[str, EndpointCircuit] = {}

    def of(self, url: str) -> EndpointCircuit:
        circuit = self._circuits.get(url)
        if circuit is None:
            circuit = EndpointCircuit(self._failures_to_open, self._open_s, self._clock)
            self._circuits[url] = circuit
        return circuit

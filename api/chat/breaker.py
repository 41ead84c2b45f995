"""A circuit breaker: after ``failures`` consecutive failures a provider is skipped for ``reset_s``;
then one trial call (half-open) decides whether it closes again."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(self, *, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._reset_s = reset_s
        self._clock = clock
        self._consecutive_failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self._reset_s:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """Whether a call may go through now (in half-open state: only one trial at a time)."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def record_success(self) -> None:
        self._consecutive_failures = 0
        self._opened_at = None
        self._trial_running = False

    def record_failure(self) -> None:
        self._trial_running = False
        self._consecutive_failures += 1
        if self._opened_at is not None or self._consecutive_failures >= self._threshold:
            self._opened_at = self._clock()

    def release_trial(self) -> None:
        """A trial ended without a verdict (the client went away): let the next call try."""
        self._trial_running = False

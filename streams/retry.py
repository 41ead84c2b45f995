"""Retry with exponential backoff, as data: a policy, a pure delay function, and one loop that owns it."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from streams.errors import PoisonEventError, WorkerCrashError

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all; the wait before try ``n + 1`` is ``initial * 2**(n - 1)``, capped.

    ``jitter`` (0 to 1) shortens each wait by a random fraction up to it, so that many callers that
    failed together (every delivery of a batch to one endpoint) do not all try again at once.
    """

    attempts: int
    initial_backoff_s: float
    max_backoff_s: float
    jitter: float = 0.0

    def delay(self, failed_attempt: int, retry_after_s: float = 0.0) -> float:
        """Seconds to wait after the ``failed_attempt``-th (1-based) failure; at least ``retry_after_s``."""
        backoff = min(self.max_backoff_s, self.initial_backoff_s * 2 ** (failed_attempt - 1))
        if self.jitter:
            backoff *= 1.0 - self.jitter * random.random()  # spreading retries: no secret, any generator
        return max(backoff, retry_after_s)


async def retrying(
    operation: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    what: str,
    on_retry: Callable[[int, BaseException], None] = lambda _attempt, _error: None,
) -> T:
    """Run ``operation`` until it succeeds or ``policy.attempts`` tries have failed.

    Every exception except :class:`PoisonEventError` is retried: the operation is the idempotent
    work of a whole batch, and a failure that never passes (a bug included) must end in a
    :class:`WorkerCrashError`, never in an acknowledged batch.
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            return await operation()
        except PoisonEventError:
            raise
        except Exception as error:
            if attempt == policy.attempts:
                raise WorkerCrashError(
                    f"{what} failed {attempt} times, last with {type(error).__name__}: {error}"
                ) from error
            delay = policy.delay(attempt, getattr(error, "retry_after_s", 0.0))
            logger.warning(
                "%s failed (attempt %d of %d): %s: %s; retrying in %.1fs",
                what, attempt, policy.attempts, type(error).__name__, error, delay,
            )  # fmt: skip
            on_retry(attempt, error)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

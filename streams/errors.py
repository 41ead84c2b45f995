"""Errors of the stream processors.

The agents route on the class:

- :class:`PoisonEventError` — *this message* can never be processed (undecodable, invalid for its
  pipeline): the one dead-letter handler sends it to ``tidewire.dlq`` and the batch goes on.
- :class:`RetryableBatchError` — the batch may succeed later (database or model unavailable): the
  batch loop retries it with backoff, and the worker exits when the retries run out.
- :class:`WorkerCrashError` — the retries ran out; raised only to be logged before the hard exit.
"""

from __future__ import annotations

from tidewire.errors import TidewireError
from tidewire.events import FailureStage


class StreamsError(TidewireError):
    """Root of the stream processors' errors."""

    code = "streams_error"


class PoisonEventError(StreamsError):
    """A message that no retry will ever process; ``stage`` says where it failed."""

    code = "poison_event"

    def __init__(self, message: str, *, stage: FailureStage, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.stage = stage

    @property
    def reason(self) -> str:
        """The one line that goes into the dead letter."""
        return self.message


class RetryableBatchError(StreamsError):
    """The batch's work failed for a reason that may pass; retry after ``retry_after_s`` at the earliest."""

    code = "batch_retryable"

    def __init__(self, message: str, *, retry_after_s: float = 0.0, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class WorkerCrashError(StreamsError):
    """A batch kept failing through every retry: the worker exits without committing its offsets."""

    code = "worker_crash"


class DeliveryError(StreamsError):
    """A webhook endpoint refused or did not answer a delivery; ``retry_after_s``: what its
    ``Retry-After`` asked for (429, 503), the least wait before the next attempt."""

    code = "webhook_delivery_failed"

    def __init__(self, message: str, *, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ReplayRefusedError(StreamsError):
    """Offsets cannot be reset while workers of the group are consuming."""

    code = "replay_refused"

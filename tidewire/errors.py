"""The error hierarchy shared by every Tidewire package.

Every error a user can meet is a :class:`TidewireError`: it carries a stable
``code`` (for scripts and logs) and a one-line message that says what to do next.
The CLI prints exactly that line; nothing else needs to format errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tidewire.settings import PostgresSettings


def first_line(error: BaseException | str) -> str:
    """The first non-empty line of an error (a driver's message may go on with ``LINE 1:``, a caret
    line or a hint): what a one-line message quotes. An exception with no text gives its type's name."""
    text = str(error).strip()
    if text:
        return text.splitlines()[0]
    return type(error).__name__ if isinstance(error, BaseException) else ""


class TidewireError(Exception):
    """Root of Tidewire's errors: a stable code and a one-line, actionable message."""

    code: str = "tidewire_error"
    exit_code: int = 1

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class ConfigurationError(TidewireError):
    """Settings or a spec file are invalid; the message names the field and the fix."""

    code = "configuration_error"
    exit_code = 2


class PrerequisiteError(TidewireError):
    """A system prerequisite (Java, Maven, a free port) is missing or unusable."""

    code = "prerequisite_missing"
    exit_code = 3


class ServiceError(TidewireError):
    """A service of the local stack failed to start, stop, or become ready."""

    code = "service_error"
    exit_code = 4

    @classmethod
    def postgres_unreachable(
        cls, settings: PostgresSettings, error: BaseException, purpose: str = ""
    ) -> ServiceError:
        """Postgres did not answer, or the connection broke, while doing ``purpose`` ("to prune
        answers"...): the address, the driver's first line, and what to check next."""
        reason = first_line(error)
        doing = f" {purpose}" if purpose else ""
        return cls(
            f"cannot reach Postgres at {settings.host}:{settings.port}{doing}: {reason}; "
            "is the stack up (`tidewire status`)?"
        )


class ConnectError(TidewireError):
    """Kafka Connect refused or failed a request."""

    code = "connect_error"
    exit_code = 5


class StorageError(TidewireError):
    """The vector store (pgvector tables) refused a read or a write."""

    code = "storage_error"
    exit_code = 6


class VectorStoreUnavailableError(StorageError):
    """Postgres could not be reached or dropped the connection: retry the whole batch after ``retry_after_s``."""

    code = "vector_store_unavailable"

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InvalidVectorWriteError(StorageError):
    """A write carries data the vector table cannot hold (wrong dimension, NaN, chunk gaps): a caller bug."""

    code = "invalid_vector_write"

"""The crash path: a failed or cancelled batch ends the process before anything can acknowledge it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from streams import batch_loop
from streams.messages import MessageRef, RawMessage

MESSAGES = [RawMessage(MessageRef("cdc.public.documents", 1, 5), b"k", b"v")]


class Exited(BaseException):
    """Stands in for os._exit: BaseException, so no `except Exception` in the code can swallow it."""


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        raise Exited

    monkeypatch.setattr(batch_loop.os, "_exit", fake_exit)
    return codes


def test_a_successful_batch_returns(exits: list[int]) -> None:
    async def ok(_messages: Sequence[RawMessage]) -> None:
        return None

    asyncio.run(batch_loop.process_or_exit("embed", MESSAGES, ok))
    assert exits == []


@pytest.mark.parametrize("error", [RuntimeError("database gone"), asyncio.CancelledError()])
def test_a_failed_or_cancelled_batch_exits_with_75(exits: list[int], error: BaseException) -> None:
    async def failing(_messages: Sequence[RawMessage]) -> None:
        raise error

    with pytest.raises(Exited):
        asyncio.run(batch_loop.process_or_exit("embed", MESSAGES, failing))
    assert exits == [batch_loop.EXIT_BATCH_FAILED]

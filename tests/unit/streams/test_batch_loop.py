"""The crash path: a failed or cancelled batch ends the process before anything can acknowledge it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from faust.types.tuples import Message

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


class FaustEvent:
    """A Faust event's acknowledgement path, on a real ``faust`` message (its reference count)."""

    def __init__(self, offset: int) -> None:
        self.message = Message("cdc.public.documents", 1, offset, 0.0, 0, {}, b"k", b"v", None)
        self.message.incref()  # Faust's delivery to the one stream

    def ack(self) -> bool:
        return self.message.ack(consumer=None)  # type: ignore[arg-type]


def test_a_held_batch_is_acknowledged_only_when_its_commit_succeeded(exits: list[int]) -> None:
    events = [FaustEvent(offset) for offset in range(3)]
    committed = asyncio.Event()

    async def commit() -> str:
        await committed.wait()
        return "written"

    async def scenario() -> str | None:
        commits: batch_loop.CommitBehind[str] = batch_loop.CommitBehind("embed")
        commits.begin(events, MESSAGES, commit())
        for event in events:
            event.ack()  # what Faust's take_events does when the agent's loop body returns
        await asyncio.sleep(0.01)
        assert not any(event.message.acked for event in events)  # the commit is still running
        committed.set()
        return await commits.settle()

    assert asyncio.run(scenario()) == "written"
    assert all(event.message.acked for event in events)
    assert exits == []


def test_one_commit_at_a_time_and_a_truncating_one_blocks_the_next_preparation(exits: list[int]) -> None:
    async def commit() -> int:
        return 1

    async def scenario() -> None:
        commits: batch_loop.CommitBehind[int] = batch_loop.CommitBehind("embed")
        assert await commits.settle() is None and not commits.blocks_preparation
        commits.begin([FaustEvent(0)], MESSAGES, commit(), blocks_preparation=True)
        assert commits.blocks_preparation
        with pytest.raises(RuntimeError, match="settle it first"):
            commits.begin([FaustEvent(1)], MESSAGES, commit())
        assert await commits.settle() == 1
        assert not commits.blocks_preparation

    asyncio.run(scenario())


@pytest.mark.parametrize("error", [RuntimeError("database gone"), asyncio.CancelledError()])
def test_a_failed_background_commit_exits_without_acknowledging(
    exits: list[int], error: BaseException
) -> None:
    events = [FaustEvent(0)]

    async def commit() -> None:
        raise error

    async def scenario() -> None:
        commits: batch_loop.CommitBehind[None] = batch_loop.CommitBehind("embed")
        commits.begin(events, MESSAGES, commit())
        events[0].ack()
        await commits.settle()

    with pytest.raises(Exited):
        asyncio.run(scenario())
    assert exits == [batch_loop.EXIT_BATCH_FAILED]
    assert not events[0].message.acked

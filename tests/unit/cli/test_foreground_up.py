"""The foreground `up`'s wait: an interrupt is a clean stop, however soon after the line it comes."""

from __future__ import annotations

import pytest

from tidewire.cli import stack_commands


def test_an_interrupt_right_after_the_serving_line_is_a_clean_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    printed: list[str] = []

    def print_then_get_interrupted(message: str) -> None:
        # What a SIGTERM sent by whoever reads the line does: it lands before the next statement runs.
        printed.append(message)
        raise KeyboardInterrupt

    monkeypatch.setattr(stack_commands.console, "print", print_then_get_interrupted)
    stack_commands.serve_until_interrupted()  # returns instead of letting the interrupt escape
    assert printed == ["serving until Ctrl-C (then everything stops; use --detach to keep it running)"]

"""``tidewire dlq list|show|replay`` and ``tidewire replay``: operating the dead letters and offsets."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Registered once the commands exist."""

"""``tidewire up|down|status``: the local stack."""

from __future__ import annotations

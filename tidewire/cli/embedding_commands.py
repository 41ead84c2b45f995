"""``tidewire embed`` and ``tidewire model ...``: the embedding engine from the command line."""

from __future__ import annotations

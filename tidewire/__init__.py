"""Tidewire: keep a vector index of Postgres data fresh, event by event."""

__version__ = "0.1.0"

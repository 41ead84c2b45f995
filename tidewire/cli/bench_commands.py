"""``tidewire bench ...``: benchmarks whose results go into docs/benchmarks.md."""

from __future__ import annotations

from tidewire.cli.app import cli


@cli.group()
def bench() -> None:
    """Run benchmarks (results are printed as a table and written as JSON)."""

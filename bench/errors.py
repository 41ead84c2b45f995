"""Errors of the benchmarks, each a :class:`~tidewire.errors.TidewireError` with a stable code."""

from __future__ import annotations

from tidewire.errors import TidewireError


class BenchmarkError(TidewireError):
    """A benchmark could not run to the end (its set-up was refused, or a phase never finished)."""

    code = "benchmark_error"
    exit_code = 7

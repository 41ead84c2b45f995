"""Benchmarks run by `tidewire bench ...`; results go into docs/benchmarks.md."""

"""Benchmarks: `python -m bench` measures the service against the in-process SDK and the
database's floor (see docs/benchmarks.md)."""

"""Benchmarks: scripts that start what they need, measure, and print figures."""

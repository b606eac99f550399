"""Benchmarks, run by scripts/run-benchmarks (not part of the test suite).

Each public module here is one benchmark: `python -m bench.<name> [--quick]` prints its figures,
each as a ratio against a baseline measured in the same run. Modules starting with `_` are helpers.
"""

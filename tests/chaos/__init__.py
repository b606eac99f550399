"""The chaos suite: crashes, cut links and unplugged modems against a real gateway, counted per
message (docs/reliability.md). `python -m tests.chaos` or `scripts/run-chaos` runs the long
version; tests/chaos/test_chaos.py runs a short one in the normal suite."""

"""Long mode of the fuzzers: `python -m tests.fuzz [--inputs N] [--http-examples N] [--only ...]`
(what scripts/run-fuzz runs). Prints the inputs each decoder and parser got, the HTTP requests
by status, and the time taken; exits non-zero on the first finding, with hypothesis' shrunk
example."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz.decoders import COUNTS, TARGETS, run
from tests.fuzz.http import run_http_fuzz

PARTS = [t.name for t in TARGETS] + ["http", "http-v1"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/run-fuzz", description=__doc__)
    parser.add_argument(
        "--inputs",
        type=int,
        default=1_000_000,
        help="inputs per decoder and AT reply parser (default 1,000,000)",
    )
    parser.add_argument(
        "--http-examples",
        type=int,
        default=300,
        help="examples per HTTP operation and mode, each sent twice (default 150)",
    )
    parser.add_argument("--only", choices=PARTS, action="append", help="run only these parts")
    args = parser.parse_args(argv)
    # The parsers log what they skip ("unparsable +CMGL line"); millions of such lines say nothing.
    logging.disable(logging.WARNING)
    parts = args.only or PARTS
    failed = False
    for target in TARGETS:
        if target.name not in parts:
            continue
        started = time.monotonic()
        try:
            examples = run(target, args.inputs)
        except Exception as exc:  # hypothesis re-raises the finding after shrinking it
            print(f"FINDING in {target.name}: {exc!r}", file=sys.stderr)
            failed = True
            continue
        seconds = time.monotonic() - started
        print(f"== {target.name}: {examples:,} hypothesis examples in {seconds:,.0f} s")
        for name in target.counted:
            print(f"  {name:<40} {COUNTS[name]:>12,} inputs, 0 unexpected exceptions")
    # http: the described compat and agent APIs; http-v1: /api/v1 from its served document.
    for part, apis in (("http", ()), ("http-v1", ("v1",))):
        if part not in parts:
            continue
        with tempfile.TemporaryDirectory(prefix="simhive-fuzz-") as tmp:
            try:
                stats = run_http_fuzz(Path(tmp), args.http_examples, apis)
            except Exception as exc:
                print(f"FINDING in {part}: {exc!r}", file=sys.stderr)
                return 1
        statuses = ", ".join(f"{s}: {n:,}" for s, n in sorted(stats.statuses.items()))
        print(
            f"== {part}: {stats.requests:,} requests over {len(stats.per_operation)} operation"
            f" modes in {stats.seconds:,.0f} s; by status {statuses}; 0 5xx, 0 server errors"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""docs/architecture.md walks a message through the code in the order it travels, naming files
that exist (tests/docs/test_references.py checks every path), and states the rules that keep it
safe."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text()

# The stops (files, and the one agent call), in the order a message passes them.
WALK = [
    "server/api/compat.py",  # the request
    "server/core/gateway.py",  # the core
    "server/store/writer.py",  # stored, on disk
    "agent/pull.py",  # the long poll
    "server/store/sqlite_lease.py",  # the lease, late binding
    "agent/journal/outbox.py",  # journaled before commit
    "server/core/lease_sweeper.py",  # or back to the queue
    "agent/dispatcher.py",  # paced, marked dispatching
    "agent/modem/atmodem.py",  # the modem
    "agent/reports.py",  # status reports
    "POST /agent/v1/report",  # applied once on the server
    "server/core/webhooks.py",  # webhooks
]


def test_the_walk_follows_the_message() -> None:
    body = DOC.split("## 1.", 1)[1]  # after the overview drawing
    positions = [body.index(f"`{path}`") for path in WALK]
    assert positions == sorted(positions)


def test_the_safety_rules_are_named() -> None:
    rules = DOC.split("## The rules that keep it safe", 1)[1]
    for rule in ("**Never lost.**", "**Never doubled.**", "**Late binding for pools.**"):
        assert rule in rules

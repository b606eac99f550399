"""Run as a script: `simhive-server run ARGS...` in this interpreter, and from a thread report which
optional modules it has loaded once started, then again after the first request of each lazily
loaded feature. Prints one JSON object; test_lazy_imports.py reads it.

A fresh interpreter running the real command (not a mock): what it has imported is what a
`simhive-server run` process holds in memory.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sys
import threading
import time

from simhive.server.cli import main

WATCHED = (
    "jinja2",
    "simhive.server.console.base",
    "simhive.server.api.v1.reference",
    "simhive.server.api.v1.openapi",
    "prometheus_client",
    "simhive.server.smpp.server",
    "asyncpg",
    "importlib.metadata",
)


def loaded() -> list[str]:
    return [name for name in WATCHED if name in sys.modules]


def get(port: int, path: str) -> tuple[int, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status, time.perf_counter() - started


def probe(port: int, paths: list[str]) -> None:
    report: dict[str, object] = {}
    try:
        for _ in range(400):
            try:
                status, _ = get(port, "/health")
                break
            except OSError:
                time.sleep(0.05)
        report["started"] = loaded()
        for path in paths:
            status, first = get(port, path)
            _, second = get(port, path)
            report[path] = {"status": status, "first_s": first, "second_s": second,
                            "loaded": loaded()}  # fmt: skip
    finally:
        print(json.dumps(report), flush=True)
        os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    port, paths, args = (
        int(sys.argv[1]),
        sys.argv[2].split(",") if sys.argv[2] else [],
        sys.argv[3:],
    )
    threading.Thread(target=probe, args=(port, paths), daemon=True).start()
    main(["run", "--port", str(port), "--no-access-log", *args])

"""Benchmark: submit latency and start-up through the Gammu backend, against the AT backend.

One emulated modem (zero radio latency, no status reports), driven in turn by each backend as
the agent builds them from a [[device]] config. Baseline, measured in the same run: simhive's own
AT backend (agent/modem/atmodem.py) over the same modem. Each round sends the same messages
(single-part GSM 7-bit, then 2-part UCS2) through one backend, then the other; the order
alternates per round so warm-up and machine noise fall on both. Printed: median and p90 per
message and per part, the Gammu/AT ratios, start-up (open, init, identity, SIM, sweep) and what
one modem could submit per minute through each backend. The radio adds seconds per part on a
real network and operators cap a SIM at a few to about 30 SMS a minute:
these figures are the software's own cost.

    .venv/bin/python -m bench.gammu_send [--quick] [--messages 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path

from bench._common import report
from simhive.agent.backends import build_modem
from simhive.agent.config import parse
from simhive.agent.modem.base import Modem, ModemEvent, SendResult
from simhive.hardware.emulator.client import EmulatorProcess, run_emulator

TO = "+4930123456"
# label -> (text, parts it must take): a wrong split would make the per-part figures lie.
TEXTS = {"gsm7 x1": ("benchmark message", 1), "ucs2 x2": ("Grüße ✓ " * 12, 2)}
BACKENDS = ("at", "gammu")


def device(emu: EmulatorProcess, backend: str, workdir: Path) -> Modem:
    link = emu.state["modems"][0]["link"]
    cfg = parse(
        {
            "server": "http://127.0.0.1:9",  # never contacted: the modem is driven directly
            "journal": str(workdir / "unused.sqlite3"),
            "device": [{"name": backend, "token": "t", "backend": backend, "port": link}],
        }
    ).devices[0]
    return build_modem(cfg)


async def ignore(_event: ModemEvent) -> None:
    return None


async def one_round(
    emu: EmulatorProcess, backend: str, n: int, workdir: Path
) -> tuple[float, dict[str, list[float]]]:
    modem = device(emu, backend, workdir)
    t0 = time.perf_counter()
    await modem.start(ignore)
    started = time.perf_counter() - t0
    times: dict[str, list[float]] = {k: [] for k in TEXTS}
    try:
        if modem.state.value != "ready":
            raise RuntimeError(f"{backend} backend did not become ready: {modem.state.value}")
        for label, (text, parts) in TEXTS.items():
            for _ in range(n):
                t = time.perf_counter()
                result: SendResult = await modem.send(TO, text, status_report=False)
                times[label].append(time.perf_counter() - t)
                if len(result.references) != parts:
                    raise RuntimeError(
                        f"{backend}: {label} took {len(result.references)} parts, not {parts}"
                    )
    finally:
        await modem.stop()
    return started, times


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * 0.9
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def measure(
    n: int, rounds: int, workdir: Path
) -> tuple[dict[str, list[float]], dict[str, dict[str, list[float]]], int]:
    starts: dict[str, list[float]] = {b: [] for b in BACKENDS}
    samples: dict[str, dict[str, list[float]]] = {b: {k: [] for k in TEXTS} for b in BACKENDS}
    with run_emulator(modems=1, extra_args=["--report-outcome", "none"]) as emu:
        for r in range(rounds):
            order = BACKENDS if r % 2 == 0 else BACKENDS[::-1]
            for backend in order:
                started, times = await one_round(emu, backend, n, workdir)
                starts[backend].append(started)
                for k, v in times.items():
                    samples[backend][k].extend(v)
        submitted = len(emu.client.submitted())
    return starts, samples, submitted


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20, help="messages per text per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny run that only proves it works")
    args, _other = parser.parse_known_args(argv)  # run-benchmarks passes its args to every bench
    n = 2 if args.quick else args.messages
    rounds = 1 if args.quick else args.rounds
    if n < 1 or rounds < 1:
        parser.error("--messages and --rounds must be at least 1")
    if importlib.util.find_spec("gammu") is None:
        # python-gammu is an optional extra (docs/gammu.md): nothing to compare without it.
        print("\n== gammu_send: python-gammu is not installed (scripts/bootstrap gammu);"
              " not measured", flush=True)  # fmt: skip
        return {}

    with tempfile.TemporaryDirectory(prefix="simhive-gammu-bench-") as tmp:
        starts, samples, submitted = asyncio.run(measure(n, rounds, Path(tmp)))
    expected = rounds * len(BACKENDS) * n * sum(parts for _, parts in TEXTS.values())
    if submitted != expected:
        raise RuntimeError(f"the emulator saw {submitted} submitted parts, expected {expected}")

    rows: list[tuple[str, float, str]] = []
    figures: dict[str, float] = {}
    for label, (_text, parts) in TEXTS.items():
        at, gm = samples["at"][label], samples["gammu"][label]
        ma, mg = statistics.median(at), statistics.median(gm)
        rows += [
            (f"{label}: AT backend median (baseline)", ma * 1000, "ms"),
            (f"{label}: Gammu backend median", mg * 1000, "ms"),
            (f"{label}: ratio Gammu / AT", mg / ma, "x"),
            (f"{label}: AT backend p90", p90(at) * 1000, "ms"),
            (f"{label}: Gammu backend p90", p90(gm) * 1000, "ms"),
        ]
        figures[f"{label} at_ms"], figures[f"{label} gammu_ms"] = ma * 1000, mg * 1000
        figures[f"{label} ratio"] = mg / ma
        if parts == 1:
            rows += [
                ("one modem, 1-part SMS per minute: AT backend", 60 / ma, "1/min"),
                ("one modem, 1-part SMS per minute: Gammu backend", 60 / mg, "1/min"),
            ]
    sa, sg = statistics.median(starts["at"]), statistics.median(starts["gammu"])
    rows += [
        ("start: AT backend median (baseline)", sa * 1000, "ms"),
        ("start: Gammu backend median", sg * 1000, "ms"),
        ("start: ratio Gammu / AT", sg / sa, "x"),
    ]
    figures["start at_ms"], figures["start gammu_ms"], figures["start ratio"] = (
        sa * 1000,
        sg * 1000,
        sg / sa,
    )
    report(
        f"Gammu vs AT backend, one zero-latency emulated modem, {n} messages per text x"
        f" {rounds} rounds per backend (start = open, init, identity, SIM, sweep)",
        rows,
    )
    return figures


if __name__ == "__main__":
    main()

"""Benchmark: submit latency through the Gammu backend against the AT backend, same modem.

    python -m tests.gammu.bench_send [--messages 20] [--rounds 2]

One emulated modem (zero radio latency), driven in turn by each backend as the agent builds them.
Each round sends the same messages (single part GSM 7-bit, then 2-part UCS2) through one backend,
then the other; the order alternates per round so warm-up and machine noise fall on both. Printed:
median and p90 per message, and the Gammu/AT ratio. Gammu's start-up (Init) is timed separately.
Not collected by pytest (not a test_ module); a figure here is the software's own cost, the radio
adds seconds per part on a real network.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from agent.backends import build_modem
from agent.config import parse
from agent.modem.base import Modem, ModemEvent
from hardware.emulator.client import EmulatorProcess, run_emulator

TO = "+4930123456"
TEXTS = {"gsm7 x1": "benchmark message", "ucs2 x2": "Grüße ✓ " * 12}


def device(emu: EmulatorProcess, backend: str) -> Modem:
    link = emu.state["modems"][0]["link"]
    cfg = parse(
        {
            "server": "http://127.0.0.1:9",
            "journal": "unused.sqlite3",
            "device": [{"name": backend, "token": "t", "backend": backend, "port": link}],
        }
    ).devices[0]
    return build_modem(cfg)


async def ignore(_event: ModemEvent) -> None:
    return None


async def one_round(
    emu: EmulatorProcess, backend: str, n: int
) -> tuple[float, dict[str, list[float]]]:
    modem = device(emu, backend)
    t0 = time.perf_counter()
    await modem.start(ignore)
    started = time.perf_counter() - t0
    times: dict[str, list[float]] = {k: [] for k in TEXTS}
    try:
        for label, text in TEXTS.items():
            for _ in range(n):
                t = time.perf_counter()
                await modem.send(TO, text, status_report=False)
                times[label].append(time.perf_counter() - t)
    finally:
        await modem.stop()
    return started, times


def p90(values: list[float]) -> float:
    return sorted(values)[int(0.9 * (len(values) - 1))]


async def main(n: int, rounds: int) -> None:
    with run_emulator(modems=1, extra_args=["--report-outcome", "none"]) as emu:
        starts: dict[str, list[float]] = {"at": [], "gammu": []}
        samples: dict[str, dict[str, list[float]]] = {b: {k: [] for k in TEXTS} for b in starts}
        for r in range(rounds):
            order = ["at", "gammu"] if r % 2 == 0 else ["gammu", "at"]
            for backend in order:
                started, times = await one_round(emu, backend, n)
                starts[backend].append(started)
                for k, v in times.items():
                    samples[backend][k].extend(v)
        print(f"submit latency per message, {n} x {rounds} rounds per backend, emulator latency 0")
        print(f"{'message':<10} {'AT median':>10} {'Gammu median':>13} {'ratio':>7} "
              f"{'AT p90':>8} {'Gammu p90':>10}")  # fmt: skip
        for k in TEXTS:
            at, gm = samples["at"][k], samples["gammu"][k]
            ma, mg = statistics.median(at), statistics.median(gm)
            print(f"{k:<10} {ma * 1000:>8.1f}ms {mg * 1000:>11.1f}ms {mg / ma:>6.1f}x "
                  f"{p90(at) * 1000:>6.1f}ms {p90(gm) * 1000:>8.1f}ms")  # fmt: skip
        sa, sg = statistics.median(starts["at"]), statistics.median(starts["gammu"])
        print(
            f"start (open, init, identity, SIM, sweep): AT {sa:.2f} s, Gammu {sg:.2f} s, "
            f"ratio {sg / sa:.1f}x"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.rounds))

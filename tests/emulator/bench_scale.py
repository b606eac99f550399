"""Benchmark: is the emulator ever the bottleneck? Run: python -m tests.emulator.bench_scale

Starts `simhive-emulator run` with zero latency and drives its ptys with pyserial, one thread per
modem, the way an agent would (one command in flight per port). Figures are printed as ratios
against baselines measured in the same run:
  - baseline A: bare `AT` round trips on one modem (pty + AT engine, nothing else);
  - baseline B: AT+CMGS round trips (prompt, PDU, +CMGS) on one modem, sequentially;
  - scale: the same sends on N modems at once, with status reports requested and read.
Emulator CPU time per SMS comes from /proc/<pid>/stat. Not a test: prints, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path

from simhive.agent.modem import pdu
from simhive.hardware.emulator.client import run_emulator

from .serialport import AtPort


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def at_round_trips(port: AtPort, count: int) -> list[float]:
    times = []
    for _ in range(count):
        t = time.perf_counter()
        port.cmd("AT")
        times.append(time.perf_counter() - t)
    return times


def sends(port: AtPort, to: str, count: int, *, reports: bool) -> list[float]:
    part = pdu.encode_submit(to, "benchmark message", status_report=reports)[0]
    times = []
    for _ in range(count):
        t = time.perf_counter()
        out = port.send_pdu(part.tpdu_length, part.hex)
        times.append(time.perf_counter() - t)
        assert "+CMGS:" in out, out
    if reports:
        deadline = time.monotonic() + 60
        while port.consumed + port.buf.count(b"+CDS: ") < count:
            assert time.monotonic() < deadline, "status reports missing"
            port.buf += port.serial.read(port.serial.in_waiting or 1)
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--modems", type=int, default=16)
    ap.add_argument("--sms", type=int, default=60, help="SMS per modem in the scale run")
    args = ap.parse_args()
    n = args.modems
    with run_emulator(modems=n, profile="generic") as emu:
        links = [m["link"] for m in emu.state["modems"]]
        sink = "+4930123456"  # outside the emulated set: reported at once, stored nowhere
        ports = [AtPort(link) for link in links[:n]]
        for p in ports:
            p.cmd("ATE0;+CMEE=1;+CNMI=2,0,0,1,0")
        at = at_round_trips(ports[0], 300)
        one = sends(ports[0], sink, args.sms, reports=False)
        cpu0 = cpu_seconds(emu.proc.pid)
        results: list[list[float]] = [[] for _ in range(n)]

        def worker(i: int) -> None:
            results[i] = sends(ports[i], sink, args.sms, reports=True)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(emu.proc.pid) - cpu0
        submitted = len(emu.client.submitted())
        for p in ports:
            p.close()
    every = [t for r in results for t in r]
    total = n * args.sms
    at_p50, one_p50 = statistics.median(at), statistics.median(one)
    print(f"baseline A  AT round trip, 1 modem:       p50 {at_p50 * 1e3:.3f} ms")
    print(
        f"baseline B  AT+CMGS round trip, 1 modem:  p50 {one_p50 * 1e3:.3f} ms "
        f"({one_p50 / at_p50:.1f}x baseline A; a send is two round trips: prompt and answer)"
    )
    print(
        f"scale       {n} modems x {args.sms} SMS with reports: {total} SMS in {wall:.2f} s "
        f"= {total / wall:.0f} SMS/s"
    )
    print(
        f"            per-SMS p50 {statistics.median(every) * 1e3:.2f} ms, "
        f"p99 {pct(every, 0.99) * 1e3:.2f} ms "
        f"({statistics.median(every) / one_p50:.1f}x / "
        f"{pct(every, 0.99) / one_p50:.1f}x baseline B)"
    )
    print(
        f"            emulator CPU {cpu / total * 1e3:.2f} ms per SMS (incl. delivery and report); "
        f"throughput {total / wall / (1 / one_p50):.1f}x one modem's sequential rate"
    )
    print(f"            submitted log: {submitted} entries (expected {total + args.sms})")
    need = n * 30 / 60
    print(
        f"radio reality: one SIM sends 6-30 SMS/min; {n} SIMs need <= {need:.0f} SMS/s; "
        f"emulator CPU allows ~{total / cpu:.0f} SMS/s per core = {total / cpu / need:.0f}x that"
    )


if __name__ == "__main__":
    main()

"""End-to-end benchmark of the whole gateway: server, agent and emulated modems as processes.

Part "scale", simhive alone over N zero-latency emulated modems (64 by default), one agent:

1. Latency: API accept -> AT+CMGS with idle, long-polling agents. Each sample is one `addsms`
   to a device whose agent loop sits in its long poll; the emulator records the CLOCK_MONOTONIC
   time at which it wrote `+CMGS: <mr>` (docs/emulator.md), and this process reads the same
   clock around its `addsms` call. Samples go round-robin over the devices (bench._e2e.target),
   so no SIM is asked to send again within its pacing interval: the figure is the software
   path, not the pacing. Baseline, measured in the same run: the `addsms` HTTP round trip.
2. Throughput: a batch spread over the N modems, from the end of ingest to the last AT+CMGS and
   to the last delivery report (status 7 for all), with the CPU time per SMS of the agent and
   the server and their RSS (from /proc); three batches one after another (`--rounds`), each
   figure their median, with the lowest and highest send rate and CPU per SMS. Baseline,
   measured in the same run: the same ptys driven directly with text-mode AT+CMGS by one
   thread per modem (no server, no journal): the emulator's own capacity, which the agent
   cannot exceed; and the disk's fsync rate, since the agent's journal makes the steps of a
   message durable. The RSS is shown beside the memory floor of the design, measured in the
   same run (bench/_floor.py): a bare aiohttp handler process and a Python process with
   asyncio, sqlite3 and json. And the agent's requests per SMS by route (pull, commit,
   report, ...), read from the server's /metrics around the batch: under load the server's
   event loop spends most of its time handling them.
3. Durability cost: the agent's fdatasync calls per SMS, counted with `strace -c` attached to
   the agent during a separate, smaller batch (strace slows the process, so this pass is not
   timed). Skipped when strace is not installed or may not attach.

Part "peer": simhive against gammu-smsd from Debian, measured in the same run on the same K
emulated modems (4 by default); see bench/_peer.py and bench/_smsd.py.

Devices get no pacing floor and no caps (FAST_PACING): the radio's limits are not measured here.

    .venv/bin/python -m bench.e2e_latency [--quick] [--part all|scale|peer] [--modems 64]
        [--samples 60] [--messages 1920] [--rounds 3] [--peer-modems 4] [--peer-samples 20]
        [--peer-messages 80]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import serial

from bench import _floor, _peer
from bench._e2e import AGENT_ROUTES as ROUTES
from bench._e2e import OUTSIDE, measure_latency, measure_throughput, percentile, show
from tests.support.stack import FAST_PACING, Device, GatewayStack


def agent_fsyncs_per_sms(
    stack: GatewayStack, messages: int, devices: Sequence[Device] | None = None
) -> float | None:
    """fsync + fdatasync calls of the agent (all threads) per SMS for one batch, or None."""
    assert stack.agent is not None
    strace = shutil.which("strace")
    if strace is None:
        return None
    out = stack.root / "strace-count.txt"
    argv = [strace, "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", str(out),
            "-p", str(stack.agent.pid)]  # fmt: skip
    tracer = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached to every thread before the batch starts
    if tracer.poll() is not None:
        return None  # not allowed to attach (ptrace_scope) or similar
    try:
        measure_throughput(stack, messages, devices)
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(30)
    calls = 0
    for line in out.read_text().splitlines():
        cols = line.split()
        if len(cols) >= 5 and cols[-1] in ("fsync", "fdatasync"):
            calls += int(cols[3])
    return calls / messages


def direct_at_rate(stack: GatewayStack, per_modem: int) -> float:
    """The emulator driven straight over its ptys: one thread per modem, text-mode AT+CMGS."""
    stack.emu.clear_submitted()
    links = [str(dev.modem["link"]) for dev in stack.devices]
    errors: list[BaseException] = []

    def read_until(port: serial.Serial, *tokens: bytes) -> bytes:
        buf = b""
        deadline = time.monotonic() + 30
        while not any(t in buf for t in tokens):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {tokens!r} in {buf!r}")
            buf += port.read(port.in_waiting or 1)
        return buf

    def drive(link: str, start: threading.Event) -> None:
        try:
            with serial.Serial(link, 115200, timeout=0.5) as port:
                for cmd in (b"ATE0\r", b"AT+CMGF=1\r"):
                    port.write(cmd)
                    read_until(port, b"OK\r\n")
                start.wait()
                for i in range(per_modem):
                    port.write(f'AT+CMGS="{OUTSIDE}"\r'.encode())
                    read_until(port, b"> ")
                    port.write(f"direct {link} {i}".encode() + b"\x1a")
                    read_until(port, b"OK\r\n", b"ERROR")
        except BaseException as exc:  # reported after join
            errors.append(exc)

    start = threading.Event()
    threads = [threading.Thread(target=drive, args=(link, start)) for link in links]
    for t in threads:
        t.start()
    time.sleep(1.0)
    t0 = time.monotonic()
    start.set()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    if errors:
        raise RuntimeError(f"direct AT baseline failed: {errors[0]!r}")
    count = len(stack.emu.submitted())
    if count != per_modem * len(links):
        raise RuntimeError(f"direct baseline: {count} submits, expected {per_modem * len(links)}")
    return count / elapsed


def fsync_rate(directory: Path, seconds: float) -> float:
    """Small write + fsync per second on the disk the journal and the database live on: the
    ceiling for anything that makes a message durable before it moves on."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            os.write(fd, b"x" * 100)
            os.fsync(fd)
            count += 1
        return count / (time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()


# What the gateway should reach at 64 modems (docs/benchmarks.md); printed as met or missed.
TARGETS = {"p50_ms": 50.0, "send_rate": 1000.0, "gateway_cpu_ms_per_sms": 1.0,
           "gateway_rss_mib": 64.0}  # fmt: skip


# Figures of the throughput batch that describe the process at its end, not the batch's work:
# from the last round, not the median.
AT_THE_END = ("rss_mib", "hwm_mib", "server_rss_mib", "gateway_rss_mib", "gateway_hwm_mib")


def median_of_rounds(rounds: Sequence[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the rounds (the last round's for AT_THE_END): one batch's rate
    and CPU per SMS moved by a third between runs minutes apart on a quiet machine."""
    out = {}
    for key in rounds[0]:
        values = sorted(r[key] for r in rounds)
        out[key] = rounds[-1][key] if key in AT_THE_END else values[len(values) // 2]
    return out


def scale(
    root: Path, modems: int, samples: int, messages: int, quick: bool, rounds: int = 3
) -> dict[str, float]:
    # No pacing floor or caps (FAST_PACING): the radio's limits are not what is measured.
    stack = GatewayStack(root, modems=modems, profile="generic", dual_sim="none",
                         agent_log_level="warning", device_settings=FAST_PACING)  # fmt: skip
    try:
        stack.start()
        stack.wait_agent_ready(timeout=120)
        time.sleep(1.0)
        lat = measure_latency(stack, samples)
        lat_pool = measure_latency(stack, samples, pool=True)
        single = measure_throughput(stack, max(4, messages // 8), stack.devices[:1])
        batches = [measure_throughput(stack, messages) for _ in range(rounds)]
        tput = median_of_rounds(batches)
        fsyncs_all = agent_fsyncs_per_sms(stack, max(8, messages // 2))
        fsyncs_1 = agent_fsyncs_per_sms(stack, max(4, messages // 8), stack.devices[:1])
        if stack.agent is not None:
            stack.agent.stop()  # it holds the ports exclusively (TIOCEXCL)
        direct = direct_at_rate(stack, max(1, messages // modems))
        fsyncs = fsync_rate(root, 0.5 if quick else 3.0)
        floor = _floor.rows(root, tput["gateway_rss_mib"])
    finally:
        stack.close()

    p50, p99 = percentile(lat["accept"], 50), percentile(lat["accept"], 99)
    rt50, rt99 = percentile(lat["roundtrip"], 50), percentile(lat["roundtrip"], 99)
    req50 = percentile(lat["request"], 50)
    pool50, pool99 = percentile(lat_pool["accept"], 50), percentile(lat_pool["accept"], 99)
    show(
        f"latency: addsms accepted -> AT+CMGS, {samples} samples over {modems} idle agents'"
        " devices",
        [
            ("accept -> AT+CMGS p50", p50, "ms"),
            ("accept -> AT+CMGS p99", p99, "ms"),
            ("request sent -> AT+CMGS p50 (includes addsms)", req50, "ms"),
            ("baseline: addsms HTTP round trip p50", rt50, "ms"),
            ("baseline: addsms HTTP round trip p99", rt99, "ms"),
            ("ratio accept->CMGS p50 / round trip p50", p50 / rt50, "x"),
            ("pool of all SIMs: accept -> AT+CMGS p50", pool50, "ms"),
            ("pool of all SIMs: accept -> AT+CMGS p99", pool99, "ms"),
            ("ratio pool p50 / pinned p50 (target: at most 1)", pool50 / p50, "x"),
        ],
    )
    low = {k: min(b[k] for b in batches) for k in ("send_rate", "gateway_cpu_ms_per_sms")}
    high = {k: max(b[k] for b in batches) for k in ("send_rate", "gateway_cpu_ms_per_sms")}
    show(
        f"throughput: {messages} SMS to one pool of {modems} zero-latency emulated modems,"
        f" {rounds} batches one after another (medians; RSS after the last)",
        [
            ("end of ingest -> last AT+CMGS", tput["send_rate"], "SMS/s"),
            ("  lowest of the batches", low["send_rate"], "SMS/s"),
            ("  highest of the batches", high["send_rate"], "SMS/s"),
            ("end of ingest -> all delivered (status 7)", tput["delivered_rate"], "SMS/s"),
            ("the same agent, all to one modem: -> last AT+CMGS", single["send_rate"], "SMS/s"),
            (f"scaling: {modems} modems / one modem", tput["send_rate"] / single["send_rate"], "x"),
            ("baseline: direct AT+CMGS, one thread per pty", direct, "SMS/s"),
            ("ratio simhive send rate / direct", tput["send_rate"] / direct, "x"),
            ("baseline: fsync'd small writes on the same disk", fsyncs, "1/s"),
            ("fsync capacity per SMS at this send rate", fsyncs / tput["send_rate"], "x"),
            ("agent CPU per SMS", tput["cpu_ms_per_sms"], "ms"),
            ("server CPU per SMS (ingest included)", tput["server_cpu_ms_per_sms"], "ms"),
            ("agent + server CPU per SMS", tput["gateway_cpu_ms_per_sms"], "ms"),
            ("  lowest of the batches", low["gateway_cpu_ms_per_sms"], "ms"),
            ("  highest of the batches", high["gateway_cpu_ms_per_sms"], "ms"),
            ("emulator CPU per SMS", tput["emulator_cpu_ms_per_sms"], "ms"),
            ("cores kept busy by the three during the run", tput["cores_busy"], "cores"),
            ("agent RSS at the end", tput["rss_mib"], "MiB"),
            ("agent peak RSS", tput["hwm_mib"], "MiB"),
            ("server RSS at the end", tput["server_rss_mib"], "MiB"),
            ("agent + server RSS at the end", tput["gateway_rss_mib"], "MiB"),
            ("agent + server peak RSS", tput["gateway_hwm_mib"], "MiB"),
        ],
    )
    show(
        "agent requests per SMS, as the server's /metrics counted them (answered /agent/v1/*)",
        [
            (f"pool batch over {modems} modems: all routes", tput["requests_per_sms"], "1/SMS"),
            *[(f"  {route}", tput[f"requests_{route}_per_sms"], "1/SMS") for route in ROUTES
              if tput[f"requests_{route}_per_sms"]],
            ("all to one modem (pinned): all routes", single["requests_per_sms"], "1/SMS"),
            *[(f"  {route}", single[f"requests_{route}_per_sms"], "1/SMS") for route in ROUTES
              if single[f"requests_{route}_per_sms"]],
        ],
    )  # fmt: skip
    show("memory: agent + server against the floor of Python, asyncio and aiohttp", floor)
    counted = [(f"over {modems} modems", fsyncs_all), ("all to one modem", fsyncs_1)]
    if all(v is not None for _, v in counted):
        show(
            "durability: the agent's fsync + fdatasync calls per SMS (strace -c, untimed pass)",
            [(f"agent fdatasync per SMS, {what}", float(v or 0.0), "1/SMS") for what, v in counted],
        )
    else:
        print("\n  (strace not available or not allowed to attach: fsync count skipped)")
    figures = {"p50_ms": p50, "p99_ms": p99, "pool_p50_ms": pool50, "pool_p99_ms": pool99,
               "roundtrip_p50_ms": rt50, **tput, "direct": direct,
               "fsync_rate": fsyncs, "fsyncs_per_sms": fsyncs_all or float("nan"),
               "fsyncs_per_sms_one_modem": fsyncs_1 or float("nan")}  # fmt: skip
    print(f"\n  targets at 64 modems, this run with {modems}:", flush=True)
    for key, limit in TARGETS.items():
        ok = figures[key] >= limit if key == "send_rate" else figures[key] <= limit
        print(f"    {key} {figures[key]:.2f} {'meets' if ok else 'MISSES'} {limit:g}", flush=True)
    return figures


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("all", "scale", "peer"), default="all")
    parser.add_argument("--modems", type=int, default=64)
    parser.add_argument("--samples", type=int, default=60, help="latency samples")
    parser.add_argument("--messages", type=int, default=1920, help="throughput batch size")
    parser.add_argument("--rounds", type=int, default=3, help="throughput batches (medians)")
    parser.add_argument("--peer-modems", type=int, default=4, help="modems for part peer")
    parser.add_argument("--peer-samples", type=int, default=20)
    parser.add_argument("--peer-messages", type=int, default=80)
    parser.add_argument("--quick", action="store_true", help="tiny run that only proves it works")
    args, _other = parser.parse_known_args(argv)  # run-benchmarks passes its args to every bench
    if args.quick:
        args.modems, args.samples, args.messages, args.rounds = 2, 4, 8, 2
        args.peer_modems, args.peer_samples, args.peer_messages = 2, 2, 4
    if min(args.modems, args.samples, args.messages, args.rounds, args.peer_modems,
           args.peer_samples, args.peer_messages) < 1:  # fmt: skip
        parser.error("counts must be at least 1")

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="simhive-e2e-bench-") as tmp:
        if args.part in ("all", "scale"):
            figures |= scale(Path(tmp) / "scale", args.modems, args.samples, args.messages,
                             args.quick, args.rounds)  # fmt: skip
        if args.part in ("all", "peer"):
            figures |= _peer.run(Path(tmp) / "peer", args.peer_modems, args.peer_samples,
                                 args.peer_messages)  # fmt: skip
    return figures


if __name__ == "__main__":
    main()

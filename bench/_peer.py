"""simhive against gammu-smsd, both measured in one run on the same emulated modems.

One emulator with K zero-latency modems. First simhive (server + one agent driving all K) is
measured; then its processes stop and gammu-smsd (one daemon per modem, bench/_smsd.py) is
measured on the very same ptys, once per LoopSleep value of _smsd.LOOP_SLEEPS. For each:

- latency: one message at a time, round-robin over the modems, 0.3 s apart; from accepted
  (simhive: the addsms answer; gammu-smsd: the rename into its outbox, after gammu-smsd-inject
  wrote the file) to the emulator's `+CMGS: <mr>`, both on CLOCK_MONOTONIC;
- throughput: one batch over the K modems, all queued at once (addalotofsms / renames of staged
  files), from the end of queueing to the last AT+CMGS;
- CPU per SMS: user + system time (/proc/<pid>/stat) of all the gateway's processes (simhive:
  server and agent; gammu-smsd: every daemon) from queueing the batch until the gateway is done
  with it (simhive: every message at status 7; gammu-smsd: every file moved to sent/);
- RSS: VmRSS of the same processes after the batch, summed;
- start: with one message already queued, from launching the gateway's processes to its
  AT+CMGS (simhive: server, then agent once the server listens; gammu-smsd: all K daemons);
- idle CPU: what the processes use in 2 s with nothing to send.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import _smsd
from bench._e2e import (
    OUTSIDE,
    find_submit,
    gateway_pids,
    idle_cores,
    last_submit_id,
    measure_latency,
    measure_throughput,
    percentile,
    rss_kib,
    target,
    total_cpu,
)
from simhive.hardware.emulator.client import EmulatorClient
from tests.support.stack import FAST_PACING, GatewayStack, wait_until

IDLE_SECONDS = 2.0


@dataclass
class Figures:
    name: str
    accept_ms: list[float] = field(default_factory=list)
    request_ms: list[float] = field(default_factory=list)
    send_rate: float = 0.0
    cpu_ms_per_sms: float = 0.0
    rss_mib: float = 0.0
    start_s: float = 0.0
    idle_cores: float = 0.0


def simhive_cold_start(stack: GatewayStack) -> float:
    """Seconds from launching the server and the agent, one message queued, to its AT+CMGS."""
    assert stack.agent is not None and stack.server is not None
    stack.agent.stop()
    text = "cold start"
    since = last_submit_id(stack.emu)
    stack.api("addsms", sendto=OUTSIDE, body=text, **target(stack.devices, 0))
    stack.server.stop()
    t0 = time.monotonic()
    stack.start_server()  # returns once it listens: an agent started earlier would only retry
    stack.start_agent(0)
    part = find_submit(stack.emu, text, since, timeout=120)
    return float(part["monotonic"]) - t0


def measure_simhive(
    root: Path, modems: int, samples: int, messages: int
) -> tuple[Figures, GatewayStack]:
    """simhive's figures and the still running stack (its agent stopped, the ptys free)."""
    stack = GatewayStack(root, modems=modems, profile="generic", dual_sim="none",
                         agent_log_level="warning", device_settings=FAST_PACING)  # fmt: skip
    try:
        stack.start()
        stack.wait_agent_ready(timeout=120)
        out = Figures("simhive")
        # Start-up first, while no SIM has sent anything: a restarted agent applies the shipped
        # 10 s pacing gap to a SIM's first send after one it journaled, whatever the device's
        # settings say, and that would be measured instead of the start.
        out.start_s = simhive_cold_start(stack)
        stack.wait_agent_ready(timeout=120)
        time.sleep(1.0)
        out.idle_cores = idle_cores(gateway_pids(stack), IDLE_SECONDS)
        lat = measure_latency(stack, samples)
        out.accept_ms, out.request_ms = lat["accept"], lat["request"]
        tput = measure_throughput(stack, messages)
        out.send_rate = tput["send_rate"]
        out.cpu_ms_per_sms = tput["gateway_cpu_ms_per_sms"]
        out.rss_mib = tput["gateway_rss_mib"]
        for proc in (*stack.agents, stack.server):
            if proc is not None:
                proc.stop()  # the agent holds the ports exclusively (TIOCEXCL)
    except BaseException:
        stack.close()
        raise
    return out, stack


def wait_submits(
    emu: EmulatorClient, fleet: _smsd.SmsdFleet, count: int, timeout: float
) -> list[dict[str, Any]]:
    """The first `count` submits since the last clear, failing early when a daemon died."""

    def probe() -> list[dict[str, Any]] | None:
        fleet.check_alive()
        parts = emu.submitted()
        return parts if len(parts) >= count else None

    return wait_until(probe, timeout, f"{count} AT+CMGS from gammu-smsd", interval=0.02)


def measure_smsd(
    root: Path, emu: EmulatorClient, links: list[str], loop_sleep: int, samples: int,
    messages: int,
) -> Figures:  # fmt: skip
    fleet = _smsd.SmsdFleet(root, links, loop_sleep)
    out = Figures(f"gammu-smsd LoopSleep={loop_sleep}")
    modems = len(links)
    try:
        # One message waits in every outbox before the daemons start: the first AT+CMGS is the
        # start-up figure, all of them say that every daemon is up.
        emu.clear_submitted()
        for i in range(modems):
            fleet.release(i, fleet.stage(i, OUTSIDE, f"warm-up {i}"))
        t0 = time.monotonic()
        fleet.start()
        parts = wait_submits(emu, fleet, modems, timeout=120)
        out.start_s = min(float(p["monotonic"]) for p in parts) - t0
        time.sleep(1.0)
        out.idle_cores = idle_cores(fleet.pids, IDLE_SECONDS)

        since = last_submit_id(emu)
        for k in range(samples):
            time.sleep(0.3)
            index, text = k % modems, f"peer latency {k}"
            t_request = time.monotonic()
            fleet.release(index, fleet.stage(index, OUTSIDE, text))
            t_accept = time.monotonic()
            fleet.check_alive()
            part = find_submit(emu, text, since, timeout=60)
            since = int(part["id"])
            out.accept_ms.append((part["monotonic"] - t_accept) * 1000)
            out.request_ms.append((part["monotonic"] - t_request) * 1000)

        # The batch: staged first (gammu-smsd-inject is a process per message), then released
        # in one go, as one addalotofsms call queues simhive's. Distinct numbers keep the
        # inject's file names (time stamp + number) apart.
        emu.clear_submitted()
        done_before = fleet.counts()[0]
        staged = [(i % modems, fleet.stage(i % modems, f"+4917{i:09d}", f"peer bulk {i}"))
                  for i in range(messages)]  # fmt: skip
        cpu_before = total_cpu(fleet.pids)
        for index, path in staged:
            fleet.release(index, path)
        t_queued = time.monotonic()
        parts = wait_submits(emu, fleet, messages, timeout=600)
        t_last = max(float(p["monotonic"]) for p in parts)
        wait_until(lambda: fleet.pending() == 0 and fleet.counts()[0] - done_before >= messages,
                   120, "gammu-smsd moving every message to sent/", 0.02)  # fmt: skip
        cpu_used = total_cpu(fleet.pids) - cpu_before
        failed = fleet.counts()[1]
        texts = [p["text"] for p in emu.submitted()]
        if failed or len(texts) != messages or len(set(texts)) != messages:
            raise RuntimeError(f"gammu-smsd: {len(texts)} submits ({len(set(texts))} distinct)"
                               f" for {messages}, {failed} in error/")  # fmt: skip
        out.send_rate = messages / (t_last - t_queued)
        out.cpu_ms_per_sms = cpu_used / messages * 1000
        out.rss_mib = sum(rss_kib(pid)[0] for pid in fleet.pids) / 1024
    finally:
        fleet.stop()
    return out


def ahead(simhive: float, peer: float, higher_is_better: bool) -> str:
    """How many times better simhive is on one row (below 1: the peer is better)."""
    num, den = (simhive, peer) if higher_is_better else (peer, simhive)
    if den > 0:
        return f"{num / den:.2f}x"
    return "inf" if num > 0 else "equal"  # e.g. idle CPU under one clock tick on both sides


Row = tuple[str, Callable[[Figures], float], str, bool]
ROWS: list[Row] = [
    ("accept -> AT+CMGS p50", lambda f: percentile(f.accept_ms, 50), "ms", False),
    ("accept -> AT+CMGS p99", lambda f: percentile(f.accept_ms, 99), "ms", False),
    ("request -> AT+CMGS p50 (addsms / inject + rename)",
     lambda f: percentile(f.request_ms, 50), "ms", False),
    ("throughput, end of queueing -> last AT+CMGS", lambda f: f.send_rate, "SMS/s", True),
    ("CPU per SMS, all the gateway's processes", lambda f: f.cpu_ms_per_sms, "ms", False),
    ("RSS, all the gateway's processes", lambda f: f.rss_mib, "MiB", False),
    ("start -> first AT+CMGS", lambda f: f.start_s * 1000, "ms", False),
    ("idle CPU", lambda f: f.idle_cores * 100, "% core", False),
]  # fmt: skip


def print_table(modems: int, simhive: Figures, peers: list[Figures]) -> None:
    print(f"\n== simhive against gammu-smsd, the same {modems} zero-latency emulated modems,"
          " one run (ratio: how many times better simhive is; below 1 the peer is better)",
          flush=True)  # fmt: skip
    settings = ", ".join(f"{k}={v}" for k, v in _smsd.SETTINGS.items())
    print(f"  gammu-smsd: one daemon per modem; [smsd] {settings}; LoopSleep as in the column",
          flush=True)  # fmt: skip
    head = f"  {'figure':<50} {'simhive':>10}"
    for peer in peers:
        head += f" {peer.name.replace('gammu-smsd ', ''):>14} {'ratio':>8}"
    print(head + "  unit", flush=True)
    for label, get, unit, higher in ROWS:
        line = f"  {label:<50} {get(simhive):>10.2f}"
        for peer in peers:
            line += f" {get(peer):>14.2f} {ahead(get(simhive), get(peer), higher):>8}"
        print(line + f"  {unit}", flush=True)


def run(root: Path, modems: int, samples: int, messages: int) -> dict[str, float]:
    reason = _smsd.missing()
    if reason is not None:  # a failure, never a skip: the comparison is part of the benchmark
        raise RuntimeError(reason)
    simhive, stack = measure_simhive(root / "simhive", modems, samples, messages)
    try:
        links = [str(dev.modem["link"]) for dev in stack.devices]
        peers = [measure_smsd(root, stack.emu, links, loop_sleep, samples, messages)
                 for loop_sleep in _smsd.LOOP_SLEEPS]  # fmt: skip
    finally:
        stack.close()
    print_table(modems, simhive, peers)
    figures: dict[str, float] = {}
    for fig in (simhive, *peers):
        for label, get, _unit, _higher in ROWS:
            figures[f"{fig.name}: {label}"] = get(fig)
    return figures

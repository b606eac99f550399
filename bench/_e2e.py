"""simhive's side of the end-to-end benchmarks: messages in through the API, AT+CMGS out at the
emulator, CPU and memory of the gateway's processes from /proc.

Shared by bench/e2e_latency.py (the gateway at scale) and bench/_peer.py (against gammu-smsd).
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._common import cpu_seconds
from simhive.hardware.emulator.client import EmulatorClient
from tests.support.stack import Device, GatewayStack, wait_until

OUTSIDE = "+4917012345678"


def target(devices: Sequence[Device], i: int, *, pool: bool = False) -> dict[str, Any]:
    """Where message number i goes, as addsms / addalotofsms fields: the pool of all the
    account's SIMs (each message leaves on whichever SIM asks first, docs/routing.md), or pinned
    round-robin to device i mod N's SIM 0, so no SIM is asked to send twice in a row while
    others idle. The one place that decides it."""
    if pool:
        return {"pool": "all"}
    dev = devices[i % len(devices)]
    return {"device_id": dev.device_id, "sim": 0}


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def show(title: str, rows: list[tuple[str, float, str]]) -> None:
    print(f"\n== {title}", flush=True)
    for name, value, unit in rows:
        print(f"  {name:<58} {value:>12.2f} {unit}", flush=True)


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB from /proc/<pid>/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def total_cpu(pids: Sequence[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def gateway_pids(stack: GatewayStack) -> list[int]:
    """The processes that make up simhive itself: the server and the agent(s), not the emulator."""
    assert stack.server is not None
    return [stack.server.pid, *(agent.pid for agent in stack.agents)]


def idle_cores(pids: Sequence[int], seconds: float) -> float:
    """CPU the processes use while nothing is sent, in cores (1.0 = one core busy)."""
    before = total_cpu(pids)
    time.sleep(seconds)
    return (total_cpu(pids) - before) / seconds


def find_submit(emu: EmulatorClient, text: str, since: int, timeout: float) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        for part in emu.submitted(since=since):
            if part["text"] == text:
                return part
        return None

    return wait_until(probe, timeout, f"AT+CMGS of {text!r}", interval=0.01)


def last_submit_id(emu: EmulatorClient) -> int:
    return max((int(p["id"]) for p in emu.submitted()), default=0)


def measure_latency(
    stack: GatewayStack, samples: int, *, pool: bool = False
) -> dict[str, list[float]]:
    """One addsms at a time, each to an idle device (pinned) or to the idle pool of all SIMs;
    ms from request and from accept to AT+CMGS."""
    out: dict[str, list[float]] = {"request": [], "accept": [], "roundtrip": []}
    since = last_submit_id(stack.emu)
    for k in range(samples):
        # Let the agent finish its previous round and park in the next long poll.
        time.sleep(0.3)
        text = f"latency {k}"
        t_request = time.monotonic()
        stack.api("addsms", sendto=OUTSIDE, body=text, **target(stack.devices, k, pool=pool))
        t_accept = time.monotonic()
        part = find_submit(stack.emu, text, since, timeout=60)
        since = int(part["id"])
        out["request"].append((part["monotonic"] - t_request) * 1000)
        out["accept"].append((part["monotonic"] - t_accept) * 1000)
        out["roundtrip"].append((t_accept - t_request) * 1000)
    return out


def addalotofsms(stack: GatewayStack, entries: list[dict[str, Any]]) -> None:
    for start in range(0, len(entries), 1000):
        body = json.dumps({"token": stack.token, "smsdata": entries[start : start + 1000]})
        req = urllib.request.Request(
            f"{stack.url}/getdata/addalotofsms",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=120) as resp:
            answer = json.loads(resp.read())
        if answer.get("error") != 0:
            raise RuntimeError(f"addalotofsms: {answer}")


def delivered_count(stack: GatewayStack) -> int:
    fields = urllib.parse.urlencode({"token": stack.token, "status": 7, "onlycount": 1})
    with urllib.request.urlopen(f"{stack.url}/getdata/getallsms?{fields}", timeout=60) as resp:
        return int(json.loads(resp.read())["count"])


AGENT_ROUTES = ("hello", "pull", "commit", "report", "status", "release", "incoming")
_REQUEST_LINE = re.compile(
    r'^simhive_http_requests_total\{method="POST",route="/agent/v1/(\w+)",status="(\d+)"\} (\S+)$'
)


def agent_requests(stack: GatewayStack) -> dict[str, int]:
    """The agent requests the server has answered so far, by route (/agent/v1/<route>), from its
    /metrics (simhive_http_requests_total; loopback is answered without a token). A pull the
    agent gave up before its answer (a parked poll replaced) is not in it: its handler never
    answered."""
    with urllib.request.urlopen(f"{stack.url}/metrics", timeout=60) as resp:
        text = resp.read().decode()
    counts = dict.fromkeys(AGENT_ROUTES, 0)
    for line in text.splitlines():
        m = _REQUEST_LINE.match(line)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + int(float(m.group(3)))
    return counts


def measure_throughput(
    stack: GatewayStack, messages: int, devices: Sequence[Device] | None = None
) -> dict[str, float]:
    """One batch from ingest to the last AT+CMGS and to every delivery report (status 7), with
    the CPU each process used in that window and the memory of the gateway at the end. Without
    `devices` the batch goes to the pool of all SIMs; with them, pinned round-robin to those."""
    assert stack.agent is not None and stack.server is not None and stack.emulator is not None
    procs = {"agent": stack.agent.pid, "server": stack.server.pid, "emulator": stack.emulator.pid}
    stack.emu.clear_submitted()
    already = delivered_count(stack)
    targets = devices or stack.devices
    entries = [{"sendto": OUTSIDE, "body": f"bulk {i}", **target(targets, i, pool=not devices)}
               for i in range(messages)]  # fmt: skip
    requests_before = agent_requests(stack)
    cpu_before = {name: cpu_seconds(pid) for name, pid in procs.items()}
    t0 = time.monotonic()
    addalotofsms(stack, entries)
    t_ingested = time.monotonic()
    parts = stack.emu.wait_submitted(messages, timeout=600)
    t_last_cmgs = max(p["monotonic"] for p in parts)
    wait_until(lambda: delivered_count(stack) - already >= messages, 600, "all delivered", 0.2)
    t_delivered = time.monotonic()
    used = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in procs.items()}
    requests = agent_requests(stack)
    per_route = {f"requests_{route}_per_sms": (n - requests_before.get(route, 0)) / messages
                 for route, n in requests.items()}  # fmt: skip
    agent_rss, agent_hwm = rss_kib(procs["agent"])
    server_rss, server_hwm = rss_kib(procs["server"])
    texts = [p["text"] for p in stack.emu.submitted()]
    if len(texts) != len(set(texts)) or len(texts) != messages:
        raise RuntimeError(f"{len(texts)} submits ({len(set(texts))} distinct) for {messages}")
    return {
        "ingest_s": t_ingested - t0,
        "send_rate": messages / (t_last_cmgs - t_ingested),
        "delivered_rate": messages / (t_delivered - t_ingested),
        "cpu_ms_per_sms": used["agent"] / messages * 1000,
        "server_cpu_ms_per_sms": used["server"] / messages * 1000,
        "gateway_cpu_ms_per_sms": (used["agent"] + used["server"]) / messages * 1000,
        "emulator_cpu_ms_per_sms": used["emulator"] / messages * 1000,
        "cores_busy": sum(used.values()) / (t_delivered - t0),
        "rss_mib": agent_rss / 1024,
        "hwm_mib": agent_hwm / 1024,
        "server_rss_mib": server_rss / 1024,
        "gateway_rss_mib": (agent_rss + server_rss) / 1024,
        "gateway_hwm_mib": (agent_hwm + server_hwm) / 1024,
        "requests_per_sms": sum(per_route.values()),
        **per_route,
    }

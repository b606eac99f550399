"""The kinds of trial: one fault each, at a random moment, against the shared ChaosGateway.

A trial puts messages in, strikes, repairs, and returns {id: text} of every message a client
got an id for; the runner then waits for them and judges them (ledger.py). Texts are unique
(prefix + trial + index), which is how the SMSC log is matched to the database.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass

from tests.chaos.harness import POOL_LEASE_SECONDS, ChaosGateway, PoolGateway

# A trial: (gateway, text prefix of this trial, random source, options) -> answered {id: text}.
TrialFn = Callable[[ChaosGateway, str, random.Random, "Options"], dict[int, str]]

SEND_LATENCY = 0.2  # seconds per AT+CMGS in the trials that kill or cut mid-submit


@dataclass(frozen=True)
class Options:
    proxy_seconds: float = 30.0  # how long one proxy trial keeps cutting the link
    load_seconds: float = 0.5  # a server kill comes 0.1 s to this long into the load


@dataclass(frozen=True)
class Kind:
    name: str
    default_trials: int
    latency: float | None  # the modems' AT+CMGS time during this kind
    trial: TrialFn
    what: str  # one line for --help and docs/reliability.md
    pool: bool = False  # runs on the pool gateway (two agents on one pool)


def _batch(gw: ChaosGateway, prefix: str, count: int, rng: random.Random) -> dict[int, str]:
    """count messages over the three SIMs in one addalotofsms, or one addsms each."""
    entries = [(rng.choice(gw.targets), f"{prefix}.{i}") for i in range(count)]
    if rng.random() < 0.5:
        return gw.addalotofsms(entries)
    return {gw.addsms(t, text): text for t, text in entries}


def agent_kill(gw: ChaosGateway, prefix: str, rng: random.Random, _o: Options) -> dict[int, str]:
    """10 messages over both modems, then kill -9 of the agent at a random moment: before its
    pull, mid-commit, during an AT+CMGS or a SIM switch, before a report; sometimes a second kill
    during the restart. Then the agent starts again on the same journal."""
    answered = _batch(gw, prefix, 10, rng)
    # Ten submits of 0.2 s over two modems, plus switches: about 1.5 s of work.
    time.sleep(rng.uniform(0.0, 2.0))
    gw.kill_agent()
    if rng.random() < 0.2:
        gw.start_agent()
        time.sleep(rng.uniform(0.0, 1.0))
        gw.kill_agent()
    gw.start_agent()
    return answered


CLIENTS = 4


def server_kill(gw: ChaosGateway, prefix: str, rng: random.Random, o: Options) -> dict[int, str]:
    """Four clients call addsms and addalotofsms (batches of 2..10), each with a pause of up to
    20 ms between requests so that a trial stays a few hundred messages the modems can send in
    seconds; the server gets kill -9 at a random moment and restarts on the same database. Only
    ids that reached a client count as answered; the agent lives on and reconnects."""
    answered: dict[int, str] = {}
    lock = threading.Lock()
    stop = threading.Event()
    seeds = [rng.getrandbits(32) for _ in range(CLIENTS)]

    def client(worker: int) -> None:
        crng = random.Random(seeds[worker])
        n = 0
        while not stop.is_set():
            size = 1 if crng.random() < 0.5 else crng.randint(2, 10)
            entries = [(crng.choice(gw.targets), f"{prefix}.{worker}.{n + i}") for i in range(size)]
            n += size
            try:
                if size == 1:
                    got = {gw.addsms(*entries[0], timeout=10): entries[0][1]}
                else:
                    got = gw.addalotofsms(entries, timeout=10)
            except (OSError, urllib.error.URLError, ValueError):
                return  # no answer: the server died under this request
            with lock:
                answered.update(got)
            time.sleep(crng.uniform(0.0, 0.02))

    threads = [threading.Thread(target=client, args=(w,), daemon=True) for w in range(CLIENTS)]
    for t in threads:
        t.start()
    time.sleep(rng.uniform(0.1, max(0.1, o.load_seconds)))
    gw.kill_server()
    stop.set()
    for t in threads:
        t.join(30)
    gw.start_server()
    return answered


def _cut_link(gw: ChaosGateway, rng: random.Random, until: float) -> None:
    """Until `until`: reset, refuse, stall and restore the agent's link at random."""
    proxy = gw.proxy
    while time.monotonic() < until:
        action = rng.choice(("drop", "refuse", "hold", "pass"))
        span = min(rng.uniform(0.2, 4.0), max(0.0, until - time.monotonic()))
        if action == "drop":  # reset every open connection, accept new ones at once
            proxy.drop()
        elif action == "refuse":  # the server's host is gone: connection refused
            proxy.refuse()
        elif action == "hold":  # connections stay open but no byte moves
            proxy.hold()
        time.sleep(span)
        proxy.release()
        proxy.accept()


def proxy_cuts(gw: ChaosGateway, prefix: str, rng: random.Random, o: Options) -> dict[int, str]:
    """For proxy_seconds the link between agent and server is reset, refused or stalled at random
    (0.2-4 s at a time) while a client adds a message every 0.5-2 s; then the link heals."""
    until = time.monotonic() + o.proxy_seconds
    cutter = threading.Thread(target=_cut_link, args=(gw, random.Random(rng.random()), until))
    cutter.start()
    answered: dict[int, str] = {}
    n = 0
    try:
        while time.monotonic() < until:
            text = f"{prefix}.{n}"
            answered[gw.addsms(rng.choice(gw.targets), text)] = text
            n += 1
            time.sleep(rng.uniform(0.5, 2.0))
    finally:
        cutter.join()
    return answered


def unplug(gw: ChaosGateway, prefix: str, rng: random.Random, _o: Options) -> dict[int, str]:
    """8 messages, then one modem or both are unplugged at a random moment (mid-submit, mid
    switch, idle) and replugged 0.2-3 s later; the agent finds them again by their links."""
    answered = _batch(gw, prefix, 8, rng)
    time.sleep(rng.uniform(0.0, 1.5))
    modems = [d.modem_id for d in gw.stack.devices]
    pulled = rng.sample(modems, rng.choice((1, 1, 2)))
    for m in pulled:
        gw.stack.emu.unplug(m)
    time.sleep(rng.uniform(0.2, 3.0))
    for m in pulled:
        gw.stack.emu.replug(m)
    return answered


POOL_MESSAGES = 12
# Long enough for a dead agent's leases to expire (POOL_LEASE_SECONDS), the server's lease
# sweep to notice (every 5 s) and the other agent to send what came back.
POOL_SETTLE_SECONDS = 30.0


def pool_kill(gw: ChaosGateway, prefix: str, rng: random.Random, _o: Options) -> dict[int, str]:
    """12 messages to the pool of both agents' four SIMs, then kill -9 of one agent at a random
    moment (pulling, claiming, mid-submit, before a report). It stays dead until every message
    it had not started has left on the other agent's SIMs (its leases expire after 3 s); then
    it restarts on its journal. Counts, per kill, the pool messages the dead agent held leased
    (they waited for the lease) and committed (on its radios: they waited for its return)."""
    assert isinstance(gw, PoolGateway)
    texts = [f"{prefix}.{i}" for i in range(POOL_MESSAGES)]
    answered = gw.to_pool(texts, batch=rng.random() < 0.5)
    # Twelve submits of 0.2 s over four SIMs: under a second of work.
    time.sleep(rng.uniform(0.0, 1.5))
    victim = rng.randrange(2)
    gw.kill_agent_at(victim)
    dead = gw.device_of(victim)
    held = gw.held_by(f"{prefix}.", dead)
    leased = [i for i, s in held.items() if s == 2]
    gw.figures["kills"] += 1
    gw.figures["leased to the killed agent"] += len(leased)
    gw.figures["committed to the killed agent"] += len(held) - len(leased)
    settled = gw.wait_settled_without(f"{prefix}.", dead, POOL_SETTLE_SECONDS)
    if not settled:  # judged at the end like every other message; counted here to be seen
        gw.figures[f"trials not settled {POOL_SETTLE_SECONDS:.0f} s after the kill"] += 1
    # Where each leased one went: another agent's SIM (it waited for the lease only), or still
    # with the dead agent (it waits for its return: that would be a bug).
    went = gw.devices(leased)
    gw.figures["leased to it, then sent by the other agent"] += sum(
        1 for i in leased if went.get(i) not in (None, dead)
    )
    gw.start_agent_at(victim)
    return answered


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("agent-kill", 50, SEND_LATENCY, agent_kill,
             "kill -9 of the agent at a random moment, restart on the same journal"),
        Kind("server-kill", 50, None, server_kill,
             "kill -9 of the server under addsms/addalotofsms load, restart on the same database"),
        Kind("proxy", 6, SEND_LATENCY, proxy_cuts,
             "the agent-server link reset, refused or stalled at random for proxy_seconds"),
        Kind("unplug", 30, SEND_LATENCY, unplug,
             "one or both modems unplugged at a random moment and replugged"),
        Kind("pool-kill", 20, SEND_LATENCY, pool_kill,
             f"two agents on one pool, kill -9 of one mid-load; its leases expire after"
             f" {POOL_LEASE_SECONDS} s, it restarts once the other has sent the rest", pool=True),
    )
}  # fmt: skip

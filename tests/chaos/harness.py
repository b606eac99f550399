"""The gateway a chaos run abuses: one server, one emulator, one agent and a proxy between agent
and server, kept for the whole run (every kind of trial restarts what it kills).

Two emulated modems cover both modem shapes: `m1` a single-SIM modem, `m2` a single-standby
dual-SIM SIM800C-DS (AT+CDSDS), so every trial has work on three SIMs and a kill can land
around a SIM switch. Messages go in through the compat API like any client's; what they became
is read from the server's database (read-only) and the emulator's SMSC log.

Kinds about SIM pools run on a second gateway (PoolGateway), started the first time one needs
it: two agents, each with one modem of two SIMs on their own ports, all four SIMs in the
account's pool `all`, and a 3 s lease so that a dead agent's leases expire within a trial.
"""

from __future__ import annotations

import collections
import contextlib
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.chaos.ledger import FINAL, Row
from tests.support.stack import FAST_PACING, Device, GatewayStack
from tests.support.tcpproxy import TcpProxy

# The agent's own timers, shortened so that a trial ends in seconds: a retry after 0.5 s, a
# message still "sent" after 60 s becomes outcome-unknown (the emulator reports within a second,
# so only a report that is really gone waits that long), the idle SIM of the dual-SIM modem is
# visited every 3 s for what the network held for it.
AGENT_OPTIONS: dict[str, Any] = {
    "retry_backoff_seconds": 0.5,
    "delivery_report_timeout_seconds": 60,
    "sim_visit_seconds": 3,
}
OUTSIDE = "+4917012345678"  # a destination outside the emulated set: reported delivered


@dataclass(frozen=True)
class Target:
    device: Device
    sim: int

    def __str__(self) -> str:
        return f"{self.device.modem_id}/sim{self.sim}"


class ChaosGateway:
    def __init__(self, root: Path, stack: GatewayStack | None = None) -> None:
        self.stack = stack or GatewayStack(
            root,
            modems=2,
            profile="generic,sim800c-ds",
            dual_sim="none,cdsds",
            with_proxy=True,
            agent_options=AGENT_OPTIONS,
            device_settings=FAST_PACING,
        )
        self._sent: list[str] = []  # texts of the SMSC log, fetched incrementally
        self._sent_after = 0
        # Figures a kind counts besides the verdicts (e.g. pool messages that waited for a
        # dead agent's lease); the runner reports what each kind added.
        self.figures: collections.Counter[str] = collections.Counter()
        self._pool: PoolGateway | None = None

    def for_pools(self) -> PoolGateway:
        """The pool gateway, started on first use and stopped with this one."""
        pool = self._pool
        if pool is None:
            pool = self._pool = PoolGateway(self.stack.root / "pool")  # closed even if start fails
            pool.start()
        return pool

    # ---- life -------------------------------------------------------------------------------

    def start(self) -> ChaosGateway:
        self.stack.start()
        self.stack.wait_agent_ready()
        return self

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        self.stack.close()

    @property
    def proxy(self) -> TcpProxy:
        assert self.stack.proxy is not None
        return self.stack.proxy

    @property
    def targets(self) -> list[Target]:
        m1, m2 = self.stack.devices
        return [Target(m1, 0), Target(m2, 0), Target(m2, 1)]

    def set_latency(self, seconds: float | None) -> None:
        """Every AT+CMGS takes this long (None: answer at once), so kills land mid-submit."""
        for dev in self.stack.devices:
            self.stack.emu.set_faults(dev.modem_id, {"latency": seconds})

    def kill_agent(self) -> None:
        assert self.stack.agent is not None
        self.stack.agent.kill9()

    def start_agent(self) -> None:
        self.stack.start_agent()

    def kill_server(self) -> None:
        assert self.stack.server is not None
        self.stack.server.kill9()

    def start_server(self) -> None:
        self.stack.start_server()

    # ---- messages in ------------------------------------------------------------------------

    def addsms(self, target: Target, text: str, timeout: float = 30) -> int:
        return self.stack.addsms(target.device, OUTSIDE, text, sim=target.sim, timeout=timeout)

    def addalotofsms(
        self, entries: Sequence[tuple[Target, str]], timeout: float = 30
    ) -> dict[int, str]:
        """One batch; {id: text} in the order the server answered them."""
        data = [{"sendto": OUTSIDE, "body": text, "device_id": t.device.device_id, "sim": t.sim}
                for t, text in entries]  # fmt: skip
        datajson = json.dumps({"token": self.stack.token, "smsdata": data})
        answer = self.stack.api("addalotofsms", datajson=datajson, timeout=timeout)
        ids = [int(i) for i in answer["sms_ids"]]
        if len(ids) != len(entries):
            raise AssertionError(f"{len(entries)} sent, {len(ids)} ids answered: {answer}")
        return dict(zip(ids, (text for _, text in entries), strict=True))

    # ---- what became of them ----------------------------------------------------------------

    def rows(self, prefix: str) -> list[Row]:
        """Outgoing rows whose text starts with prefix, read-only from the server's database."""
        uri = f"file:{self.stack.db}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
            found = db.execute(
                "SELECT id, body, status, failure_code FROM messages"
                " WHERE direction = 'out' AND substr(body, 1, ?) = ?",
                (len(prefix), prefix),
            ).fetchall()
        return [Row(int(i), str(b), int(s), c) for i, b, s, c in found]

    def sent_texts(self, prefix: str) -> list[str]:
        """The text of every part the SMSC accepted whose text starts with prefix."""
        fresh = self.stack.emu.submitted(since=self._sent_after)
        if fresh:
            self._sent_after = int(fresh[-1]["id"])
            self._sent += [str(p["text"]) for p in fresh]
        return [t for t in self._sent if t.startswith(prefix)]

    def wait_final(self, prefix: str, ids: Iterable[int], timeout: float) -> bool:
        """Until every row of prefix and every id in ids has a final status; False on timeout."""
        wanted = set(ids)
        deadline = time.monotonic() + timeout
        while True:
            rows = self.rows(prefix)
            if wanted <= {r.sms_id for r in rows} and all(r.status in FINAL for r in rows):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)


POOL = "all"  # the account's pool: every SIM of both agents
POOL_LEASE_SECONDS = 3  # the server's lease on the pool gateway: a dead agent's expire quickly


class PoolGateway(ChaosGateway):
    """Two agents on one pool (see the module docstring); no proxy."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, GatewayStack(
            root,
            modems=2,
            dual_sim="ports",  # one AT port per SIM: both SIMs of a modem send at once
            agent_count=2,  # agent i drives modem i
            agent_options=AGENT_OPTIONS,
            device_settings=FAST_PACING,
            server_args=["--lease-seconds", str(POOL_LEASE_SECONDS)],
        ))  # fmt: skip

    def to_pool(self, texts: Sequence[str], batch: bool, timeout: float = 30) -> dict[int, str]:
        """Messages to the pool: one addalotofsms, or one addsms each; {id: text}."""
        if not batch:
            return {self.stack.to_pool(POOL, OUTSIDE, t, timeout=timeout): t for t in texts}
        data = [{"sendto": OUTSIDE, "body": t, "pool": POOL} for t in texts]
        answer = self.stack.api("addalotofsms", datajson=json.dumps({"smsdata": data}),
                                timeout=timeout)  # fmt: skip
        ids = [int(i) for i in answer["sms_ids"]]
        if len(ids) != len(texts):
            raise AssertionError(f"{len(texts)} sent, {len(ids)} ids answered: {answer}")
        return dict(zip(ids, texts, strict=True))

    def device_of(self, agent: int) -> int:
        return self.stack.agent_devices(agent)[0].device_id

    def kill_agent_at(self, agent: int) -> None:
        self.stack.agents[agent].kill9()

    def start_agent_at(self, agent: int) -> None:
        self.stack.start_agent(agent)

    def held_by(self, prefix: str, device_id: int) -> dict[int, int]:
        """{id: status} of prefix's messages bound to the device and not final (leased: 2,
        committed: 3), read-only from the server's database."""
        with contextlib.closing(self._db()) as db:
            found = db.execute(
                "SELECT id, status FROM messages WHERE direction = 'out' AND device_id = ?"
                " AND status IN (2, 3) AND substr(body, 1, ?) = ?",
                (device_id, len(prefix), prefix),
            ).fetchall()
        return {int(i): int(s) for i, s in found}

    def devices(self, ids: Iterable[int]) -> dict[int, int | None]:
        """{id: the device it is bound to now} (None: back in its pool, unbound)."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        with contextlib.closing(self._db()) as db:
            found = db.execute(
                f"SELECT id, device_id FROM messages WHERE id IN ({marks})", wanted
            ).fetchall()
        return {int(i): (None if d is None else int(d)) for i, d in found}

    def wait_settled_without(self, prefix: str, device_id: int, timeout: float) -> bool:
        """Until every message of prefix is final or committed to the (dead) device: nothing is
        leased or queued any more, nothing another agent holds is unfinished. False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.rows(prefix)
            held = self.held_by(prefix, device_id)
            if all(r.final or held.get(r.sms_id) == 3 for r in rows):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.stack.db}?mode=ro", uri=True, timeout=30)

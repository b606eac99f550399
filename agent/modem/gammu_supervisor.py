"""Keeping a Gammu modem alive: connect, periodic health and sweeps, unplug and replug.

A lost device (unplug, a hung modem) is noticed by the periodic health call (IMSI, network,
signal), by a failing call anywhere (`LinkLost` from GammuModem.call), or, for a device node that
vanished, by watching the node. Then the modem is DISCONNECTED at once (sends fail with RETRY),
and Gammu is terminated and initialised again with backoff. A SIM problem (missing, busy, a PIN
that is not configured) leaves the modem DEGRADED and is retried every health interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any

from . import gammu_convert as conv
from . import gammu_session as session
from .base import ModemState, SimInfo
from .gammu_worker import WorkerClosed

if TYPE_CHECKING:
    from .gammu_backend import GammuModem

log = logging.getLogger(__name__)

__all__ = ["GammuSupervisor", "LinkLost", "device_present"]


class LinkLost(Exception):
    """The device stopped answering or vanished; the supervisor reconnects."""


def device_present(device: str) -> bool:
    return os.path.exists(device)  # one stat() of a /dev node: never blocks for long


class GammuSupervisor:
    def __init__(
        self,
        modem: GammuModem,
        *,
        health_interval: float = 30.0,
        sweep_interval: float = 300.0,
        reconnect_min: float = 1.0,
        reconnect_max: float = 30.0,
    ) -> None:
        self.m = modem
        self.health_interval = health_interval
        self.sweep_interval = sweep_interval
        self.backoff = (reconnect_min, reconnect_max)
        self._link_lost = asyncio.Event()
        self._lost_reason = ""

    def lose_link(self, reason: str) -> None:
        """Signal from any call path: the link is gone; the supervisor loop takes over."""
        if not self._link_lost.is_set():
            self._lost_reason = reason
            self._link_lost.set()

    async def connect(self) -> bool:
        """Init Gammu, read identity and SIM, sweep; False (DISCONNECTED) if it failed."""
        m = self.m
        self._link_lost.clear()

        def connect_job(sm: Any) -> session.Connected:
            return session.connect(
                m.gammu, sm, worker=m.worker, rc=m.rc, gammu_log=m.gammu_log, pin=m.pin, name=m.name
            )

        try:
            done = await m.worker.call(connect_job, check_device=False, fresh=True)
        except m.gammu.GSMError as exc:
            await m.set_state(ModemState.DISCONNECTED, f"init failed: {conv.error_text(exc)}")
            return False
        except WorkerClosed:
            return False
        except Exception as exc:  # a bug or an odd driver: stay supervised, never crash
            log.exception("%s: connecting failed", m.name)
            await m.set_state(ModemState.DISCONNECTED, f"init failed: {exc!r}")
            return False
        m.identity = done.identity
        m.push_incoming = done.push
        m.sim_problem = done.sim_problem
        m.sim_number = done.own_number
        if done.sim_problem is not None:
            m.last_sim = SimInfo(slot=0, present=not done.sim_missing, active=True)
            await m.set_state(ModemState.DEGRADED, done.sim_problem)
            return True
        try:
            await self.refresh_sim()
            await m.sweep()
        except LinkLost as exc:
            await m.set_state(ModemState.DISCONNECTED, f"lost during start-up: {exc}")
            return False
        return True

    async def refresh_sim(self) -> SimInfo:
        m = self.m

        def sim_job(sm: Any) -> tuple[str | None, Any, Any]:
            return session.read_sim(m.gammu, sm)

        imsi, network, quality = await m.call(sim_job)
        info = conv.sim_info(
            slot=0,
            imsi=imsi,
            network=network,
            quality=quality,
            number=m.sim_number or m.own_number,
        )
        m.last_sim = info
        if info.registered:
            reason = "registered" + (" (roaming)" if info.roaming else "")
            await m.set_state(ModemState.READY, reason)
        else:
            await m.set_state(ModemState.DEGRADED, "not registered to a network")
        return info

    async def run(self) -> None:
        m = self.m
        delay = self.backoff[0]
        loop = asyncio.get_running_loop()
        next_health = loop.time() + self.health_interval
        next_sweep = loop.time() + self.sweep_interval
        while True:
            if m.state is ModemState.DISCONNECTED:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff[1])
                await m.set_state(ModemState.CONNECTING, "reconnecting")
                if await self.connect():
                    delay = self.backoff[0]
                    next_health = loop.time() + self.health_interval
                    next_sweep = loop.time() + self.sweep_interval
                continue
            wake = min(next_health, next_sweep)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._link_lost.wait(), max(0.0, wake - loop.time()))
            try:
                if self._link_lost.is_set():
                    raise LinkLost(self._lost_reason)
                if loop.time() >= next_health:
                    next_health = loop.time() + self.health_interval
                    if m.sim_problem is not None:
                        await m.set_state(ModemState.CONNECTING, "retrying the SIM")
                        await self.connect()
                    else:
                        await self.refresh_sim()
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + self.sweep_interval
                    await m.sweep()
            except LinkLost as exc:
                await m.set_state(ModemState.DISCONNECTED, f"link lost: {exc}")
            except m.gammu.GSMError as exc:
                log.warning("%s: periodic check failed: %s", m.name, conv.error_text(exc))
            except Exception:  # supervision must outlive any single failure
                log.exception("%s: periodic check failed", m.name)

    async def watch_device(self) -> None:
        # A Gammu call that was waiting for an answer when the modem vanished only gives up
        # after Gammu's own timeouts (GetNetworkInfo: about 40 s, measured against the
        # emulator). A vanished device node is certain sooner: abort that call, report
        # DISCONNECTED at once (sends fail fast with RETRY), and let the supervisor reconnect.
        m = self.m
        device = m.settings.device
        while True:
            await asyncio.sleep(min(1.0, self.health_interval))
            if m.state is not ModemState.DISCONNECTED and not device_present(device):
                m.worker.abort()
                self.lose_link(f"{device} disappeared")
                await m.set_state(ModemState.DISCONNECTED, f"link lost: {device} disappeared")

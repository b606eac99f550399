"""Keeping an AT modem alive: health checks, the recovery ladder, unplug and replug.

USB sticks hang after minutes to hours (gammu#4, #266, #323, #400, #536) and re-enumerate on
brown-outs, so the agent must notice and recover without a restart:
- health check on an interval: `AT`, `AT+CPIN?`, `AT+CREG?`, `AT+CSQ` (cheap, no side effects);
- a modem that stops answering climbs a ladder: re-initialise; `AT+CFUN=1,1` (reset) then
  re-initialise; close and reopen the port; then it is DISCONNECTED and the port is reopened
  with back-off until it answers again;
- a read error on the port (unplug) goes straight to the reopen loop;
- a boot URC (`RDY`, `+CFUN: 1`, `+CPIN: ...`) outside init means the modem reset itself and
  forgot our settings: re-initialise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from simhive.agent.eventwait import Flag

from .atchannel import AtCommandError, AtTimeout, ChannelClosed
from .atinfo import csq_to_dbm, parse_creg
from .base import ModemState

if TYPE_CHECKING:
    from .atmodem import AtModem

log = logging.getLogger(__name__)

__all__ = ["Supervisor"]


class Supervisor:
    def __init__(
        self,
        modem: AtModem,
        *,
        health_interval: float = 30.0,
        sweep_interval: float = 300.0,
        reopen_min: float = 0.5,
        reopen_max: float = 15.0,
    ) -> None:
        self.m = modem
        self.health_interval = health_interval
        self.sweep_interval = sweep_interval
        self.reopen_min = reopen_min
        self.reopen_max = reopen_max
        self._wake = Flag()
        self._link_lost: str | None = None
        self._restarted: str | None = None
        self._unresponsive: str | None = None
        self._registration_dirty = False
        self._sweep_due = False
        self._quiet_until = 0.0
        self.failures = 0  # consecutive failed health checks (the ladder position)
        self.recoveries = 0
        modem.channel.on_unresponsive = self.unresponsive

    # -- signals from the modem (synchronous: called from the reader/URC paths) -----------

    def link_lost(self, reason: str) -> None:
        self._link_lost = reason
        self._wake.set()

    def expect_boot_urcs(self, seconds: float = 10.0) -> None:
        """We are about to cycle the radio or reset (CFUN, SIM switch): the +CFUN/+CPIN URCs
        that follow are our own doing, not a spontaneous reboot."""
        self._quiet_until = asyncio.get_running_loop().time() + seconds

    def modem_restarted(self, line: str) -> None:
        if self.m.state is ModemState.CONNECTING:
            return
        own = asyncio.get_running_loop().time() < self._quiet_until
        if own and not line.strip().upper().startswith("RDY"):
            return
        self._restarted = line
        self._wake.set()

    def unresponsive(self, reason: str) -> None:
        self._unresponsive = reason
        self._wake.set()

    def registration_changed(self, args: str) -> None:
        self._registration_dirty = True
        self._wake.set()

    def request_sweep(self) -> None:
        self._sweep_due = True
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_health = loop.time() + self.health_interval
        next_sweep = loop.time() + self.sweep_interval
        me = asyncio.current_task()
        while True:
            if me is not None and me.cancelling():
                raise asyncio.CancelledError  # a cancel that an inner wait_for swallowed
            timeout = max(0.0, min(next_health, next_sweep) - loop.time())
            if not self.m.channel.is_open:
                timeout = 0.0  # never opened, or lost while nobody was listening
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            try:
                if self._link_lost is not None or not self.m.channel.is_open:
                    await self._reopen_loop(self._link_lost or "port closed")
                    next_sweep = loop.time() + self.sweep_interval
                    continue
                if self._restarted is not None:
                    line, self._restarted = self._restarted, None
                    log.warning("%s: modem restarted (%s); re-initialising", self.m.name, line)
                    await self._reinit(f"modem restarted ({line})")
                    continue
                if self._unresponsive is not None or loop.time() >= next_health:
                    self._unresponsive = None
                    next_health = loop.time() + self.health_interval
                    await self._health()
                if self._registration_dirty and self.m.state is not ModemState.DISCONNECTED:
                    self._registration_dirty = False
                    async with self.m.op_lock:
                        await self.m.refresh_active_sim()
                if self._sweep_due or loop.time() >= next_sweep:
                    self._sweep_due = False
                    next_sweep = loop.time() + self.sweep_interval
                    # A full store stops all reception (+CMS 322): sweep even without +CMTI.
                    if self.m.state in (ModemState.READY, ModemState.DEGRADED):
                        await self.m.inbox.sweep_all()
            except asyncio.CancelledError:
                raise
            except (AtCommandError, AtTimeout, ChannelClosed) as exc:
                log.warning("%s: supervision step failed: %s", self.m.name, exc)
            except Exception:
                log.exception("%s: supervision step crashed; continuing", self.m.name)

    async def _health(self) -> None:
        ch = self.m.channel
        ok = await ch.drain(tries=2, wait=3.0)
        if ok:
            try:
                async with self.m.op_lock:
                    sim_back = await self._check_sim_and_network()
                self.failures = 0
                if sim_back:
                    # The SIM became usable (inserted, unlocked): run the whole init again.
                    await self._reinit("SIM ready again")
                return
            except (AtTimeout, ChannelClosed) as exc:
                log.warning("%s: health check failed: %s", self.m.name, exc)
        if self._link_lost is not None:
            return  # the reopen loop takes over on the next wake-up
        self.failures += 1
        await self._climb_ladder()

    async def _check_sim_and_network(self) -> bool:
        """Update the state from CPIN/CREG/CSQ; True when a missing SIM came back."""
        ch = self.m.channel
        try:
            resp = await ch.command(
                "AT+CPIN?", wait=5.0, implicit_final=self.m.profile.cpin_without_ok
            )
            sim = (resp.first("+CPIN") or "").strip().upper()
        except AtCommandError as exc:
            sim = exc.final.text
        if sim != "READY":
            self.m.sim_problem = f"SIM not ready: {sim}"
            await self.m.set_state(ModemState.DEGRADED, self.m.sim_problem)
            return False
        if self.m.sim_problem is not None:
            return True
        registered = False
        with contextlib.suppress(AtCommandError):
            resp = await ch.command("AT+CREG?", wait=5.0)
            registered = parse_creg(resp.first("+CREG") or "").registered
        with contextlib.suppress(AtCommandError):
            resp = await ch.command("AT+CSQ", wait=5.0)
            self.m.last_signal_dbm = csq_to_dbm(resp.first("+CSQ") or "")
        if registered and self.m.state is not ModemState.READY:
            # Coming back from DEGRADED (SIM inserted, network back): re-read the SIM.
            await self.m.refresh_active_sim()
        elif not registered:
            await self.m.set_state(ModemState.DEGRADED, "not registered to a network")
        return False

    async def _climb_ladder(self) -> None:
        step = self.failures
        self.recoveries += 1
        if step <= 1:
            await self._reinit("no answer; re-initialising")
        elif step == 2:
            log.warning("%s: resetting with AT+CFUN=1,1", self.m.name)
            self.expect_boot_urcs(30.0)
            with contextlib.suppress(AtCommandError, AtTimeout, ChannelClosed):
                await self.m.channel.command("AT+CFUN=1,1", wait=30.0)
            await self._reinit("reset with AT+CFUN=1,1")
        else:
            await self.m.channel.close()
            await self._reopen_loop("unresponsive; reopening the port")

    async def _reinit(self, reason: str) -> None:
        await self.m.set_state(ModemState.CONNECTING, reason)
        if await self.m.connect() and self.m.state in (ModemState.READY, ModemState.DEGRADED):
            self.failures = 0

    async def _reopen_loop(self, reason: str) -> None:
        self._link_lost = None
        await self.m.channel.close()
        await self.m.set_state(ModemState.DISCONNECTED, reason)
        delay = self.reopen_min
        while True:
            await asyncio.sleep(delay)
            self._link_lost = None
            if await self.m.connect():
                self.failures = 0
                return
            await self.m.channel.close()
            delay = min(delay * 2, self.reopen_max)

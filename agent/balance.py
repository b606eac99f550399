"""Prepaid balance checks: each SIM with a `balance_ussd` code is asked every
`balance_interval_seconds` (agent/config.py); the answer's text and the amount found in it go
to the server with the SIM info (`balance` in the `sims` entries), and an amount below
`balance_warn_below` is logged as a warning.

A check runs only while the modem is ready. On a single-standby dual-SIM modem a SIM is
checked while it is the active one (the dispatcher visits the idle SIM regularly), so a
balance check never costs a SIM switch of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from simhive.agent.config import DeviceConfig
from simhive.agent.journal import iso
from simhive.agent.modem.base import Modem, ModemState
from simhive.agent.modem.ussd import parse_amount

log = logging.getLogger(__name__)

RETRY_SECONDS = 300.0  # a failed check (no answer, modem busy) is tried again this soon
LOOK_SECONDS = 5.0  # how often a due check looks whether the modem (or its SIM) is ready


class BalanceChecker:
    def __init__(
        self,
        cfg: DeviceConfig,
        modem: Modem,
        on_change: Callable[[], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.modem = modem
        self._on_change = on_change
        self._clock = clock
        self.codes = {s: c for s, c in enumerate(cfg.balance_ussd) if c and s in cfg.slots}
        self.balances: dict[int, dict[str, Any]] = {}
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    def for_slot(self, slot: int) -> dict[str, Any] | None:
        return self.balances.get(slot)

    async def run(self) -> None:
        if not self.codes:
            return
        ussd = getattr(self.modem, "ussd", None)
        if ussd is None:
            log.warning(
                "device %s: balance_ussd is set, but the %s backend cannot send USSD;"
                " balance not checked", self.cfg.name, self.cfg.backend,
            )  # fmt: skip
            return
        due = dict.fromkeys(self.codes, 0.0)
        while not self._stop.is_set():
            for slot, code in self.codes.items():
                if self._clock() >= due[slot] and self._can_check(slot):
                    due[slot] = self._clock() + await self._check(slot, code)
            # A check that is due but could not run (modem not ready, other SIM active) is
            # looked at again after LOOK_SECONDS; otherwise sleep until the next one is due.
            wait = min(LOOK_SECONDS, max(0.0, min(due.values()) - self._clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait or LOOK_SECONDS)

    def _can_check(self, slot: int) -> bool:
        if self.modem.state is not ModemState.READY:
            return False
        if self.cfg.single_standby:
            return getattr(self.modem, "active_slot", slot) == slot
        return True

    async def _check(self, slot: int, code: str) -> float:
        """Ask once; returns the seconds until the next check of this SIM."""
        ussd = getattr(self.modem, "ussd")  # noqa: B009 (checked in run)
        name = f"device {self.cfg.name} SIM {slot + 1}"
        try:
            reply = await ussd(code, slot=slot)
        except Exception as exc:  # a failed check must never stop the agent
            log.warning("%s: balance check %s failed: %s", name, code, exc)
            return RETRY_SECONDS
        if not reply.ok:
            log.warning("%s: balance check %s: the network answered %s", name, code,
                        reply.describe())  # fmt: skip
            return RETRY_SECONDS
        amount, currency = parse_amount(reply.text)
        threshold = (
            self.cfg.balance_warn_below[slot] if slot < len(self.cfg.balance_warn_below) else 0.0
        )
        low = amount is not None and threshold > 0 and amount < threshold
        self.balances[slot] = {
            "text": reply.text[:300],
            "amount": amount,
            "currency": currency,
            "low": low,
            "checked_at": iso(self._clock()),
        }
        if low:
            log.warning("%s: prepaid balance %s%s is below %g: top it up (%s)", name, amount,
                        f" {currency}" if currency else "", threshold, reply.text)  # fmt: skip
        else:
            log.info("%s: balance: %s", name, reply.text)
        self._on_change()
        return self.cfg.balance_interval_seconds

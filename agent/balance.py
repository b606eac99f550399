"""Prepaid balance checks: each SIM with a `balance_ussd` code is asked every
`balance_interval_seconds` (agent/config.py); the answer's text and the amount found in it go
to the server with the SIM info (`balance` in the `sims` entries), and an amount below
`balance_warn_below` is logged as a warning.

A check runs only while the modem is ready. On a single-standby dual-SIM modem a SIM is
checked while it is the active one (the dispatcher visits the idle SIM regularly); only a
check overdue by SWITCH_GRACE_SECONDS (or by the interval, if shorter) switches to its SIM
itself and back.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from simhive.agent.config import DeviceConfig
from simhive.agent.eventwait import Flag, wait_event
from simhive.agent.journal import iso
from simhive.agent.modem.base import Modem, ModemState
from simhive.agent.modem.ussd import parse_amount

log = logging.getLogger(__name__)

RETRY_SECONDS = 300.0  # a failed check (no answer, modem busy) is tried again this soon
LOOK_SECONDS = 5.0  # how often a due check looks whether the modem (or its SIM) is ready
SWITCH_GRACE_SECONDS = 600.0  # an inactive SIM's check waits this long for a visit, then switches


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
        self._stop = Flag()

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
                overdue = self._clock() - due[slot]
                if overdue >= 0 and self._can_check(slot, overdue):
                    due[slot] = self._clock() + await self._check(slot, code)
            # A check that is due but could not run (modem not ready, other SIM active) is
            # looked at again after LOOK_SECONDS; otherwise sleep until the next one is due.
            wait = min(LOOK_SECONDS, max(0.0, min(due.values()) - self._clock()))
            await wait_event(self._stop, wait or LOOK_SECONDS)

    def _can_check(self, slot: int, overdue: float) -> bool:
        if self.modem.state is not ModemState.READY:
            return False
        if self.cfg.single_standby and getattr(self.modem, "active_slot", slot) != slot:
            # Wait for the dispatcher's next visit to that SIM, but not forever: past the
            # grace the check switches there itself (and back), a cost of two switches per
            # balance_interval_seconds.
            return overdue >= min(SWITCH_GRACE_SECONDS, self.cfg.balance_interval_seconds)
        return True

    async def _check(self, slot: int, code: str) -> float:
        """Ask once; returns the seconds until the next check of this SIM."""
        ussd = getattr(self.modem, "ussd")  # noqa: B009 (checked in run)
        name = f"device {self.cfg.name} SIM {slot + 1}"
        was_active = getattr(self.modem, "active_slot", slot)
        try:
            reply = await ussd(code, slot=slot)
        except Exception as exc:  # a failed check must never stop the agent
            log.warning("%s: balance check %s failed: %s", name, code, exc)
            return RETRY_SECONDS
        finally:
            activate = getattr(self.modem, "activate_slot", None)
            if was_active != slot and activate is not None:
                # Back to the SIM the dispatcher had active, so its batching stays true.
                with contextlib.suppress(Exception):
                    await activate(was_active)
        if not reply.ok:
            log.warning("%s: balance check %s: the network answered %s", name, code,
                        reply.describe())  # fmt: skip
            return RETRY_SECONDS
        amount, currency = parse_amount(reply.text)
        threshold = (
            self.cfg.balance_warn_below[slot] if slot < len(self.cfg.balance_warn_below) else 0.0
        )
        low = amount is not None and threshold > 0 and amount < threshold
        before = self.balances.get(slot)
        self.balances[slot] = {
            "text": reply.text[:300],
            "amount": amount,
            "currency": currency,
            "low": low,
            "checked_at": iso(self._clock()),
        }
        # Warned when it drops below the threshold (or drops further), not at every check.
        if low and (before is None or not before["low"] or before["amount"] != amount):
            log.warning("%s: prepaid balance %s%s is below %g: top it up (%s)", name, amount,
                        f" {currency}" if currency else "", threshold, reply.text)  # fmt: skip
        else:
            log.info("%s: balance: %s", name, reply.text)
        self._on_change()
        return self.cfg.balance_interval_seconds

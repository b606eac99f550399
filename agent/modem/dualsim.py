"""Dual SIM on one port (single standby: SIM800C-DS `AT+CDSDS`, Quectel `AT+QDSIM`).

Only one SIM is registered at a time; a switch means re-registration, so the caller batches
work per SIM. Per-SIM settings are repeated after a switch and SIM
info is re-read, because the modem forgets them with the SIM.
"""

from __future__ import annotations

import asyncio
import logging
import re

from .atchannel import AtChannel, AtCommandError, AtTimeout
from .atinfo import parse_creg
from .digits import parse_uint
from .profiles import DualSimSpec

log = logging.getLogger(__name__)

__all__ = ["SwitchError", "query_active_slot", "switch_slot"]


class SwitchError(Exception):
    pass


def parse_active(spec: DualSimSpec, args: str) -> int | None:
    """`+CDSDS: SIM1,1,0` / `+CDSDS: 2` / `+QDSIM: 0` -> 0-based slot."""
    m = re.search(r"SIM\s*([0-9])\b", args, re.IGNORECASE)
    if m:
        slot = int(m.group(1)) - 1
        return slot if slot in (0, 1) else None  # "SIM9" is noise, not a third slot
    first = parse_uint(args.split(",")[0])
    if first is None:
        return None
    slot = first - spec.base
    return slot if slot in (0, 1) else None


async def query_active_slot(ch: AtChannel, spec: DualSimSpec) -> int | None:
    try:
        resp = await ch.command(spec.query, wait=5.0)
    except (AtCommandError, AtTimeout):
        return None
    return parse_active(spec, resp.first(spec.reply_prefix) or "")


async def wait_registered(ch: AtChannel, seconds: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        try:
            resp = await ch.command("AT+CREG?", wait=5.0)
            if parse_creg(resp.first("+CREG") or "").registered:
                return True
        except (AtCommandError, AtTimeout):
            pass
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.3)


async def switch_slot(ch: AtChannel, spec: DualSimSpec, slot: int) -> bool:
    """Select `slot`; returns whether the new SIM registered within the settle time."""
    if slot not in (0, 1):
        raise SwitchError(f"slot {slot} does not exist on a dual-SIM modem")
    try:
        await ch.command(spec.select.format(n=slot + spec.base), wait=15.0)
        for cmd in spec.after_select:
            await ch.command(cmd, wait=30.0)
    except (AtCommandError, AtTimeout) as exc:
        raise SwitchError(f"switching to SIM {slot + 1} failed: {exc}") from exc
    active = await query_active_slot(ch, spec)
    if active is not None and active != slot:
        raise SwitchError(f"modem still reports SIM {active + 1} active after switching")
    return await wait_registered(ch, spec.settle_seconds)

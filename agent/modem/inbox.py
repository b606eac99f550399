"""Receiving on an AT modem: the safe sweep, +CMTI/+CDSI reads, direct +CMT/+CDS.

The rule (docs/agent.md, incoming SMS): read, hand over, and delete
only after the handler returned. A handler that raises leaves the message stored; the next
sweep (at start, after a reconnect, periodically) hands it over again with the same key.
Concatenated parts stay stored until the whole message was handed over (or the reassembly
timeout released it flagged incomplete), so a crash between parts loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from . import pdu as pdulib
from .atchannel import AtCommandError, AtTimeout, quote
from .base import DeliveryReport, IncomingSms
from .digits import parse_uint
from .reassembly import Message, Reassembler

if TYPE_CHECKING:
    from .atmodem import AtModem

log = logging.getLogger(__name__)

__all__ = ["Inbox", "StoredMessage", "parse_listing"]

_CMGL_RE = re.compile(r"^\s*([0-9]+)\s*,\s*([0-9]+)")


@dataclass(frozen=True)
class StoredMessage:
    mem: str
    index: int
    stat: int | None
    pdu_hex: str | None


def parse_listing(lines: list[tuple[str, str | None]], mem: str) -> list[StoredMessage]:
    """`+CMGL: <idx>,<stat>,[<alpha>],<len>` + PDU pairs -> stored messages."""
    out: list[StoredMessage] = []
    for args, data in lines:
        m = _CMGL_RE.match(args)
        if m is None:
            log.warning("unparsable +CMGL line %r", args)
            continue
        out.append(StoredMessage(mem, int(m.group(1)), int(m.group(2)), data))
    return out


def _stat_of_cmgr(args: str) -> int | None:
    # Some ZTE firmware omits <stat> (python-gsmmodem defaults it to "unread").
    return parse_uint(args.split(",")[0])


class Inbox:
    def __init__(self, modem: AtModem, *, reassembly_timeout: float = 600.0) -> None:
        self.m = modem
        self._pending_delete: dict[int, set[tuple[str, int]]] = {0: set(), 1: set()}
        # One per slot: parts of one message never span SIMs, and expiry knows the slot.
        self.reassemblers = {s: Reassembler(timeout=reassembly_timeout) for s in (0, 1)}
        # One reader at a time: a sweep's listing must not be processed while a +CMTI read
        # deletes the same index (or a new message reuses it), which would hand over twice
        # or delete a message nobody has seen.
        self._lock = asyncio.Lock()

    # -- reading ---------------------------------------------------------------------------

    async def sweep_all(self) -> None:
        """List everything stored on the active SIM (and SR memory) and hand it over."""
        async with self._lock:
            await self._sweep_all()

    async def _sweep_all(self) -> None:
        caps = self.m.capabilities
        mems = [caps.storage[0]]
        if caps.report_mode == "stored" and "SR" not in mems:
            mems.append("SR")
        await self.release_expired()
        for mem in mems:
            try:
                slot, items = await self._list(mem)
            except (AtCommandError, AtTimeout) as exc:
                log.warning("%s: sweep of %s failed: %s", self.m.name, mem, exc)
                continue
            # `slot` is the SIM the listing came from; a send may switch SIMs meanwhile, and
            # deletes are then deferred until that SIM is active again (see _delete).
            for item in items:
                await self._process(slot, item)

    async def _list(self, mem: str) -> tuple[int, list[StoredMessage]]:
        async with self.m.op_lock, self._memory(mem):
            slot = self.m.active_slot
            resp = await self.m.channel.command("AT+CMGL=4", wait=30.0)
        pairs: list[tuple[str, str | None]] = []
        for info in resp.lines:
            head, _, rest = info.line.partition(":")
            if head.strip().upper() in ("+CMGL", "+CMGLDS"):
                pairs.append((rest, info.data))
        return slot, parse_listing(pairs, mem)

    async def on_stored(self, slot: int | None, mem: str, index: int) -> None:
        """+CMTI / +CDSI: read that index and hand it over.

        `slot` is 1 for a DS-suffixed URC, else None: the index then belongs to whichever SIM
        is active when we read it (a switch may have happened since the URC arrived; what we
        read is labelled with the SIM it was read from, and the old SIM's message waits for
        the sweep after switching back)."""
        async with self._lock:
            await self._on_stored(slot, mem, index)

    async def _on_stored(self, wanted: int | None, mem: str, index: int) -> None:
        async with self.m.op_lock, self._memory(mem):
            slot = self.m.active_slot
            if wanted is not None and wanted != slot:
                log.info("%s: +CMTI for inactive SIM %d; read later", self.m.name, wanted + 1)
                return
            try:
                resp = await self.m.channel.command(f"AT+CMGR={index}", wait=10.0)
            except AtCommandError as exc:
                log.warning("%s: reading %s/%d failed: %s", self.m.name, mem, index, exc)
                return
        data = next((i.data for i in resp.lines if i.data), None)
        stat = _stat_of_cmgr(resp.first("+CMGR") or "")
        await self._process(slot, StoredMessage(mem, index, stat, data))

    async def on_direct(self, slot: int, pdu_hex: str | None) -> None:
        """+CMT (mt=2): not stored, so nothing to delete; ack with CNMA if CSMS service is 1."""
        if pdu_hex is not None:
            decoded = self._decode(pdu_hex, f"+CMT on SIM {slot + 1}")
            if isinstance(decoded, pdulib.Deliver):
                await self._deliver(slot, decoded, None)
        await self._acknowledge()

    async def on_direct_report(self, slot: int, pdu_hex: str | None) -> None:
        """+CDS (ds=1): not stored on the modem. Under CSMS service 1 the network keeps it until
        AT+CNMA, sent here only after the handler returned, i.e. once the report is in the
        journal: a crash or a failed handler before that leaves it unacknowledged, and the
        network delivers it again (a copy that was durable already counts as a repeat)."""
        if pdu_hex is not None:
            decoded = self._decode(pdu_hex, f"+CDS on SIM {slot + 1}")
            report = _report(slot, decoded) if isinstance(decoded, pdulib.StatusReport) else None
            if report is not None and not await self._hand_over(report):
                return  # not acknowledged: the network repeats it
        await self._acknowledge()

    async def _acknowledge(self) -> None:
        """AT+CNMA for the direct delivery just handled (CSMS service 1 only)."""
        caps = self.m.capabilities
        if caps.csms_service != 1:
            return
        try:
            await self.m.channel.command("AT+CNMA")
        except AtTimeout:
            pass
        except AtCommandError as exc:
            # 340: nothing to acknowledge, so it came too late; the network delivers it again,
            # and 27.005 lets the modem switch routing off (CNMI mt and ds to 0): restore it.
            if exc.cms == 340 and caps.cnmi:
                with contextlib.suppress(AtCommandError, AtTimeout):
                    await self.m.channel.command(f"AT+CNMI={caps.cnmi}")

    async def after_switch(self, slot: int) -> None:
        """Deletes that had to wait for this SIM (its indexes are valid again). Lock held."""
        pending, self._pending_delete[slot] = self._pending_delete[slot], set()
        for mem, index in sorted(pending):
            await self._delete_locked(mem, index)

    # -- processing ------------------------------------------------------------------------

    def _decode(self, pdu_hex: str, where: str) -> pdulib.Deliver | pdulib.StatusReport | None:
        try:
            return pdulib.decode_incoming(bytes.fromhex(pdu_hex))
        except (pdulib.PduError, ValueError) as exc:
            log.warning(
                "%s: undecodable PDU from %s skipped (%s): %s", self.m.name, where, exc, pdu_hex
            )
            return None

    async def _process(self, slot: int, item: StoredMessage) -> None:
        if item.stat in (2, 3):
            return  # stored outgoing messages are not ours to read or delete
        where = f"{item.mem}/{item.index}"
        if item.pdu_hex is None:
            log.warning("%s: %s has no PDU; skipped", self.m.name, where)
            return
        decoded = self._decode(item.pdu_hex, where)
        if decoded is None:
            if _is_submit(item.pdu_hex):
                return  # an outgoing message someone stored with a wrong <stat>: not ours
            # A PDU nobody can decode would sit in storage forever and fill it (+CMS 322
            # stops all reception); its full hex is in the warning logged above.
            await self._delete(slot, [(item.mem, item.index)])
            return
        if isinstance(decoded, pdulib.StatusReport):
            if await self._hand_over(_report(slot, decoded)):
                await self._delete(slot, [(item.mem, item.index)])
            return
        await self._deliver(slot, decoded, (item.mem, item.index))

    async def _deliver(self, slot: int, d: pdulib.Deliver, where: tuple[str, int] | None) -> None:
        message = self.reassemblers[slot].add(d, storage=[where] if where else [], scope=str(slot))
        if message is not None:
            await self._release(slot, message)

    async def release_expired(self) -> None:
        """Hand over multipart messages whose missing parts never came, flagged incomplete."""
        for slot, reassembler in self.reassemblers.items():
            for message in reassembler.expire():
                await self._release(slot, message)

    async def _release(self, slot: int, message: Message) -> None:
        # The handler journals it first; only then are the stored parts deleted. A duplicate
        # (parts read again after a crash or a failed handler) carries the same key.
        if not await self._hand_over(message.to_incoming(slot, datetime.now(UTC))):
            return
        storage = list(dict.fromkeys(message.storage))
        if storage:
            await self._delete(slot, storage)

    async def _hand_over(self, event: IncomingSms | DeliveryReport) -> bool:
        try:
            await self.m.emit(event)
        except Exception as exc:
            log.warning(
                "%s: handler failed; %s kept on the modem: %s",
                self.m.name,
                type(event).__name__,
                exc,
            )
            return False
        return True

    async def _delete(self, slot: int, locations: list[tuple[str, int]]) -> None:
        async with self.m.op_lock:
            if slot != self.m.active_slot:
                # Indexes belong to the SIM that was active when read; delete after switching back.
                self._pending_delete[slot].update(locations)
                return
            for mem, index in locations:
                await self._delete_locked(mem, index)

    async def _delete_locked(self, mem: str, index: int) -> None:
        async with self._memory(mem):
            try:
                await self.m.channel.command(f"AT+CMGD={index}", wait=10.0)
            except AtCommandError as exc:
                log.warning("%s: deleting %s/%d failed: %s", self.m.name, mem, index, exc)

    @contextlib.asynccontextmanager
    async def _memory(self, mem: str) -> AsyncIterator[None]:
        """Point mem1 (read/list/delete) at `mem` for the block, then back. Lock held."""
        default = self.m.capabilities.storage[0]
        switch = mem.upper() != default.upper()
        if switch:
            await self.m.channel.command(f"AT+CPMS={quote(mem)}")
        try:
            yield
        finally:
            if switch:
                with contextlib.suppress(AtCommandError, AtTimeout):
                    await self.m.channel.command(f"AT+CPMS={quote(default)}")


def _is_submit(pdu_hex: str) -> bool:
    try:
        pdulib.decode_submit(bytes.fromhex(pdu_hex))
    except (pdulib.PduError, ValueError):
        return False
    return True


def _report(slot: int, r: pdulib.StatusReport) -> DeliveryReport:
    return DeliveryReport(
        slot=slot,
        reference=r.message_reference,
        recipient=r.recipient,
        status=r.status,
        sc_timestamp=r.sc_timestamp,
        discharge_time=r.discharge_time,
    )

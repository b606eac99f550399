"""Receiving on the Gammu backend: the incoming callback's events, sweeps, delete-after-handover.

The rule is the AT inbox's (docs/agent.md, incoming SMS): read, hand over, and delete only after
the handler returned. A handler that raises leaves the message stored; the next sweep (at start,
after a reconnect, periodically) hands it over again with the same key. Concatenated parts stay
stored until the whole message was handed over, or the reassembly timeout released it flagged
incomplete. Parts are joined by reassembly.py from Gammu's decoded fields, which gives the same
idempotency key the AT backend computes for the same stored parts.

`IncomingSms.storage` entries of this backend are (Gammu folder, Gammu location); folder "0" is
Gammu's flat numbering across memories, which is what the callback and GetNextSMS use.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import gammu_convert as conv
from .base import DeliveryReport, IncomingSms
from .reassembly import Message, Reassembler

if TYPE_CHECKING:
    from .gammu_backend import GammuModem

log = logging.getLogger(__name__)

_MAX_STORED = 2000  # a sweep reads at most this many entries (a driver must not loop forever)


class GammuInbox:
    def __init__(self, modem: GammuModem, *, reassembly_timeout: float = 600.0) -> None:
        self.m = modem
        self.reassembler = Reassembler(timeout=reassembly_timeout)
        # One reader at a time, as in the AT inbox: a sweep and a +CMTI read of the same
        # location must not both hand it over and delete it.
        self._lock = asyncio.Lock()

    async def handle(self, kind: str, data: dict[str, Any]) -> None:
        """One event from Gammu's incoming callback."""
        if kind != "SMS":
            log.debug("%s: ignored %s event %r", self.m.name, kind, data)
            return
        if conv.is_status_report(data):
            # +CDS: not stored on the modem, so nothing to delete; a failing handler loses it
            # (as on the AT backend), and the report matcher's window covers a late one.
            await self._hand_over(conv.delivery_report(0, data))
        elif conv.is_incoming(data):
            async with self._lock:  # +CMT: delivered directly, nothing stored
                await self._process(0, 0, data, stored=False)
        elif "Location" in data:
            # +CMTI (or +CDSI): only a location. Gammu 1.45 numbers it in folder 0 (flat).
            folder, location = int(data.get("Folder", 0)), int(data["Location"])
            async with self._lock:
                try:
                    messages = await self.m.call(
                        lambda sm: sm.GetSMS(Folder=folder, Location=location)
                    )
                except self.m.gammu.GSMError as exc:
                    log.warning("%s: reading %d/%d failed: %s", self.m.name, folder, location, exc)
                    return
                for sms in messages:
                    await self._process(folder, location, sms, stored=True)

    async def sweep(self) -> None:
        """Hand over everything stored (and multipart messages whose time ran out)."""
        async with self._lock:
            for message in self.reassembler.expire():
                await self._release(message)
            try:
                entries = await self.m.call(self._list_job)
            except self.m.gammu.GSMError as exc:
                log.warning("%s: sweep failed: %s", self.m.name, conv.error_text(exc))
                return
            for entry in entries:
                for sms in entry:
                    await self._process(0, int(sms.get("Location", 0)), sms, stored=True)

    def _list_job(self, sm: Any) -> list[list[dict[str, Any]]]:
        # On the worker thread.
        found: list[list[dict[str, Any]]] = []
        try:
            entry = sm.GetNextSMS(Folder=0, Start=True)
            while len(found) < _MAX_STORED:
                found.append(entry)
                entry = sm.GetNextSMS(Folder=0, Location=entry[0]["Location"])
        except self.m.gammu.ERR_EMPTY:
            pass
        self.m.gammu_log.trim()
        return found

    async def _process(
        self, folder: int, location: int, sms: dict[str, Any], *, stored: bool
    ) -> None:
        where = [(str(folder), location)] if stored else []
        if conv.is_status_report(sms):
            try:
                report = conv.delivery_report(0, sms)
            except ValueError as exc:
                log.warning("%s: unusable stored report at %s: %s", self.m.name, where, exc)
                return
            if await self._hand_over(report) and where:
                await self._delete(where)
        elif conv.is_incoming(sms):
            message = self.reassembler.add(conv.deliver(sms), storage=where, scope="0")
            if message is not None:
                await self._release(message)
        # Anything else (stored drafts and sent messages) is not ours to read or delete.

    async def _release(self, message: Message) -> None:
        if await self._hand_over(message.to_incoming(0, datetime.now(UTC))):
            await self._delete(list(dict.fromkeys(message.storage)))

    async def _hand_over(self, event: IncomingSms | DeliveryReport) -> bool:
        try:
            await self.m.emit(event)
        except Exception as exc:
            log.warning("%s: handler failed; %s kept: %s", self.m.name, type(event).__name__, exc)
            return False
        return True

    async def _delete(self, storage: list[tuple[str, int]]) -> None:
        for folder, location in storage:
            try:
                await self.m.call(
                    lambda sm, f=int(folder), loc=location: sm.DeleteSMS(Folder=f, Location=loc)
                )
            except self.m.gammu.GSMError as exc:
                # Already gone (deleted by a previous pass) is the only expected failure.
                log.info("%s: deleting %s/%d: %s", self.m.name, folder, location, exc)

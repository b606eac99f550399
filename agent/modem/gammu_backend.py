"""The Gammu backend of agent/modem/base.py's Modem, over python-gammu (an optional extra).

    from simhive.agent.modem.gammu_backend import open_gammu_modem
    modem = open_gammu_modem(port="/dev/ttyUSB2", connection="at115200")
    modem = open_gammu_modem(gammurc="/etc/gammu-smsdrc", gammu_section=0)   # a gammu-smsd setup
    await modem.start(on_event)     # never raises for a missing device: DISCONNECTED, retried
    result = await modem.send("+491601112233", "hello")
    await modem.stop()

Every Gammu call runs on the modem's own worker thread (gammu_worker.py). Received SMS come from
Gammu's incoming callback (+CMTI gives only a location, read afterwards with GetSMS) and from
sweeps of stored messages (at start, after a reconnect, every `sweep_interval`; Gammu's dummy
driver has no callbacks, so there the sweep is the only way in). A message is deleted only after
the event handler returned without raising. Status reports arrive in full in the callback
(`atgen_setcnmi = ,,,1`, see gammu_config.py) and become DeliveryReport events.

What Gammu cannot give is reported as unknown (None), never invented: the ICCID (Gammu has no
call for it, and no raw AT exchange is possible while Gammu holds the port), the own number
unless the SIM's phonebook "ON" has it or the configuration names it, and SIM switching (one
slot only). A lost device (unplug, a hung modem) is noticed by a periodic health call or by a
failing call; then Gammu is terminated and initialised again with backoff.

The parts: this module is the Modem interface (sending, events, lifecycle); gammu_worker.py the
thread that owns Gammu; gammu_session.py the jobs run on it; gammu_supervisor.py connecting and
keeping the link; gammu_inbox.py receiving; gammu_config.py the gammurc; gammu_convert.py the
translation between Gammu's data and simhive's types.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import gammu_convert as conv
from . import gammu_session as session
from .base import (
    EventHandler,
    ModemIdentity,
    ModemState,
    SendError,
    SendOutcome,
    SendResult,
    SimInfo,
)
from .events import EventSource
from .gammu_config import (
    GammuSettings,
    WrittenConfig,
    from_gammurc,
    from_port,
    require_gammu,
    write_gammurc,
)
from .gammu_inbox import GammuInbox
from .gammu_supervisor import GammuSupervisor, LinkLost, device_present
from .gammu_worker import DeviceGone, GammuWorker, WorkerClosed

log = logging.getLogger(__name__)

__all__ = ["GammuModem", "gammu_settings", "open_gammu_modem"]

_NUMBER_RE = re.compile(r"^\+?[0-9]{1,20}$")


class GammuModem(EventSource):
    """A Modem (agent/modem/base.py) driven through python-gammu; one SIM slot."""

    def __init__(
        self,
        settings: GammuSettings,
        *,
        pin: str | None = None,
        own_number: str | None = None,
        health_interval: float = 30.0,
        sweep_interval: float = 300.0,
        reconnect_min: float = 1.0,
        reconnect_max: float = 30.0,
        poll_interval: float = 0.2,
        reassembly_timeout: float = 600.0,
        config_dir: str | Path | None = None,
        gammu_module: Any = None,
    ) -> None:
        self._g = gammu_module if gammu_module is not None else require_gammu()
        self.settings = settings
        self.rc: WrittenConfig = write_gammurc(settings, config_dir)
        self.gammu_log = session.GammuLog(self.rc)
        self._private_dir = config_dir is None  # ours to remove at stop()
        self.identity = ModemIdentity()
        self.pin = pin
        self.own_number = own_number  # from the config; the SIM's own (phonebook ON) wins
        # Serial devices are files that vanish on unplug; the dummy's device is a directory and
        # Bluetooth or network connections name no file at all.
        watch = settings.device.startswith("/") and not settings.is_dummy
        self._watch = watch
        self.worker = GammuWorker(
            settings.device,
            self._g,
            poll_interval=poll_interval,
            device_present=(lambda: device_present(settings.device)) if watch else None,
        )
        self.supervisor = GammuSupervisor(
            self,
            health_interval=health_interval,
            sweep_interval=sweep_interval,
            reconnect_min=reconnect_min,
            reconnect_max=reconnect_max,
        )
        self._state = ModemState.DISCONNECTED
        self._state_reason = "not started"
        self._handler: EventHandler | None = None
        self._events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.inbox = GammuInbox(self, reassembly_timeout=reassembly_timeout)
        # Written by the supervisor on each (re)connect and health check.
        self.last_sim: SimInfo | None = None
        self.sim_number: str | None = None
        self.push_incoming = False
        self.sim_problem: str | None = None

    # -- Modem protocol ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.settings.device

    @property
    def gammu(self) -> Any:
        """The python-gammu module (for its exception classes)."""
        return self._g

    @property
    def slots(self) -> list[int]:
        return [0]  # Gammu has no SIM switching

    async def start(self, on_event: EventHandler) -> None:
        self._handler = on_event
        self.worker.start(self._on_incoming)
        await self.set_state(ModemState.CONNECTING, f"starting ({self.settings.source})")
        await self.supervisor.connect()
        if self._tasks:
            return  # start() again after a failure that happened late: supervision runs already
        sup = self.supervisor
        self._tasks.append(asyncio.create_task(self._event_loop(), name=f"gammu ev {self.name}"))
        self._tasks.append(asyncio.create_task(sup.run(), name=f"gammu sup {self.name}"))
        if self._watch:
            self._tasks.append(
                asyncio.create_task(sup.watch_device(), name=f"gammu watch {self.name}")
            )

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.worker.close()  # finishes a submit in flight, then Terminate()
        if self._private_dir:
            shutil.rmtree(self.rc.path.parent, ignore_errors=True)
        self._mark_stopped()

    async def sim_info(self) -> list[SimInfo]:
        if self._state is ModemState.DISCONNECTED or self.sim_problem is not None:
            # The last reading if there was one; a modem never reached has no known SIM.
            return [self.last_sim or SimInfo(slot=0, present=False, active=False)]
        try:
            return [await self.supervisor.refresh_sim()]
        except LinkLost:
            return [self.last_sim or SimInfo(slot=0, present=False, active=False)]

    async def send(
        self, number: str, text: str, *, slot: int = 0, status_report: bool = True
    ) -> SendResult:
        self._require_slot(slot)
        if not _NUMBER_RE.match(number):
            raise SendError(f"not a phone number: {number!r}", outcome=SendOutcome.PERMANENT)
        try:
            parts = self._g.EncodeSMS(
                {"Entries": [{"ID": "ConcatenatedAutoTextLong", "Buffer": text}]}
            )
        except (self._g.GSMError, ValueError, TypeError) as exc:
            raise SendError(f"cannot encode: {exc}", outcome=SendOutcome.PERMANENT) from exc
        self._require_connected()
        for part in parts:
            # SMSC location 1: the number stored on the SIM, as the AT backend's empty SCA does.
            # Type Status_Report sets TP-SRR (first octet 0x31).
            part.update(
                SMSC={"Location": 1},
                Number=number,
                Type="Status_Report" if status_report else "Submit",
            )

        def send_job(sm: Any) -> list[int]:
            return session.send_parts(self._g, self.gammu_log, sm, parts)

        try:
            refs = await self.worker.call(send_job)
        except (WorkerClosed, DeviceGone) as exc:
            raise SendError(str(exc), outcome=SendOutcome.RETRY) from exc
        except session.PartFailed as failed:
            if conv.is_link_error(failed.exc):
                self.supervisor.lose_link(conv.error_text(failed.exc))
            raise conv.send_error_from_gammu(
                failed.exc, parts_sent=len(failed.sent), modem_code=failed.code
            ) from failed.exc
        encoding = conv.coding_name(str(parts[0].get("Coding", "")))
        return SendResult(references=refs, encoding=encoding, sent_at=datetime.now(UTC))

    async def call(self, fn: Any) -> Any:
        """A worker call whose link errors mean the device is gone (raises LinkLost)."""
        try:
            return await self.worker.call(fn)
        except DeviceGone as exc:
            self.supervisor.lose_link(str(exc))
            raise LinkLost(str(exc)) from exc
        except self._g.GSMError as exc:
            if conv.is_link_error(exc):
                self.supervisor.lose_link(conv.error_text(exc))
                raise LinkLost(conv.error_text(exc)) from exc
            raise

    # -- receiving -----------------------------------------------------------------------------

    def _on_incoming(self, kind: str, data: dict[str, Any]) -> None:
        self._events.put_nowait((kind, data))

    async def _event_loop(self) -> None:
        while True:
            kind, data = await self._events.get()
            try:
                await self.inbox.handle(kind, data)
            except asyncio.CancelledError:
                raise
            except LinkLost as exc:
                log.warning("%s: reading an announced message failed: %s", self.name, exc)
            except Exception:
                log.exception("%s: handling a %s event failed: %r", self.name, kind, data)

    async def sweep(self) -> None:
        """Hand over everything stored (and multipart messages whose time ran out)."""
        await self.inbox.sweep()

    # -- for tests and diagnostics -------------------------------------------------------------

    def describe(self) -> dict[str, object]:
        return {
            "device": self.settings.device,
            "connection": self.settings.connection,
            "source": self.settings.source,
            "gammurc": str(self.rc.path),
            **self._describe_state(),
            "incoming_notifications": self.push_incoming,
        }


def open_gammu_modem(
    *,
    port: str | None = None,
    connection: str | None = None,
    gammurc: str | Path | None = None,
    gammu_section: int | str | None = None,
    pin: str | None = None,
    own_number: str | None = None,
    **options: Any,
) -> GammuModem:
    """Build (not start) a Gammu modem from a gammurc section, or from a port and connection."""
    settings = gammu_settings(
        port=port, connection=connection, gammurc=gammurc, gammu_section=gammu_section
    )
    return GammuModem(settings, pin=pin, own_number=own_number, **options)


def gammu_settings(
    *,
    port: str | None = None,
    connection: str | None = None,
    gammurc: str | Path | None = None,
    gammu_section: int | str | None = None,
) -> GammuSettings:
    """What Gammu will be told: a gammurc section (port and connection override its values), or
    a port with a connection (default at115200). Needs no python-gammu (`check-config` uses it)."""
    if gammurc is not None:
        settings = from_gammurc(gammurc, gammu_section, port=port)
        if connection:
            settings = replace(settings, connection=connection)
        return settings
    if port is None:
        raise ValueError("the gammu backend needs a port or a gammurc")
    return from_port(port, connection or "at115200")

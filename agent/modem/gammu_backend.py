"""The Gammu backend of agent/modem/base.py's Modem, over python-gammu (an optional extra).

    from agent.modem.gammu_backend import open_gammu_modem
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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import gammu_convert as conv
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
from .gammu_worker import DeviceGone, GammuWorker, WorkerClosed

log = logging.getLogger(__name__)

__all__ = ["GammuModem", "open_gammu_modem"]

_NUMBER_RE = re.compile(r"^\+?[0-9]{1,20}$")
_LOG_LIMIT = 1_000_000  # our own Gammu log is emptied beyond this size


@dataclass(frozen=True)
class _Connected:
    identity: ModemIdentity
    push: bool  # SetIncomingSMS(True) worked: the callback announces new messages
    sim_problem: str | None
    own_number: str | None
    sim_missing: bool = False


class _PartFailed(Exception):
    def __init__(self, exc: BaseException, sent: list[int], code: tuple[str, int] | None) -> None:
        super().__init__(str(exc))
        self.exc, self.sent, self.code = exc, sent, code


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
        self._private_dir = config_dir is None  # ours to remove at stop()
        self.identity = ModemIdentity()
        self._pin = pin
        self._own_number = own_number
        self.health_interval = health_interval
        self.sweep_interval = sweep_interval
        self._backoff = (reconnect_min, reconnect_max)
        # Serial devices are files that vanish on unplug; the dummy's device is a directory and
        # Bluetooth or network connections name no file at all.
        watch = settings.device.startswith("/") and not settings.is_dummy
        self._watch = watch
        self._worker = GammuWorker(
            settings.device,
            self._g,
            poll_interval=poll_interval,
            device_present=(lambda: _present(settings.device)) if watch else None,
        )
        self._state = ModemState.DISCONNECTED
        self._state_reason = "not started"
        self._handler: EventHandler | None = None
        self._events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.inbox = GammuInbox(self, reassembly_timeout=reassembly_timeout)
        self._link_lost = asyncio.Event()
        self._lost_reason = ""
        self._sim: SimInfo | None = None
        self._sim_number: str | None = None
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
        return [0]  # Gammu has no SIM switching (spec/modems.md 10.4)

    @property
    def state(self) -> ModemState:
        return self._state

    @property
    def state_reason(self) -> str:
        return self._state_reason

    async def start(self, on_event: EventHandler) -> None:
        self._handler = on_event
        self._worker.start(self._on_incoming)
        await self.set_state(ModemState.CONNECTING, f"starting ({self.settings.source})")
        await self._connect()
        if self._tasks:
            return  # start() again after a failure that happened late: supervision runs already
        self._tasks.append(asyncio.create_task(self._event_loop(), name=f"gammu ev {self.name}"))
        self._tasks.append(asyncio.create_task(self._supervise(), name=f"gammu sup {self.name}"))
        if self._watch:
            self._tasks.append(
                asyncio.create_task(self._watch_device(), name=f"gammu watch {self.name}")
            )

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self._worker.close()  # finishes a submit in flight, then Terminate()
        if self._private_dir:
            shutil.rmtree(self.rc.path.parent, ignore_errors=True)
        self._state, self._state_reason = ModemState.DISCONNECTED, "stopped"

    async def sim_info(self) -> list[SimInfo]:
        if self._state is ModemState.DISCONNECTED or self.sim_problem is not None:
            # The last reading if there was one; a modem never reached has no known SIM.
            return [self._sim or SimInfo(slot=0, present=False, active=False)]
        try:
            return [await self._refresh_sim()]
        except _LinkLost:
            return [self._sim or SimInfo(slot=0, present=False, active=False)]

    async def send(
        self, number: str, text: str, *, slot: int = 0, status_report: bool = True
    ) -> SendResult:
        if slot not in self.slots:
            raise SendError(f"no SIM slot {slot} on {self.name}", outcome=SendOutcome.PERMANENT)
        if not _NUMBER_RE.match(number):
            raise SendError(f"not a phone number: {number!r}", outcome=SendOutcome.PERMANENT)
        try:
            parts = self._g.EncodeSMS(
                {"Entries": [{"ID": "ConcatenatedAutoTextLong", "Buffer": text}]}
            )
        except (self._g.GSMError, ValueError, TypeError) as exc:
            raise SendError(f"cannot encode: {exc}", outcome=SendOutcome.PERMANENT) from exc
        if self._state is ModemState.DISCONNECTED:
            raise SendError(
                f"{self.name} is disconnected ({self._state_reason})", outcome=SendOutcome.RETRY
            )
        for part in parts:
            # SMSC location 1: the number stored on the SIM, as the AT backend's empty SCA does.
            # Type Status_Report sets TP-SRR (first octet 0x31, spec/modems.md 3).
            part.update(
                SMSC={"Location": 1},
                Number=number,
                Type="Status_Report" if status_report else "Submit",
            )
        try:
            refs = await self._worker.call(lambda sm: self._send_job(sm, parts))
        except (WorkerClosed, DeviceGone) as exc:
            raise SendError(str(exc), outcome=SendOutcome.RETRY) from exc
        except _PartFailed as failed:
            if conv.is_link_error(failed.exc):
                self._lose_link(conv.error_text(failed.exc))
            raise conv.send_error_from_gammu(
                failed.exc, parts_sent=len(failed.sent), modem_code=failed.code
            ) from failed.exc
        encoding = conv.coding_name(str(parts[0].get("Coding", "")))
        return SendResult(references=refs, encoding=encoding, sent_at=datetime.now(UTC))

    # -- jobs (run on the worker thread, may only touch `sm` and plain data) -------------------

    def _send_job(self, sm: Any, parts: list[dict[str, Any]]) -> list[int]:
        refs: list[int] = []
        for part in parts:
            mark = self._log_size()
            try:
                refs.append(int(sm.SendSMS(part)))
            except self._g.GSMError as exc:
                raise _PartFailed(exc, refs, conv.last_modem_code(self._log_since(mark))) from exc
        return refs

    def _connect_job(self, sm: Any) -> _Connected:
        g = self._g
        self._worker.pumping = False
        with contextlib.suppress(g.GSMError):
            sm.Terminate()  # a previous session, if any; "not connected" is fine
        self.trim_log(force=True)
        sm.ReadConfig(Filename=str(self.rc.path))
        sm.Init()
        problem, missing = None, False
        mark = self._log_size()
        try:
            security = sm.GetSecurityStatus()  # None: nothing to enter
        except g.ERR_NOSIM:
            # Gammu says ERR_NOSIM both for "not inserted" (+CME 10) and "busy" (+CME 14);
            # the modem's code in Gammu's log tells them apart.
            code = conv.last_modem_code(self._log_since(mark))
            missing = code in (("CME", 10), ("CMS", 310))
            security = None
            problem = "SIM not inserted" if missing else "SIM not accessible (busy or failed)"
        except g.GSMError:
            security = None  # not supported by this phone: go on and let SMS calls tell
        if security == "PIN" and self._pin:
            sm.EnterSecurityCode("PIN", self._pin)
        elif security is not None:
            problem = f"SIM needs {security}" + (
                " (no pin configured)" if security == "PIN" else ""
            )
        identity = ModemIdentity(
            manufacturer=_text(_safe(g, sm.GetManufacturer)),
            model=_model(_safe(g, sm.GetModel)),
            firmware=_first(_safe(g, sm.GetFirmware)),
            imei=_text(_safe(g, sm.GetIMEI)),
        )
        push = False
        if problem is None:
            self._worker.attach_callback(sm)
            try:
                sm.SetIncomingSMS(True)
                push = True
            except g.GSMError as exc:
                log.info("%s: no incoming SMS notifications (%s); sweeping", self.name, exc)
        self._worker.pumping = True
        number = _own_number(g, sm) if problem is None else None
        return _Connected(identity, push, problem, number, missing)

    def _sim_job(self, sm: Any) -> tuple[str | None, Any, Any]:
        g = self._g
        return (
            _text(_safe(g, sm.GetSIMIMSI)) or None,
            _safe(g, sm.GetNetworkInfo),
            _safe(g, sm.GetSignalQuality),
        )

    # -- Gammu's log (the only place the modem's +CMS/+CME code survives) ----------------------

    def _log_size(self) -> int:
        try:
            return self.rc.logfile.stat().st_size
        except OSError:
            return 0

    def _log_since(self, mark: int) -> bytes:
        try:
            with self.rc.logfile.open("rb") as f:
                f.seek(mark if mark <= self._log_size() else 0)
                return f.read(200_000)
        except OSError:
            return b""

    def trim_log(self, *, force: bool = False) -> None:
        # Only on the worker thread between calls: Gammu appends, so emptying is safe there.
        # A logfile the user named is theirs: never emptied.
        if self.rc.owns_log and (force or self._log_size() > _LOG_LIMIT):
            with contextlib.suppress(OSError):
                self.rc.logfile.write_bytes(b"")

    # -- connection lifecycle ----------------------------------------------------------------

    async def call(self, fn: Any) -> Any:
        """A worker call whose link errors mean the device is gone (raises _LinkLost)."""
        try:
            return await self._worker.call(fn)
        except DeviceGone as exc:
            self._lose_link(str(exc))
            raise _LinkLost(str(exc)) from exc
        except self._g.GSMError as exc:
            if conv.is_link_error(exc):
                self._lose_link(conv.error_text(exc))
                raise _LinkLost(conv.error_text(exc)) from exc
            raise

    def _lose_link(self, reason: str) -> None:
        if not self._link_lost.is_set():
            self._lost_reason = reason
            self._link_lost.set()

    async def _connect(self) -> bool:
        """Init Gammu, read identity and SIM, sweep; False (DISCONNECTED) if it failed."""
        self._link_lost.clear()
        try:
            done: _Connected = await self._worker.call(
                self._connect_job, check_device=False, fresh=True
            )
        except self._g.GSMError as exc:
            await self.set_state(ModemState.DISCONNECTED, f"init failed: {conv.error_text(exc)}")
            return False
        except WorkerClosed:
            return False
        except Exception as exc:  # a bug or an odd driver: stay supervised, never crash
            log.exception("%s: connecting failed", self.name)
            await self.set_state(ModemState.DISCONNECTED, f"init failed: {exc!r}")
            return False
        self.identity = done.identity
        self.push_incoming = done.push
        self.sim_problem = done.sim_problem
        self._sim_number = done.own_number
        if done.sim_problem is not None:
            self._sim = SimInfo(slot=0, present=not done.sim_missing, active=True)
            await self.set_state(ModemState.DEGRADED, done.sim_problem)
            return True
        try:
            await self._refresh_sim()
            await self.sweep()
        except _LinkLost as exc:
            await self.set_state(ModemState.DISCONNECTED, f"lost during start-up: {exc}")
            return False
        return True

    async def _refresh_sim(self) -> SimInfo:
        imsi, network, quality = await self.call(self._sim_job)
        info = conv.sim_info(
            slot=0,
            imsi=imsi,
            network=network,
            quality=quality,
            number=self._sim_number or self._own_number,
        )
        self._sim = info
        if info.registered:
            reason = "registered" + (" (roaming)" if info.roaming else "")
            await self.set_state(ModemState.READY, reason)
        else:
            await self.set_state(ModemState.DEGRADED, "not registered to a network")
        return info

    async def _supervise(self) -> None:
        delay = self._backoff[0]
        loop = asyncio.get_running_loop()
        next_health = loop.time() + self.health_interval
        next_sweep = loop.time() + self.sweep_interval
        while True:
            if self._state is ModemState.DISCONNECTED:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])
                await self.set_state(ModemState.CONNECTING, "reconnecting")
                if await self._connect():
                    delay = self._backoff[0]
                    next_health = loop.time() + self.health_interval
                    next_sweep = loop.time() + self.sweep_interval
                continue
            wake = min(next_health, next_sweep)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._link_lost.wait(), max(0.0, wake - loop.time()))
            try:
                if self._link_lost.is_set():
                    raise _LinkLost(self._lost_reason)
                if loop.time() >= next_health:
                    next_health = loop.time() + self.health_interval
                    if self.sim_problem is not None:
                        await self.set_state(ModemState.CONNECTING, "retrying the SIM")
                        await self._connect()
                    else:
                        await self._refresh_sim()
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + self.sweep_interval
                    await self.sweep()
            except _LinkLost as exc:
                await self.set_state(ModemState.DISCONNECTED, f"link lost: {exc}")
            except self._g.GSMError as exc:
                log.warning("%s: periodic check failed: %s", self.name, conv.error_text(exc))
            except Exception:  # supervision must outlive any single failure
                log.exception("%s: periodic check failed", self.name)

    async def _watch_device(self) -> None:
        # A Gammu call that was waiting for an answer when the modem vanished only gives up
        # after Gammu's own timeouts (GetNetworkInfo: about 40 s, measured against the
        # emulator). A vanished device node is certain sooner: abort that call, report
        # DISCONNECTED at once (sends fail fast with RETRY), and let the supervisor reconnect.
        device = self.settings.device
        while True:
            await asyncio.sleep(min(1.0, self.health_interval))
            if self._state is not ModemState.DISCONNECTED and not _present(device):
                self._worker.abort()
                self._lose_link(f"{device} disappeared")
                await self.set_state(ModemState.DISCONNECTED, f"link lost: {device} disappeared")

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
            except _LinkLost as exc:
                log.warning("%s: reading an announced message failed: %s", self.name, exc)
            except Exception:
                log.exception("%s: handling a %s event failed: %r", self.name, kind, data)

    async def sweep(self) -> None:
        """Hand over everything stored (and multipart messages whose time ran out)."""
        await self.inbox.sweep()

    # -- for `simhive-agent probe` and tests --------------------------------------------------

    def describe(self) -> dict[str, object]:
        return {
            "device": self.settings.device,
            "connection": self.settings.connection,
            "source": self.settings.source,
            "gammurc": str(self.rc.path),
            "state": self._state.value,
            "reason": self._state_reason,
            "manufacturer": self.identity.manufacturer,
            "model": self.identity.model,
            "firmware": self.identity.firmware,
            "imei": self.identity.imei,
            "incoming_notifications": self.push_incoming,
        }


class _LinkLost(Exception):
    pass


def _safe(g: Any, fn: Any) -> Any:
    # Identity and network calls some phones do not support: unknown, not fatal. A lost link
    # still propagates so the caller reconnects.
    try:
        return fn()
    except g.GSMError as exc:
        if conv.is_link_error(exc):
            raise
        return None


def _present(device: str) -> bool:
    return os.path.exists(device)  # one stat() of a /dev node: never blocks for long


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _first(value: Any) -> str:
    return _text(value[0]) if isinstance(value, tuple | list) and value else _text(value)


def _model(value: Any) -> str:
    # GetModel() -> (Gammu's model code, the phone's own name); the code is "unknown" for most
    # AT modems, the name is what +CGMM said.
    if isinstance(value, tuple | list) and len(value) >= 2 and _text(value[1]):
        return _text(value[1])
    return _first(value)


def _own_number(g: Any, sm: Any) -> str | None:
    # Gammu reads the own number only from the SIM phonebook "ON" (no AT+CNUM); often empty.
    try:
        entry = sm.GetMemory(Type="ON", Location=1)
    except g.GSMError as exc:
        if conv.is_link_error(exc):
            raise
        return None
    for item in entry.get("Entries", []):
        value = item.get("Value")
        if str(item.get("Type", "")).startswith("Number") and isinstance(value, str) and value:
            return value
    return None


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
    if gammurc is not None:
        settings = from_gammurc(gammurc, gammu_section, port=port)
        if connection:
            settings = replace(settings, connection=connection)
    else:
        if port is None:
            raise ValueError("the gammu backend needs a port or a gammurc")
        settings = from_port(port, connection or "at115200")
    return GammuModem(settings, pin=pin, own_number=own_number, **options)

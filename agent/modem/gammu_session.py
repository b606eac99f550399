"""The Gammu backend's jobs: what runs on the worker thread with the StateMachine in hand.

Each job may only touch `sm` and plain data (gammu_worker.py runs it on the modem's own thread);
the asyncio side (gammu_backend.py, gammu_supervisor.py) only awaits its result.

Gammu's log is read here too: python-gammu raises ERR_UNKNOWN for most `+CMS ERROR: <n>` and
`+CME ERROR: <n>` answers, and the log (`logformat = errors`, written by gammu_config.py) is the
only place the modem's own code survives. A job notes the log's size before a call and reads what
was appended after it failed.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from . import gammu_convert as conv
from .base import UNKNOWN_REFERENCE, ModemIdentity
from .gammu_config import WrittenConfig
from .gammu_worker import GammuWorker

log = logging.getLogger(__name__)

_LOG_LIMIT = 1_000_000  # our own Gammu log is emptied beyond this size


@dataclass(frozen=True)
class Connected:
    """What one connect job found out."""

    identity: ModemIdentity
    push: bool  # SetIncomingSMS(True) worked: the callback announces new messages
    sim_problem: str | None
    own_number: str | None
    sim_missing: bool = False


class PartFailed(Exception):
    """A SendSMS failed: the Gammu error, the references of the parts already sent, the modem's
    +CMS/+CME code from the log (if any)."""

    def __init__(self, exc: BaseException, sent: list[int], code: tuple[str, int] | None) -> None:
        super().__init__(str(exc))
        self.exc, self.sent, self.code = exc, sent, code


class GammuLog:
    """Gammu's log file: its size as a mark, what was appended since, trimming our own."""

    def __init__(self, rc: WrittenConfig) -> None:
        self.rc = rc

    def size(self) -> int:
        try:
            return self.rc.logfile.stat().st_size
        except OSError:
            return 0

    def since(self, mark: int) -> bytes:
        try:
            with self.rc.logfile.open("rb") as f:
                f.seek(mark if mark <= self.size() else 0)
                return f.read(200_000)
        except OSError:
            return b""

    def trim(self, *, force: bool = False) -> None:
        # Only on the worker thread between calls: Gammu appends, so emptying is safe there.
        # A logfile the user named is theirs: never emptied.
        if self.rc.owns_log and (force or self.size() > _LOG_LIMIT):
            with contextlib.suppress(OSError):
                self.rc.logfile.write_bytes(b"")


def send_parts(g: Any, gammu_log: GammuLog, sm: Any, parts: list[dict[str, Any]]) -> list[int]:
    """SendSMS per part; the TP-MR of each. Raises PartFailed naming what was already sent."""
    refs: list[int] = []
    for part in parts:
        mark = gammu_log.size()
        try:
            ref = int(sm.SendSMS(part))
            refs.append(ref if 0 <= ref <= 255 else UNKNOWN_REFERENCE)  # what Gammu parsed
        except g.GSMError as exc:
            raise PartFailed(exc, refs, conv.last_modem_code(gammu_log.since(mark))) from exc
    return refs


def connect(
    g: Any,
    sm: Any,
    *,
    worker: GammuWorker,
    rc: WrittenConfig,
    gammu_log: GammuLog,
    pin: str | None,
    name: str,
) -> Connected:
    """(Re-)initialise Gammu, enter the PIN, read identity, turn on incoming notifications."""
    worker.pumping = False
    with contextlib.suppress(g.GSMError):
        sm.Terminate()  # a previous session, if any; "not connected" is fine
    gammu_log.trim(force=True)
    sm.ReadConfig(Filename=str(rc.path))
    sm.Init()
    problem, missing = None, False
    mark = gammu_log.size()
    try:
        security = sm.GetSecurityStatus()  # None: nothing to enter
    except g.ERR_NOSIM:
        # Gammu says ERR_NOSIM both for "not inserted" (+CME 10) and "busy" (+CME 14);
        # the modem's code in Gammu's log tells them apart.
        code = conv.last_modem_code(gammu_log.since(mark))
        missing = code in (("CME", 10), ("CMS", 310))
        security = None
        problem = "SIM not inserted" if missing else "SIM not accessible (busy or failed)"
    except g.GSMError:
        security = None  # not supported by this phone: go on and let SMS calls tell
    if security == "PIN" and pin:
        sm.EnterSecurityCode("PIN", pin)
    elif security is not None:
        problem = f"SIM needs {security}" + (" (no pin configured)" if security == "PIN" else "")
    identity = ModemIdentity(
        manufacturer=_text(_safe(g, sm.GetManufacturer)),
        model=_model(_safe(g, sm.GetModel)),
        firmware=_first(_safe(g, sm.GetFirmware)),
        imei=_text(_safe(g, sm.GetIMEI)),
    )
    push = False
    if problem is None:
        worker.attach_callback(sm)
        try:
            sm.SetIncomingSMS(True)
            push = True
        except g.GSMError as exc:
            log.info("%s: no incoming SMS notifications (%s); sweeping", name, exc)
    worker.pumping = True
    number = _own_number(g, sm) if problem is None else None
    return Connected(identity, push, problem, number, missing)


def read_sim(g: Any, sm: Any) -> tuple[str | None, Any, Any]:
    """(IMSI, network info, signal quality); None for what this phone cannot tell."""
    return (
        _text(_safe(g, sm.GetSIMIMSI)) or None,
        _safe(g, sm.GetNetworkInfo),
        _safe(g, sm.GetSignalQuality),
    )


def _safe(g: Any, fn: Any) -> Any:
    # Identity and network calls some phones do not support: unknown, not fatal. A lost link
    # still propagates so the caller reconnects.
    try:
        return fn()
    except g.GSMError as exc:
        if conv.is_link_error(exc):
            raise
        return None


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

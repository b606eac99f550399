"""One emulated modem: its SIMs, registration and dual-SIM state, faults, and the ports it serves.

Delivery into the modem (incoming SMS and status reports from the virtual network) is decided
here from each port's +CNMI and +CPMS settings: stored with +CMTI/+CDSI, or direct +CMT/+CDS.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from .engine import CmeError, CmsError, Session
from .faults import Faults, apply_faults
from .profiles import Profile
from .sim import Sim
from .storage import REC_UNREAD, MemoryFull, Storage, StoredMessage

if TYPE_CHECKING:
    from .network import Network

log = logging.getLogger(__name__)

DUAL_SIM_STYLES = ("none", "cdsds", "qdsim", "ports")


@dataclass
class SimState:
    sim: Sim
    storage: Storage = field(default_factory=Storage)
    next_mr: int = 1

    def take_mr(self) -> int:
        # TP-MR wraps after 255: the only link to a later report, so clients must expect repeats
        mr = self.next_mr
        self.next_mr = (self.next_mr + 1) % 256
        return mr


@dataclass(frozen=True)
class IncomingSms:
    pdu: bytes  # SMS-DELIVER with SCA
    tpdu_length: int
    sender: str
    text: str
    sc_timestamp: datetime


@dataclass(frozen=True)
class IncomingReport:
    pdu: bytes  # SMS-STATUS-REPORT with SCA
    tpdu_length: int
    reference: int
    recipient: str
    status: int
    sc_timestamp: datetime
    discharge_time: datetime


def _scts(ts: datetime) -> str:
    """Text-mode time stamp "yy/MM/dd,hh:mm:ss+zz" (zz in quarter hours)."""
    offset = ts.utcoffset()
    quarters = int(offset.total_seconds() // 900) if offset else 0
    return ts.strftime("%y/%m/%d,%H:%M:%S") + f"{quarters:+03d}"


class VirtualModem:
    def __init__(
        self,
        modem_id: str,
        profile: Profile,
        imei: str,
        sims: list[Sim],
        dual_sim: str,
        network: Network,
    ) -> None:
        if dual_sim not in DUAL_SIM_STYLES:
            raise ValueError(f"dual-sim style must be one of {DUAL_SIM_STYLES}, got {dual_sim!r}")
        self.id = modem_id
        self.profile = profile
        self.imei = imei
        self.dual_sim = dual_sim
        self.sims = [SimState(sim) for sim in sims]
        self.network = network
        self.faults = Faults()
        # pulsed when faults change: wakes the port tickers parked while there is nothing to print
        self.faults_changed = asyncio.Event()
        self.active_slot = 0
        self.cfun = 1
        self.plugged = True
        self.sessions: list[Session] = []
        self._boot_at = time.monotonic()
        self._switch_until = 0.0
        self._reregister_at = 0.0
        self.pin_unlocked = False
        self.pin_attempts = 3
        self.on_change: Callable[[], None] = lambda: None

    # ---- state queries ------------------------------------------------------------------------

    def serving(self, slot: int) -> bool:
        """Whether the slot is attached: single-standby modems attach only the selected SIM."""
        return self.dual_sim in ("none", "ports") or slot == self.active_slot

    def sim_busy(self) -> bool:
        now = time.monotonic()
        return now < self._boot_at + self.faults.sim_busy or now < self._switch_until

    def sim_ready(self, slot: int) -> bool:
        sim = self.sims[slot].sim
        return (
            sim.present
            and not self.faults.sim_missing
            and not self.sim_busy()
            and self.pin_state() == "READY"
        )

    def pin_state(self) -> str:
        """+CPIN? answer for a present SIM: READY, SIM PIN (pin fault) or SIM PUK (3 misses)."""
        if self.faults.pin is None or self.pin_unlocked:
            return "READY"
        return "SIM PUK" if self.pin_attempts <= 0 else "SIM PIN"

    def check_sim(self, slot: int, *, sms: bool, pin_ok: bool = False) -> None:
        """Raise the error a real modem gives when the SIM cannot be used right now."""
        if not self.sims[slot].sim.present or self.faults.sim_missing:
            raise CmsError(310) if sms else CmeError(10)
        if self.sim_busy():
            raise CmsError(314) if sms else CmeError(14)
        state = self.pin_state()
        if state != "READY" and not pin_ok:
            if state == "SIM PUK":
                raise CmsError(316) if sms else CmeError(12)
            raise CmsError(311) if sms else CmeError(11)

    def enter_pin(self, pin: str) -> None:
        """AT+CPIN=<pin>: three wrong PINs lock the SIM until its PUK (not emulated)."""
        state = self.pin_state()
        if state == "READY":
            raise CmeError(3)
        if state == "SIM PUK":
            raise CmeError(12)
        if pin != self.faults.pin:
            self.pin_attempts -= 1
            raise CmeError(16)
        self.pin_unlocked = True
        self.pin_attempts = 3
        for session in self.sessions:
            session.sim_ready_urcs()
        self.network_changed()

    def registration(self, slot: int) -> int:
        """+CREG <stat>: 0 not registered, 1 home, 2 searching, 5 roaming."""
        if self.cfun != 1 or self.faults.no_network or not self.serving(slot):
            return 0
        if not self.sims[slot].sim.present or self.faults.sim_missing:
            return 0
        if self.pin_state() != "READY":
            return 0  # a locked SIM does not attach
        if time.monotonic() < self._reregister_at:
            return 2
        return 5 if self.sims[slot].sim.roaming else 1

    def registered(self, slot: int) -> bool:
        return self.registration(slot) in (1, 5)

    def session_for(self, slot: int) -> Session | None:
        if not self.plugged or not self.sessions:
            return None
        if self.dual_sim == "ports":
            return self.sessions[slot] if slot < len(self.sessions) else None
        return self.sessions[0] if self.serving(slot) else None

    def format_profile_line(self, text: str, slot: int) -> str:
        sim = self.sims[slot].sim
        return text.format(
            csq=sim.csq,
            operator_short=sim.serving.short,
            mcc=sim.serving.code[:3],
            mnc=sim.serving.code[3:],
        )

    @property
    def switch_delay(self) -> float:
        """Seconds to re-register after a SIM switch or radio on: the fault, else the family's."""
        if self.faults.switch_delay is not None:
            return self.faults.switch_delay
        return self.profile.switch_delay

    def urc_name(self, base: str, slot: int) -> str:
        """SIM 2 URCs of SIMCom dual-SIM firmware carry a DS suffix (+CMTIDS, +CDSDS)."""
        if slot == 1 and self.profile.ds_suffix_urcs and self.dual_sim == "cdsds":
            return base + "DS"
        return base

    # ---- life cycle ---------------------------------------------------------------------------

    def boot(self) -> None:
        self._boot_at = time.monotonic()
        self.pin_unlocked = False  # a power cycle locks a PIN-protected SIM again
        self._switch_until = 0.0
        self._reregister_at = 0.0
        self.cfun = 1
        if self.dual_sim in ("cdsds", "qdsim"):
            self.active_slot = 0
        for session in self.sessions:
            session.boot(self.faults.sim_busy)
        self._after_delay(max(self.faults.sim_busy, 0.0))

    def _after_delay(self, delay: float) -> None:
        """When the SIM/network becomes usable again, let the SMSC retry what it holds."""
        loop = asyncio.get_running_loop()
        loop.call_later(delay + 0.01, self.network.kick)

    def switch_sim(self, slot: int) -> None:
        """Single-standby switch: deregister, re-read the SIM, register again after a delay."""
        if slot == self.active_slot:
            return
        self.active_slot = slot
        delay = self.switch_delay
        now = time.monotonic()
        self._switch_until = now + delay
        self._reregister_at = now + delay
        for session in self.sessions:
            session.settings.reset_sim_settings()
        loop = asyncio.get_running_loop()
        loop.call_later(delay, self._switched)
        self.on_change()

    def _switched(self) -> None:
        for session in self.sessions:
            if self.dual_sim == "qdsim":
                session.urc("+CPIN: READY")
                session.urc("+QIND: SMS DONE")
            elif self.dual_sim == "cdsds":
                session.urc("SMS Ready")
            self._creg_urc(session)
        self.network.kick()

    def set_cfun(self, fun: int) -> None:
        was = self.cfun
        self.cfun = fun
        if fun == 1 and was != 1:
            # radio on: registration takes the family's re-registration time
            self._reregister_at = time.monotonic() + self.switch_delay
            self._after_delay(self.switch_delay)
        for session in self.sessions:
            self._creg_urc(session)

    def _creg_urc(self, session: Session) -> None:
        if session.settings.creg:
            stat = self.registration(session.slot)
            session.urc(f"{self.urc_name('+CREG', session.slot)}: {stat}")

    def apply_faults(self, spec: object) -> list[str]:
        """Set faults while running; raises FaultError before changing anything on bad input."""
        changed = apply_faults(self.faults, spec)
        if "sim_busy" in changed:
            self._boot_at = time.monotonic()  # the busy window starts now, as after a reboot
        if "pin" in changed:
            self.pin_unlocked, self.pin_attempts = False, 3  # as if the SIM was just inserted
        for state in self.sims:
            state.storage.set_full(self.faults.full_storage)
        self._pulse_faults_changed()
        self.network_changed()
        return changed

    def clear_faults(self) -> None:
        self.faults = Faults()
        self.pin_attempts = 3
        for state in self.sims:
            state.storage.set_full(False)
        self._pulse_faults_changed()
        self.network_changed()

    def _pulse_faults_changed(self) -> None:
        self.faults_changed.set()  # the waiting tickers are woken; later waits block again
        self.faults_changed.clear()

    def network_changed(self) -> None:
        """Faults or SIM data changed: tell registered clients, let the SMSC retry."""
        for session in self.sessions:
            self._creg_urc(session)
        self.network.kick()

    # ---- delivery from the network ------------------------------------------------------------

    def deliver_sms(self, slot: int, sms: IncomingSms) -> bool:
        """False while the SIM cannot take it (unreachable or storage full): the SMSC retries."""
        session = self.session_for(slot)
        if session is None or not self.registered(slot) or not self.sim_ready(slot):
            return False
        settings = session.settings
        mt = settings.cnmi[1]
        text_mode = settings.cmgf == 1
        if mt == 2:
            if self._awaiting_ack(session):
                return False
            if text_mode:
                name = self.urc_name("+CMT", slot)
                head = f'{name}: "{sms.sender}",,"{_scts(sms.sc_timestamp)}"'
                session.urc(f"{head}\r\n{sms.text}")
            else:
                session.urc(
                    f"{self.urc_name('+CMT', slot)}: ,{sms.tpdu_length}\r\n{sms.pdu.hex().upper()}"
                )
            self._expect_ack(session, slot, "sms", sms)
            return True
        mem_name = settings.cpms[2] if settings.cpms[2] != "SR" else "SM"
        memory = self.sims[slot].storage[mem_name]
        stored = StoredMessage(
            index=0,
            stat=REC_UNREAD,
            pdu=sms.pdu,
            kind="deliver",
            address=sms.sender,
            text=sms.text,
            timestamp=sms.sc_timestamp,
            tpdu_length=sms.tpdu_length,
        )
        try:
            index = memory.store(stored)
        except MemoryFull:
            log.info("%s slot %d: %s full, SMS held by the network", self.id, slot, mem_name)
            if self.profile.memory_full_urc and not memory.full_reported:
                memory.full_reported = True  # once per episode, as the firmware does
                session.urc(self.profile.memory_full_urc.format(mem=mem_name))
            return False
        if mt in (1, 3):
            session.urc(f'{self.urc_name("+CMTI", slot)}: "{mem_name}",{index}')
        return True

    @staticmethod
    def _awaiting_ack(session: Session) -> bool:
        """27.005 +CNMA: no further direct +CMT/+CDS before the last one is acknowledged (or
        its time ran out); meanwhile the network holds it. AT+CNMA thus always acknowledges
        the one the TE saw, never one printed to a port nobody read."""
        return session.settings.csms == 1 and bool(session.pending_acks)

    def _expect_ack(
        self, session: Session, slot: int, kind: str, item: IncomingSms | IncomingReport
    ) -> None:
        """With +CSMS service 1 a direct +CMT/+CDS needs AT+CNMA in time, else the network
        delivers it again: the duplicates real deployments see from late acknowledgements."""
        if session.settings.csms != 1:
            return
        number = self.sims[slot].sim.number

        def expired() -> None:
            if handle in session.pending_acks:
                session.pending_acks.remove(handle)
                log.info("%s slot %d: no +CNMA in time, %s delivered again", self.id, slot, kind)
                self.network.redeliver(number, kind, item)

        handle = asyncio.get_running_loop().call_later(self.network.ack_timeout, expired)
        session.pending_acks.append(handle)

    def deliver_report(self, slot: int, report: IncomingReport) -> bool:
        session = self.session_for(slot)
        if session is None or not self.registered(slot):
            return False
        settings = session.settings
        ds = settings.cnmi[3]
        if ds == 0:
            return True  # the modem was told not to route reports: it is dropped, as on a real one
        if ds == 1:
            if self._awaiting_ack(session):
                return False
            if settings.cmgf == 1:
                session.urc(
                    f'{self.urc_name("+CDS", slot)}: 6,{report.reference},"{report.recipient}",'
                    f"{145 if report.recipient.startswith('+') else 129},"
                    f'"{_scts(report.sc_timestamp)}","{_scts(report.discharge_time)}",{report.status}'
                )
            else:
                name = self.urc_name("+CDS", slot)
                session.urc(f"{name}: {report.tpdu_length}\r\n{report.pdu.hex().upper()}")
            self._expect_ack(session, slot, "report", report)
            return True
        memory = self.sims[slot].storage["SR"]
        stored = StoredMessage(
            index=0,
            stat=REC_UNREAD,
            pdu=report.pdu,
            kind="report",
            address=report.recipient,
            text="",
            timestamp=report.discharge_time,
            tpdu_length=report.tpdu_length,
            reference=report.reference,
            status=report.status,
        )
        try:
            index = memory.store(stored)
        except MemoryFull:
            log.info("%s slot %d: SR memory full, report dropped", self.id, slot)
            return True
        session.urc(f'{self.urc_name("+CDSI", slot)}: "SR",{index}')
        return True

    # ---- description --------------------------------------------------------------------------

    def describe(self) -> dict[str, object]:
        return {
            "id": self.id,
            "profile": self.profile.name,
            "dual_sim": self.dual_sim,
            "imei": self.imei,
            "active_slot": self.active_slot,
            "plugged": self.plugged,
            "cfun": self.cfun,
            "faults": self.faults.describe(),
            "sims": [
                {
                    **s.sim.describe(),
                    "active": self.serving(s.sim.slot),
                    "registration": self.registration(s.sim.slot),
                }
                for s in self.sims
            ],
        }

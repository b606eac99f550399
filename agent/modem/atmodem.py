"""The AT backend of agent/modem/base.py's Modem: one port, one or two SIM slots.

Wiring (for the agent runtime):

    from simhive.agent.modem.atmodem import open_at_modem
    modem = open_at_modem("/dev/gsm/ec25-at", profile="quectel-ec25", dual_sim="none",
                          pin=None, own_numbers={0: "+4915112345678"})
    await modem.start(on_event)          # never raises for a missing device: see below
    result = await modem.send("+491601112233", "hello", slot=0)
    await modem.stop()

    # two ports that are two SIM slots of one device:
    modem = open_at_modem(["/dev/ttyUSB2", "/dev/ttyUSB6"], dual_sim="ports")

`start()` opens, initialises, sweeps stored messages and starts supervision. If the port is
missing or the modem does not answer, `start()` still returns: the state is DISCONNECTED with a
reason (a StateChange event is emitted) and the supervisor keeps trying to reopen it, because a
USB modem that re-enumerates must come back without an agent restart.

Incoming SMS are handed to the event handler and deleted from the modem only after the handler
returned without raising; a handler that raises leaves them stored for the next sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from datetime import UTC, datetime

from . import pdu as pdulib
from .at import Urc
from .atchannel import AtChannel, AtCommandError, AtTimeout, ChannelClosed
from .atinfo import NetworkState, parse_creg, read_iccid, read_identity, read_network
from .atinit import (
    Capabilities,
    InitError,
    SimNotReady,
    initialise,
    set_message_settings,
)
from .base import (
    UNKNOWN_REFERENCE,
    EventHandler,
    ModemIdentity,
    ModemState,
    SendError,
    SendOutcome,
    SendResult,
    SimInfo,
)
from .digits import parse_uint
from .dualport import DualPortModem
from .dualsim import SwitchError, query_active_slot, switch_slot
from .events import EventSource
from .inbox import Inbox
from .profiles import DUAL_SIM_STYLES, Profile, detect, get_profile
from .sendmap import send_error_from_at
from .supervisor import Supervisor
from .transport import SerialTransport, Transport
from .ussd import UssdError, UssdReply, cusd_request, parse_cusd

log = logging.getLogger(__name__)

__all__ = ["AtModem", "open_at_modem"]


class AtModem(EventSource):
    """A Modem (agent/modem/base.py) driving one serial port with AT commands."""

    def __init__(
        self,
        transport: Transport,
        *,
        profile: str | None = None,
        dual_sim: str = "none",
        pin: str | None = None,
        own_numbers: dict[int, str] | None = None,
        health_interval: float = 30.0,
        sweep_interval: float = 300.0,
        send_timeout: float = 60.0,
        prompt_timeout: float = 5.0,
        ready_wait: float = 20.0,
        time_scale: float = 1.0,
    ) -> None:
        if dual_sim not in ("none", *DUAL_SIM_STYLES):
            raise ValueError(f"dual_sim must be none, cdsds or qdsim, not {dual_sim!r}")
        self.transport = transport
        self.identity = ModemIdentity()
        self._profile_name = profile
        self.profile: Profile = get_profile(profile)
        self._dual = DUAL_SIM_STYLES.get(dual_sim)
        self._pin = pin
        self._own_numbers = dict(own_numbers or {})
        self._send_timeout = send_timeout
        self._prompt_timeout = prompt_timeout
        self._ready_wait = ready_wait
        self.capabilities = Capabilities()
        self._state = ModemState.DISCONNECTED
        self._state_reason = "not started"
        self._handler: EventHandler | None = None
        self._ch = AtChannel(transport, on_urc=self._on_urc, on_closed=self._on_closed)
        self._ch.time_scale = time_scale
        # Multi-command operations (all parts of a send, a SIM switch, read-then-delete) must
        # not interleave with each other; the channel lock only covers single commands.
        self.op_lock = asyncio.Lock()
        # Each URC with the SIM it belongs to, decided as it arrived (see _on_urc).
        self._urcs: asyncio.Queue[tuple[Urc, int]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._active = 0
        self._iccid_cmd: str | None = None
        self._sims: dict[int, SimInfo] = {}
        # Concatenation references start anywhere: after a restart, reusing 1, 2, 3... could
        # let a recipient's phone join parts of a new message to an old one with the same ref.
        self._concat_ref = random.randrange(256)
        self.last_signal_dbm: int | None = None
        self.unknown_lines = 0  # lines that were neither replies nor known URCs (logged, skipped)
        self.sim_problem: str | None = None  # set while the SIM is missing, locked or busy
        self._ussd_waiter: asyncio.Future[UssdReply] | None = None
        self.inbox = Inbox(self)
        self.supervisor = Supervisor(
            self, health_interval=health_interval, sweep_interval=sweep_interval
        )

    # -- Modem protocol ------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.transport.name

    @property
    def slots(self) -> list[int]:
        return [0, 1] if self._dual is not None else [0]

    @property
    def channel(self) -> AtChannel:
        return self._ch

    @property
    def active_slot(self) -> int:
        return self._active

    async def start(self, on_event: EventHandler) -> None:
        self._handler = on_event
        await self.set_state(ModemState.CONNECTING, "starting")
        await self.connect()
        self._tasks.append(asyncio.create_task(self._urc_worker(), name=f"urc {self.name}"))
        self._tasks.append(asyncio.create_task(self.supervisor.run(), name=f"sup {self.name}"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            # Python 3.11's wait_for can swallow a cancel that races a completing future
            # (gh-86296); cancel again until the task has really ended.
            while not t.done():
                t.cancel()
                await asyncio.wait({t}, timeout=1.0)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                t.result()
        # Finish the operation in flight (a part being submitted) before closing the port.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._send_timeout + 5):
                await self.op_lock.acquire()
                self.op_lock.release()
        await self._ch.close()
        self._mark_stopped()

    async def sim_info(self) -> list[SimInfo]:
        if self._state is ModemState.DISCONNECTED or self.sim_problem is not None:
            return [
                self._sims.get(s, SimInfo(slot=s, present=False, active=False)) for s in self.slots
            ]
        try:
            async with self.op_lock:
                await self.refresh_active_sim()
        except (AtTimeout, ChannelClosed) as exc:
            # The last known values are still the best answer; the supervisor deals with it.
            log.warning("%s: reading SIM info failed: %s", self.name, exc)
            self.supervisor.unresponsive(str(exc))
        return [self._sims.get(s, SimInfo(slot=s, active=False)) for s in self.slots]

    async def send(
        self, number: str, text: str, *, slot: int = 0, status_report: bool = True
    ) -> SendResult:
        self._require_slot(slot)
        self._concat_ref = (self._concat_ref + 1) % 256
        try:
            parts = pdulib.encode_submit(
                number, text, status_report=status_report, concat_reference=self._concat_ref
            )
        except pdulib.PduError as exc:
            raise SendError(f"cannot encode: {exc}", outcome=SendOutcome.PERMANENT) from exc
        self._require_connected()
        refs: list[int] = []
        async with self.op_lock:
            await self._make_active(slot)
            for part in parts:
                try:
                    resp = await self._ch.submit_pdu(
                        part.tpdu_length,
                        part.hex,
                        prompt_wait=self._prompt_timeout,
                        wait=self._send_timeout,
                    )
                except (AtCommandError, AtTimeout, ChannelClosed) as exc:
                    raise send_error_from_at(exc, parts_sent=len(refs), channel=self._ch) from exc
                ref = _parse_mr(resp.first("+CMGS"))
                if ref is None:
                    # OK with no readable +CMGS: it went out, but no report can match it.
                    log.warning("%s: +CMGS answer without a reference: %r", self.name, resp.text)
                    ref = UNKNOWN_REFERENCE
                refs.append(ref)
        return SendResult(references=refs, encoding=parts[0].coding.value, sent_at=_now())

    async def ussd(self, code: str, *, slot: int = 0, wait: float = 30.0) -> UssdReply:
        """Send a USSD code (e.g. *100#) on `slot` and return the network's answer.

        Runs under the operation lock, so it never interleaves with a submit; on a
        single-standby modem it switches to `slot` first. Raises UssdError (no answer, refused)
        or SendError (disconnected, the switch failed)."""
        self._require_slot(slot)
        command = cusd_request(code)
        self._require_connected()
        async with self.op_lock:
            await self._make_active(slot)
            waiter: asyncio.Future[UssdReply] = asyncio.get_running_loop().create_future()
            self._ussd_waiter = waiter
            try:
                try:
                    resp = await self._ch.command(command, wait=15.0)
                except AtCommandError as exc:
                    raise UssdError(f"the modem refused {code}: {exc.final.text}") from None
                except (AtTimeout, ChannelClosed) as exc:
                    raise UssdError(f"{code}: {exc}") from None
                early = resp.first("+CUSD")  # some modems answer before their OK
                if early is not None:
                    reply = parse_cusd(early)
                else:
                    try:
                        reply = await asyncio.wait_for(waiter, wait * self._ch.time_scale)
                    except TimeoutError:
                        raise UssdError(f"no answer to {code} within {wait:.0f} s") from None
            finally:
                self._ussd_waiter = None
            if reply.status == 1:
                # The network waits for a menu choice: close the session, or the next request
                # is taken as that choice.
                with contextlib.suppress(AtCommandError, AtTimeout, ChannelClosed):
                    await self._ch.command("AT+CUSD=2")
        return reply

    # -- connection lifecycle (used by start and by the supervisor) ----------------------

    async def connect(self, *, sweep: bool = True) -> bool:
        """Open (if needed), initialise, read identity and SIM, sweep. False if it failed.

        A one-off tool (`simhive-agent ussd`) passes sweep=False: sweeping hands stored SMS to
        the event handler and deletes them, which only the running agent may do."""
        try:
            await self._ch.open()
        except OSError as exc:
            await self.set_state(ModemState.DISCONNECTED, str(exc))
            return False
        try:
            async with self.op_lock:
                ready = await self._initialise()
        except (InitError, AtTimeout, ChannelClosed, AtCommandError) as exc:
            await self.set_state(ModemState.DISCONNECTED, f"init failed: {exc}")
            return False
        if ready and sweep:
            await self.inbox.sweep_all()
        return True

    async def _initialise(self) -> bool:
        """Run the init sequence; returns True when the SIM is usable. Lock held."""
        ch = self._ch
        try:
            caps = await initialise(ch, self.profile, pin=self._pin, ready_wait=self._ready_wait)
        except SimNotReady as exc:
            self.sim_problem = f"SIM {exc.state}: {exc}"
            self.identity = await read_identity(ch)
            await self.set_state(ModemState.DEGRADED, f"SIM {exc.state}: {exc}")
            self._sims[self._active] = SimInfo(slot=self._active, present=exc.state != "missing")
            return False
        self.capabilities = caps
        self.sim_problem = None
        self.identity = await read_identity(ch)
        if self._profile_name is None:
            detected = detect(self.identity.manufacturer, self.identity.model)
            if detected.name != self.profile.name:
                self.profile = detected
                for extra in detected.init_extra:
                    with contextlib.suppress(AtCommandError, AtTimeout):
                        await ch.command(extra)
        if self._dual is not None:
            active = await query_active_slot(ch, self._dual)
            self._active = active if active is not None else 0
        await self.refresh_active_sim()
        return True

    async def refresh_active_sim(self) -> SimInfo:
        """Re-read the active SIM and update the state (READY / DEGRADED). Lock held."""
        slot = self._active
        net = await read_network(self._ch)
        iccid, cmd = await read_iccid(self._ch, self.profile, self._iccid_cmd)
        self._iccid_cmd = cmd or self._iccid_cmd
        info = _sim_info(slot, net, iccid, self._own_numbers.get(slot))
        self._sims[slot] = info
        for other, old in list(self._sims.items()):
            if other != slot and old.active:
                self._sims[other] = _replace_active(old, False)
        if info.registered:
            await self.set_state(
                ModemState.READY, "registered" + (" (roaming)" if info.roaming else "")
            )
        else:
            await self.set_state(ModemState.DEGRADED, "not registered to a network")
        return info

    async def _make_active(self, slot: int) -> None:
        """Switch to `slot` unless it is active (send and activate_slot). Lock held.

        Nothing has been submitted yet, so a timeout or a closed port is safe to retry later:
        both become SendError RETRY, as a failed switch does in select_slot."""
        if self._dual is None or slot == self._active:
            return
        try:
            await self.select_slot(slot)
        except (AtTimeout, ChannelClosed) as exc:
            raise SendError(f"selecting SIM {slot + 1}: {exc}", outcome=SendOutcome.RETRY) from exc

    async def select_slot(self, slot: int) -> None:
        """Make `slot` the active SIM of a single-standby modem. Lock held."""
        assert self._dual is not None
        if self._dual.after_select:
            self.supervisor.expect_boot_urcs()
        try:
            registered = await switch_slot(self._ch, self._dual, slot)
        except SwitchError as exc:
            raise SendError(str(exc), outcome=SendOutcome.RETRY) from exc
        self._active = slot
        # CMGF, CPMS and CNMI are per SIM on SIM800C-DS; the new SIM also has new info.
        with contextlib.suppress(AtCommandError, AtTimeout):
            await set_message_settings(self._ch, self.profile, self.capabilities)
        await self.refresh_active_sim()
        if not registered:
            raise SendError(
                f"SIM {slot + 1} did not register after the switch", outcome=SendOutcome.RETRY
            )
        await self.inbox.after_switch(slot)
        self.supervisor.request_sweep()  # messages that arrived while this SIM was inactive

    async def activate_slot(self, slot: int) -> None:
        """Make `slot` the active SIM of a single-standby modem now (the dispatcher batches per
        SIM and may visit an idle SIM so that SMS held by the network come in). No-op when it
        is active already, on single-SIM modems, or while disconnected. Raises SendError."""
        if self._dual is None or self._state is ModemState.DISCONNECTED:
            return
        self._require_slot(slot)
        async with self.op_lock:
            await self._make_active(slot)

    def _on_closed(self, reason: str) -> None:
        self.supervisor.link_lost(reason)

    # -- URCs ------------------------------------------------------------------------------

    def _on_urc(self, urc: Urc) -> None:
        waiter = self._ussd_waiter
        if urc.name == "+CUSD" and waiter is not None and not waiter.done():
            # Resolved here, not in the URC worker: that worker may be waiting for the lock
            # the USSD request holds.
            try:
                waiter.set_result(parse_cusd(urc.args))
            except UssdError as exc:
                waiter.set_exception(exc)
            return
        # The SIM is the one active now, not when the worker gets to it: the worker may still
        # be matching an earlier report while the dispatcher switches SIMs, and a report then
        # taken for the other SIM's was matched to its part with the same MR (chaos runs: a
        # message reported delivered by another's report, and its own ending outcome-unknown).
        self._urcs.put_nowait((urc, self.event_slot(urc)))

    async def _urc_worker(self) -> None:
        me = asyncio.current_task()
        while True:
            if me is not None and me.cancelling():
                raise asyncio.CancelledError  # see stop(): a swallowed cancel must still end us
            urc, slot = await self._urcs.get()
            try:
                await self._handle_urc(urc, slot)
            except asyncio.CancelledError:
                raise
            except (AtCommandError, AtTimeout, ChannelClosed) as exc:
                log.warning("%s: handling %r failed: %s", self.name, urc.line, exc)
            except Exception:
                log.exception("%s: handling %r failed", self.name, urc.line)

    def event_slot(self, urc: Urc) -> int:
        # A DS suffix names SIM 2 explicitly; otherwise the URC belongs to the active SIM.
        return 1 if urc.slot == 1 and self._dual is not None else self._active

    async def _handle_urc(self, urc: Urc, slot: int) -> None:
        """`slot`: the SIM the URC belongs to, as event_slot() said when it arrived."""
        name = urc.name
        if name in ("+CMTI", "+CDSI"):
            mem, _, idx = urc.args.partition(",")
            mem = mem.strip().strip('"') or self.capabilities.storage[2]
            index = parse_uint(idx)
            if index is not None:
                explicit = 1 if urc.slot == 1 and self._dual is not None else None
                await self.inbox.on_stored(explicit, mem, index)
        elif name == "+CMT":
            await self.inbox.on_direct(slot, urc.data)
        elif name == "+CDS":
            await self.inbox.on_direct_report(slot, urc.data)
        elif _matches(urc.line, self.profile.boot_urcs):
            # A boot URC outside init means the modem restarted and forgot our settings.
            self.supervisor.modem_restarted(urc.line)
        elif _matches(urc.line, self.profile.ready_urcs):
            # The SMS stack finished starting: stored messages can be listed now.
            self.supervisor.request_sweep()
        elif name in ("+CREG", "+CGREG", "+CEREG"):
            # With CREG=2 every cell change is reported; re-read the SIM only when the
            # registration state itself changed.
            reg = parse_creg(urc.args, solicited=False)
            known = self._sims.get(slot)
            if known is None or (reg.registered, reg.roaming) != (known.registered, known.roaming):
                self.supervisor.registration_changed(urc.args)
        elif name:
            log.debug("%s: URC %s", self.name, urc.line)
        else:
            self.unknown_lines += 1
            log.info("%s: unexpected line %r", self.name, urc.line)

    # -- helpers for probe ------------------------------------------------------------------

    def describe(self) -> dict[str, object]:
        return {
            "port": self.name,
            "profile": self.profile.name,
            **self._describe_state(),
            "active_slot": self._active,
            "capabilities": self.capabilities.as_dict(),
        }


def _matches(line: str, patterns: tuple[str, ...]) -> bool:
    upper = line.strip().upper()
    return any(upper.startswith(p) for p in patterns)


def _parse_mr(args: str | None) -> int | None:
    """The TP-MR of a `+CMGS: <mr>[,<scts>]` reply: 0-255, or None when the field is not that
    (missing, or noise such as `²`): the part was sent, but no status report can be matched."""
    if not args:
        return None
    return parse_uint(args.split(",")[0], maximum=255)


def _now() -> datetime:
    return datetime.now(UTC)


def _replace_active(info: SimInfo, active: bool) -> SimInfo:
    from dataclasses import replace

    return replace(info, active=active)


def _country(operator_code: str | None) -> str | None:
    from .countries import country_for_operator

    return country_for_operator(operator_code) if operator_code else None


def _sim_info(slot: int, net: NetworkState, iccid: str | None, configured: str | None) -> SimInfo:
    return SimInfo(
        slot=slot,
        present=True,
        active=True,
        iccid=iccid,
        imsi=net.imsi,
        number=net.number or configured,
        operator=net.operator,
        operator_code=net.operator_code,
        carrier=net.spn or net.operator,
        country_iso=_country(net.operator_code),
        registered=net.registered,
        roaming=net.roaming,
        signal_dbm=net.signal_dbm,
    )


def open_at_modem(
    port: str | Transport | Sequence[str],
    *,
    profile: str | None = None,
    dual_sim: str = "none",
    baudrate: int = 115200,
    pin: str | None = None,
    own_numbers: dict[int, str] | None = None,
    health_interval: float = 30.0,
    sweep_interval: float = 300.0,
    send_timeout: float = 60.0,
    prompt_timeout: float = 5.0,
    time_scale: float = 1.0,
) -> AtModem | DualPortModem:
    """Build (not start) the AT Modem for a port, or for two ports with dual_sim="ports"."""
    if dual_sim == "ports" or (not isinstance(port, str) and isinstance(port, Sequence)):
        if isinstance(port, str) or not isinstance(port, Sequence) or len(port) != 2:
            raise ValueError('dual_sim="ports" needs exactly two ports, one per SIM slot')
        numbers = own_numbers or {}
        halves = [
            open_at_modem(
                p,
                profile=profile,
                baudrate=baudrate,
                pin=pin,
                own_numbers={0: numbers[i]} if i in numbers else None,
                health_interval=health_interval,
                sweep_interval=sweep_interval,
                send_timeout=send_timeout,
                prompt_timeout=prompt_timeout,
                time_scale=time_scale,
            )
            for i, p in enumerate(port)
        ]
        assert all(isinstance(h, AtModem) for h in halves)
        return DualPortModem([h for h in halves if isinstance(h, AtModem)])
    transport = SerialTransport(port, baudrate=baudrate) if isinstance(port, str) else port
    return AtModem(
        transport,
        profile=profile,
        dual_sim=dual_sim,
        pin=pin,
        own_numbers=own_numbers,
        health_interval=health_interval,
        sweep_interval=sweep_interval,
        send_timeout=send_timeout,
        prompt_timeout=prompt_timeout,
        time_scale=time_scale,
    )

"""One AT session: the byte stream of one port, framed into commands and answered from a table.

The session edits what it reads as a modem does (framing.py): echo (ATE), backspace, ESC
cancelling a line (Gammu opens with ESC CR to leave a stale `> ` prompt), the `> ` prompt of
AT+CMGS that collects a PDU or text until Ctrl-Z (send) or ESC (abort). One command runs at a
time; URCs that arrive meanwhile are held and written after the final result, as CNMI modes 0-2
buffer them, so a client never sees one inside a prompt (unless CNMI mode 3 or a fault asks for
exactly that).
Handlers live in commands_*.py and are looked up in COMMANDS by name; this module knows nothing
about SMS.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .atsyntax import (
    AtError,
    Call,
    CmeError,
    CmsError,
    Kind,
    NoFinal,
    PlainError,
    parse_call,
    split_args,
    split_commands,
)
from .framing import take_body, take_line

if TYPE_CHECKING:
    from .modem import SimState, VirtualModem

__all__ = [
    "COMMANDS",
    "AtError",
    "Call",
    "CmeError",
    "CmsError",
    "Kind",
    "NoFinal",
    "PlainError",
    "Session",
    "Settings",
    "command",
    "parse_call",
    "split_args",
    "split_commands",
]

log = logging.getLogger(__name__)

Handler = Callable[["Session", Call], Awaitable[list[str] | None]]
COMMANDS: dict[str, Handler] = {}


def command(*names: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for name in names:
            COMMANDS[name] = fn
        return fn

    return register


@dataclass
class Settings:
    """What AT commands change on a port; reset by ATZ, a reboot and (per SIM) a SIM switch."""

    echo: bool = True
    cmee: int = 0
    cmgf: int = 0
    cscs: str = "IRA"
    cnmi: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    cpms: tuple[str, str, str] = ("SM", "SM", "SM")
    csmp: tuple[int, int, int, int] = (17, 167, 0, 0)
    csca: str | None = None
    csms: int = 0
    creg: int = 0
    cgreg: int = 0
    cereg: int = 0
    cops_format: int = 0
    cmms: int = 0
    curc: bool = True  # Huawei ^RSSI/^MODE noise until AT^CURC=0
    extra: dict[str, str] = field(default_factory=dict)

    def reset_sim_settings(self) -> None:
        """SIM800C-DS and QDSIM boards keep these per SIM: a switch brings back the defaults."""
        self.cmgf = 0
        self.cpms = ("SM", "SM", "SM")
        self.csmp = (17, 167, 0, 0)
        self.csca = None


@functools.cache
def _upper_set(commands: tuple[str, ...]) -> frozenset[str]:
    """A profile's command list as the upper-case set each command line is looked up in."""
    return frozenset(c.upper() for c in commands)


class Session:
    """The AT engine of one port. `write` sends bytes to the client; `feed` gives bytes from it."""

    def __init__(
        self,
        modem: VirtualModem,
        write: Callable[[bytes], None],
        *,
        fixed_slot: int | None = None,
        name: str = "",
    ) -> None:
        self.modem = modem
        self.fixed_slot = fixed_slot
        self.name = name or modem.id
        self.settings = Settings()
        self._write = write
        self._buf = bytearray()
        # the reader task, parked in _take until feed() brings bytes (one waiter, never more)
        self._waiter: asyncio.Future[None] | None = None
        self._busy = False
        self._held_urcs: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._rng = random.Random(hash(self.name) & 0xFFFF)
        self.closed = False
        # direct deliveries waiting for AT+CNMA (+CSMS service 1), oldest first
        self.pending_acks: list[asyncio.TimerHandle] = []

    # ---- wiring -------------------------------------------------------------------------------

    @property
    def slot(self) -> int:
        return self.fixed_slot if self.fixed_slot is not None else self.modem.active_slot

    @property
    def sim(self) -> SimState:
        return self.modem.sims[self.slot]

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._reader(), name=f"at-{self.name}"),
            asyncio.create_task(self._ticker(), name=f"tick-{self.name}"),
        ]

    async def close(self) -> None:
        self.closed = True
        for handle in self.pending_acks:
            handle.cancel()
        self.pending_acks = []
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # a handler bug must not prevent shutdown
                log.exception("session %s ended with an error", self.name)
        self._tasks = []

    def feed(self, data: bytes) -> None:
        self._buf += data
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def send_raw(self, data: bytes) -> None:
        if not self.closed:
            self._write(data)

    def urc(self, text: str) -> None:
        """An unsolicited result; held while a command or prompt is in progress (CNMI mode
        0-2), unless CNMI mode 3 or the urc_in_reply fault forwards it at once, inside a reply
        or between the `> ` prompt and the +CMGS answer, as Kannel users saw on real modems."""
        inband = self.settings.cnmi[0] == 3 or self.modem.faults.urc_in_reply
        if self._busy and not inband:
            self._held_urcs.append(text)
        else:
            self.send_raw(f"\r\n{text}\r\n".encode("latin-1", "replace"))

    def boot(self, sim_delay: float = 0.0) -> None:
        """Power-up: fresh settings and the family's boot URCs (RDY, SMS Ready, +QIND...).

        The SIM-ready lines come only when the SIM is usable (after `sim_delay`): clients wait
        for them before SMS commands, which fail with +CMS ERROR: 314 until then.
        """
        self.settings = Settings()
        profile = self.modem.profile
        later: list[str] = []
        for line in profile.boot_urcs:
            if any(marker in line for marker in profile.sim_ready_markers):
                later.append(line)
            else:
                self.urc(line)
        if not later:
            return
        if self.modem.faults.sim_missing or not self.sim.sim.present:
            self.urc("+CPIN: NOT INSERTED")
            return
        if self.modem.pin_state() != "READY":
            self.urc(f"+CPIN: {self.modem.pin_state()}")  # the rest follows AT+CPIN=<pin>
            return
        if sim_delay <= 0:
            self.sim_ready_urcs()
        else:
            asyncio.get_running_loop().call_later(sim_delay, self.sim_ready_urcs)

    def sim_ready_urcs(self) -> None:
        """The boot lines that announce the SIM ready (+CPIN: READY, SMS Ready, +QIND...)."""
        if self.closed:
            return
        profile = self.modem.profile
        for line in profile.boot_urcs:
            if any(marker in line for marker in profile.sim_ready_markers):
                self.urc(line)

    # ---- input --------------------------------------------------------------------------------

    async def _take(self) -> bytes:
        while not self._buf:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def _unread(self, data: bytes) -> None:
        if data:
            self._buf[:0] = data
            self._wake()

    async def _read_line(self) -> str:
        line = bytearray()
        while True:
            chunk = await self._take()
            end, echo = take_line(chunk, line)
            if end >= 0:
                self._unread(chunk[end:])
            if self.settings.echo and echo:
                self.send_raw(bytes(echo))
            if end >= 0:
                return line.decode("latin-1")

    async def read_body(self, *, text_mode: bool) -> bytes | None:
        """After `> `: the bytes up to Ctrl-Z, or None when ESC aborts. Caller sent the prompt."""
        body = bytearray()
        while True:
            chunk = await self._take()
            end, echo, aborted = take_body(chunk, body, text_mode=text_mode)
            if end >= 0:
                self._unread(chunk[end:])
            if self.settings.echo and echo:
                self.send_raw(bytes(echo))
            if end >= 0:
                return None if aborted else bytes(body)

    # ---- execution ----------------------------------------------------------------------------

    async def _reader(self) -> None:
        while True:
            line = await self._read_line()
            stripped = line.strip()
            if len(stripped) < 2 or stripped[:2].upper() != "AT":
                continue  # modems ignore lines that are not commands (noise, stray echo)
            self._busy = True
            try:
                await self._execute(stripped)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: handler failed on %r", self.name, stripped)
                self.send_raw(b"\r\nERROR\r\n")
            finally:
                self._busy = False
                held, self._held_urcs = self._held_urcs, []
                for text in held:
                    self.urc(text)

    async def _execute(self, line: str) -> None:
        modem = self.modem
        if modem.faults.take_hang(line):
            log.info("%s: hanging on %r (fault)", self.name, line)
            return
        lines: list[str] = []
        try:
            for sub in split_commands(line[2:]):
                lines += await self._run_one(sub)
        except NoFinal as nf:
            self._respond(lines + nf.lines, None)
            return
        except AtError as err:
            self._respond(lines, err.render(self.settings.cmee))
            return
        self._respond(lines, "OK")

    async def _run_one(self, text: str) -> list[str]:
        profile = self.modem.profile
        full = "AT" + text.upper()
        if full in _upper_set(profile.rejected_commands):
            raise PlainError()
        if full in _upper_set(profile.accepted_commands):
            return []
        call = parse_call(text)
        handler = COMMANDS.get(call.name)
        if handler is None:
            raise PlainError()
        out = await handler(self, call) or []
        if profile.interleaved_urcs and call.name == "+CMGS":
            # ZTE firmware prints network status inside these replies (python-gsmmodem fixture)
            out = [
                self.modem.format_profile_line(u, self.slot) for u in profile.interleaved_urcs
            ] + out
        return out

    def _respond(self, lines: list[str], final: str | None) -> None:
        out = "".join(f"\r\n{line}\r\n" for line in lines)
        if final is not None:
            out += f"\r\n{final}\r\n"
        if out:
            self.send_raw(out.encode("latin-1", "replace"))

    def prompt(self) -> None:
        self.send_raw(b"\r\n> ")

    # ---- periodic noise -----------------------------------------------------------------------

    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        next_noise = loop.time() + 1.0
        next_garbage = 0.0
        while True:
            modem = self.modem
            if not modem.profile.noise_urcs and modem.faults.garbage <= 0:
                # Nothing to print until a garbage fault is set: park rather than wake five
                # times a second per port (64 idle ports cost 320 wake-ups a second).
                await modem.faults_changed.wait()
                continue
            await asyncio.sleep(0.2)
            now = loop.time()
            profile, faults = modem.profile, modem.faults
            if profile.noise_urcs and self.settings.curc and now >= next_noise:
                next_noise = now + profile.noise_interval
                text = self._rng.choice(profile.noise_urcs)
                self.urc(self.modem.format_profile_line(text, self.slot))
            if faults.garbage > 0 and now >= next_garbage:
                next_garbage = now + faults.garbage
                junk = bytes(self._rng.choice(b"\x00\xff\xfe#~}\x80abc19") for _ in range(12))
                self.send_raw(b"\r\n" + junk + b"\r\n")

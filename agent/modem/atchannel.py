"""One AT command in flight over a transport: the async half of the AT layer.

Rules of the AT command channel that this module enforces:
- one command at a time behind a lock, never pipelined (least of all during AT+CMGS);
- the waiter is registered before the command is written, so a fast reply cannot be lost;
- a timeout on every command; after one, a drain barrier (a probe command until its own
  answer comes back) so that the late answer of the timed-out command is not read as the
  answer of the next one;
- a stuck `> ` prompt is cancelled with ESC, which makes the modem drop the PDU;
- nothing that could end or escape a command (`"`, CR, LF, Ctrl-Z, ESC) is ever interpolated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simhive.agent.eventwait import Flag

from .at import AtDecoder, Echo, Final, FinalKind, Info, Junk, Prompt, Urc
from .transport import Transport, TransportClosed

log = logging.getLogger(__name__)
# A PDU's text: one regex match instead of a Python step per character (3.5 -> 0.35 us).
_HEX = re.compile(r"[0-9A-Fa-f]+")

__all__ = [
    "AtChannel",
    "AtCommandError",
    "AtTimeout",
    "ChannelClosed",
    "Response",
    "quote",
]

CTRL_Z = b"\x1a"
ESC = b"\x1b"
_FORBIDDEN = {'"', "\r", "\n", "\x1a", "\x1b"}


class ChannelClosed(TransportClosed):
    """The link went away while a command was pending (or before it could be written)."""


class AtTimeout(TimeoutError):
    def __init__(self, command: str, stage: str, seconds: float) -> None:
        super().__init__(f"{command!r}: no {stage} within {seconds:g} s")
        self.command = command
        self.stage = stage  # "prompt" (nothing was sent) or "final"


class AtCommandError(Exception):
    """The modem answered ERROR, +CMS ERROR or +CME ERROR (or a vendor error final)."""

    def __init__(self, command: str, final: Final) -> None:
        super().__init__(f"{command!r} -> {final.text}")
        self.command = command
        self.final = final

    @property
    def cms(self) -> int | None:
        return self.final.code if self.final.kind is FinalKind.CMS_ERROR else None

    @property
    def cme(self) -> int | None:
        return self.final.code if self.final.kind is FinalKind.CME_ERROR else None


def quote(value: str) -> str:
    """A string parameter in double quotes; refuses anything that could break out of it."""
    bad = _FORBIDDEN.intersection(value)
    if bad or any(ord(c) < 0x20 for c in value):
        raise ValueError(f"refusing to put {value!r} into an AT command")
    return f'"{value}"'


@dataclass
class Response:
    command: str
    lines: list[Info]
    final: Final

    def info(self, prefix: str) -> list[str]:
        """The arguments of every reply line with this prefix (`+CPMS` -> ['"SM",1,30,...'])."""
        p = prefix.rstrip(":").upper()
        out: list[str] = []
        for i in self.lines:
            head, sep, rest = i.line.partition(":")
            if sep and head.strip().upper() in (p, p + "DS"):
                out.append(rest.strip())
        return out

    def first(self, prefix: str) -> str | None:
        found = self.info(prefix)
        return found[0] if found else None

    @property
    def text(self) -> list[str]:
        return [i.line for i in self.lines]


class _Waiter:
    def __init__(self, command: str) -> None:
        loop = asyncio.get_running_loop()
        self.command = command
        self.lines: list[Info] = []
        self.final: asyncio.Future[Final] = loop.create_future()
        self.prompt: asyncio.Future[None] = loop.create_future()
        # AT+CMGS only: resolved by the prompt or by a final before it, whichever comes first,
        # so submit_pdu waits on one future (no asyncio.wait: its callbacks and waiter per SMS).
        self.prompt_or_final: asyncio.Future[None] | None = None
        self.got_info = asyncio.Event()


class AtChannel:
    """Serialises AT commands on one port; URCs go to `on_urc`, link loss to `on_closed`."""

    def __init__(
        self,
        transport: Transport,
        *,
        on_urc: Callable[[Urc], None] | None = None,
        on_closed: Callable[[str], None] | None = None,
        on_unresponsive: Callable[[str], None] | None = None,
        trace: Callable[[str, str], None] | None = None,
    ) -> None:
        self.transport = transport
        self.on_urc = on_urc
        self.on_closed = on_closed
        self.on_unresponsive = on_unresponsive
        self._trace = trace
        self._decoder = AtDecoder()
        self._lock = asyncio.Lock()
        self._waiter: _Waiter | None = None
        self._closed = Flag()
        self._closed.set()
        self.junk_lines = 0
        self.pdu_written = False  # did the last submit_pdu get as far as writing its PDU?
        # Multiplies every wait of this channel (command, prompt, drain). 1.0 is the spec's
        # budget; a slow link may need more, and tests use less to exercise recovery quickly.
        self.time_scale = 1.0

    @property
    def is_open(self) -> bool:
        return not self._closed.is_set()

    async def open(self) -> None:
        if self.is_open:
            return
        for ev in self._decoder.reset():
            self._handle(ev)
        await self.transport.open(self)
        self._closed.clear()  # before any input: the transport delivers from the next loop turn

    @property
    def name(self) -> str:
        return self.transport.name

    async def close(self) -> None:
        await self.transport.close()
        self._mark_closed("closed")

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # -- reading (the transport's Receiver) ----------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Input as the event loop saw it arrive: decoded and handled at once, in the transport's
        reader callback (no task in between, agent/modem/transport.py)."""
        if self._closed.is_set():
            return
        if self._trace:
            self._trace("rx", data.decode("latin-1"))
        try:
            for ev in self._decoder.feed(data):
                self._handle(ev)
        except Exception as exc:  # a bug here must not leave waiters hanging forever
            log.exception("%s: reader failed", self.name)
            self._mark_closed(f"reader failed: {exc}")

    def link_lost(self, why: str) -> None:
        self._mark_closed(why)

    def _mark_closed(self, reason: str) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        w = self._waiter
        if w is not None:
            for fut in (w.final, w.prompt, w.prompt_or_final):
                if fut is not None and not fut.done():
                    fut.set_exception(ChannelClosed(f"{self.name}: {reason}"))
                    fut.exception()  # mark retrieved: the waiter may already be gone
        if self.on_closed is not None:
            self.on_closed(reason)

    def _handle(self, ev: object) -> None:
        w = self._waiter
        if isinstance(ev, Info):
            if w is not None:
                w.lines.append(ev)
                w.got_info.set()
            else:
                log.debug("%s: stray reply %r", self.name, ev.line)
        elif isinstance(ev, Final):
            if w is not None and not w.final.done():
                w.final.set_result(ev)
                _resolve(w.prompt_or_final)
            else:
                log.debug("%s: stale final %r", self.name, ev.text)
        elif isinstance(ev, Prompt):
            if w is not None and not w.prompt.done():
                w.prompt.set_result(None)
                _resolve(w.prompt_or_final)
        elif isinstance(ev, Urc):
            if self.on_urc is not None:
                try:
                    self.on_urc(ev)
                except Exception:
                    log.exception("%s: URC handler failed on %r", self.name, ev.line)
        elif isinstance(ev, Junk):
            self.junk_lines += 1
            log.warning("%s: skipped junk (%s): %r", self.name, ev.reason, ev.data[:64])
        elif isinstance(ev, Echo):
            pass

    # -- commands ------------------------------------------------------------------------

    async def command(
        self,
        command: str,
        *,
        wait: float = 5.0,
        prefixes: tuple[str, ...] | None = None,
        bare: bool = False,
        check: bool = True,
        implicit_final: bool = False,
        secret: bool = False,
    ) -> Response:
        """Send one command and wait for its final result.

        `secret` (a PIN) keeps the command's arguments out of exceptions, traces and logs.

        `implicit_final` accepts a reply line without a final result after a short grace time
        (Wavecom answers AT+CPIN? with "+CPIN: READY" and no OK); the grace time keeps a late
        OK from being read as the answer of the next command.
        Raises AtCommandError for an error final (unless check=False), AtTimeout, ChannelClosed.
        """
        _validate(command)
        async with self._lock:
            return await self._run(command, wait, prefixes, bare, check, implicit_final, secret)

    async def _run(
        self,
        command: str,
        wait: float,
        prefixes: tuple[str, ...] | None,
        bare: bool,
        check: bool,
        implicit_final: bool = False,
        secret: bool = False,
    ) -> Response:
        shown = command.split("=", 1)[0] + "=<redacted>" if secret else command
        wait *= self.time_scale
        if not self.is_open:
            raise ChannelClosed(f"{self.name} is not open")
        w = _Waiter(command)
        self._waiter = w
        self._decoder.begin(command, prefixes=prefixes, bare=bare)
        try:
            await self._write(command.encode("ascii") + b"\r", shown=shown)
            try:
                if implicit_final:
                    final = await self._final_or_implicit(w, wait)
                else:
                    # Not shielded, as in submit_pdu: after a timeout the waiter is detached and
                    # nothing else reads w.final. wait_for(shield(...)) cost three more
                    # callbacks, a future and a timer per command (an AT+CNMA per SMS).
                    async with asyncio.timeout(wait):
                        final = await w.final
            except TimeoutError:
                if w.final.done() and not w.final.cancelled():
                    final = w.final.result()  # the answer came in the deadline's loop turn
                else:
                    self._detach(w)
                    await self._drain(avoid=command)
                    raise AtTimeout(shown, "final", wait) from None
        finally:
            self._detach(w)
        resp = Response(shown, w.lines, final)
        if check and not final.ok:
            raise AtCommandError(shown, final)
        return resp

    async def _final_or_implicit(self, w: _Waiter, wait: float, grace: float = 0.7) -> Final:
        grace *= self.time_scale
        info_task: asyncio.Future[Any] = asyncio.ensure_future(w.got_info.wait())
        futures: set[asyncio.Future[Any]] = {w.final, info_task}
        try:
            async with asyncio.timeout(wait):
                await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
        finally:
            info_task.cancel()
        if not w.final.done():
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(w.final), grace)
            return Final(FinalKind.OK, text="(no final result; reply accepted)")
        return w.final.result()

    async def submit_pdu(
        self,
        tpdu_length: int,
        pdu_hex: str,
        *,
        prompt_wait: float = 5.0,
        wait: float = 60.0,
    ) -> Response:
        """AT+CMGS=<n>, wait for `> `, write the PDU and Ctrl-Z, wait for +CMGS and OK.

        AtTimeout.stage tells the caller whether anything may have reached the network:
        "prompt" means no (the prompt was cancelled with ESC), "final" means maybe.
        """
        if not (0 < tpdu_length <= 255) or not pdu_hex or not _HEX.fullmatch(pdu_hex):
            raise ValueError("a PDU is 1-255 octets of hex")
        command = f"AT+CMGS={tpdu_length}"
        prompt_wait *= self.time_scale
        wait *= self.time_scale
        async with self._lock:
            if not self.is_open:
                raise ChannelClosed(f"{self.name} is not open")
            w = _Waiter(command)
            step = w.prompt_or_final = asyncio.get_running_loop().create_future()
            self._waiter = w
            self.pdu_written = False
            self._decoder.begin(command, prompt=True)
            try:
                await self._write(command.encode("ascii") + b"\r")
                # The timeout cancels `step` (ours alone); a closed channel sets ChannelClosed
                # on prompt and final as well, raised by the checks below.
                with contextlib.suppress(TimeoutError, ChannelClosed):
                    async with asyncio.timeout(prompt_wait):
                        await step
                if w.final.done():
                    final = w.final.result()  # an error before the prompt (e.g. +CMS 330)
                elif w.prompt.done():
                    w.prompt.result()  # re-raises ChannelClosed
                    self._decoder.expect_echo(pdu_hex)
                    self.pdu_written = True
                    await self._write(pdu_hex.encode("ascii") + CTRL_Z)
                    try:
                        # Not shielded: after a timeout the waiter is detached, so nothing else
                        # reads w.final (one wake-up instead of shield's and wait_for's three).
                        async with asyncio.timeout(wait):
                            final = await w.final
                    except TimeoutError:
                        if w.final.done() and not w.final.cancelled():
                            # The answer came in the same loop turn as the deadline.
                            final = w.final.result()
                        else:
                            self._detach(w)
                            await self._drain()
                            raise AtTimeout(command, "final", wait) from None
                else:
                    self._detach(w)
                    # ESC aborts a pending SMS input; the modem answers OK (or nothing).
                    with contextlib.suppress(TransportClosed):
                        await self._write(ESC)
                    await self._drain()
                    raise AtTimeout(command, "prompt", prompt_wait)
            finally:
                self._detach(w)
            resp = Response(command, w.lines, final)
            if not final.ok:
                raise AtCommandError(command, final)
            return resp

    async def write_raw(self, data: bytes) -> None:
        """Bytes outside any command (the ESC CR that opens the init sequence)."""
        async with self._lock:
            await self._write(data)

    async def drain(self, tries: int = 3, wait: float = 2.0) -> bool:
        """The drain barrier on demand; True when the modem answered `AT` with OK."""
        async with self._lock:
            return await self._drain(tries, wait)

    async def _drain(self, tries: int = 3, wait: float = 2.0, avoid: str = "") -> bool:
        """Resynchronise after a timeout (lock held): True once the modem answers in step.

        A bare `AT` cannot tell its own OK from the late OK of the abandoned command (a slow
        +CMGS answers "+CMGS: 7", "OK" seconds later). So the barrier asks something with a
        recognisable reply line, `AT+CSQ` (or `AT+CMEE?` if CSQ was the abandoned command):
        a final that arrives without that line is the stale one and is skipped."""
        probe = "AT+CMEE?" if avoid.upper().startswith("AT+CSQ") else "AT+CSQ"
        prefix = "+CMEE" if probe == "AT+CMEE?" else "+CSQ"
        wait *= self.time_scale
        loop = asyncio.get_running_loop()
        for _ in range(tries):
            if not self.is_open:
                return False
            w = _Waiter(probe)
            self._waiter = w
            self._decoder.begin(probe)
            deadline = loop.time() + wait
            ours = False
            try:
                await self._write(probe.encode("ascii") + b"\r")
                while True:
                    final = await asyncio.wait_for(
                        asyncio.shield(w.final), max(0.0, deadline - loop.time())
                    )
                    ours = any(i.line.upper().startswith(prefix) for i in w.lines)
                    if ours or not final.ok:
                        break
                    log.debug("%s: skipped a stale final while draining", self.name)
                    w.final = loop.create_future()  # keep waiting for the barrier's own
            except (TimeoutError, TransportClosed):
                continue
            finally:
                self._detach(w)
            # An error final is ambiguous (the probe unsupported, or a stale error); a short
            # settle lets any remaining stale line pass while no command is waiting.
            await asyncio.sleep(0.1 * self.time_scale if ours else 0.2)
            return True
        log.warning("%s: drain barrier got no answer after %d tries", self.name, tries)
        if self.on_unresponsive is not None and self.is_open:
            self.on_unresponsive(f"no answer to the drain barrier after {tries} tries")
        return False

    def _detach(self, w: _Waiter) -> None:
        if self._waiter is w:
            self._waiter = None
            self._decoder.end()
        for fut in (w.final, w.prompt, w.prompt_or_final):
            if fut is not None and fut.done() and not fut.cancelled():
                fut.exception()  # retrieved: no "exception never retrieved" noise

    async def _write(self, data: bytes, *, shown: str | None = None) -> None:
        if self._trace:
            self._trace("tx", shown if shown is not None else data.decode("latin-1"))
        try:
            await self.transport.write(data)
        except TransportClosed as exc:
            self._mark_closed(str(exc))
            raise ChannelClosed(str(exc)) from exc


def _resolve(fut: asyncio.Future[None] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)


def _validate(command: str) -> None:
    if not command.upper().startswith("AT"):
        raise ValueError(f"not an AT command: {command!r}")
    if any(c in command for c in ("\r", "\n", "\x1a", "\x1b")) or not command.isascii():
        raise ValueError(f"refusing control characters in AT command {command!r}")

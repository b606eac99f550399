"""In-process harness: a modem's AT session wired to a byte buffer instead of a pty.

Fast and deterministic for the AT engine's own tests; the pty path is covered by test_pty.py,
test_gammu.py and test_process.py.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from simhive.hardware.emulator import commands_general, commands_sms  # noqa: F401  (command table)
from simhive.hardware.emulator.engine import Session
from simhive.hardware.emulator.modem import VirtualModem
from simhive.hardware.emulator.network import Network
from simhive.hardware.emulator.profiles import get_profile
from simhive.hardware.emulator.sim import SimFactory

FINAL = re.compile(rb"\r\n(OK|ERROR|\+CM[ES] ERROR: [^\r]*)\r\n")


@dataclass
class Wire:
    """What the modem wrote; `expect` consumes output up to a match."""

    out: bytearray = field(default_factory=bytearray)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def write(self, data: bytes) -> None:
        self.out += data
        self.changed.set()

    async def expect(self, pattern: bytes | re.Pattern[bytes], within: float = 10.0) -> bytes:
        regex = re.compile(re.escape(pattern)) if isinstance(pattern, bytes) else pattern

        async def wait() -> bytes:
            while True:
                m = regex.search(self.out)
                if m:
                    taken = bytes(self.out[: m.end()])
                    del self.out[: m.end()]
                    return taken
                self.changed.clear()
                await self.changed.wait()

        async with asyncio.timeout(within):
            return await wait()

    def take(self) -> bytes:
        data = bytes(self.out)
        self.out.clear()
        return data


class Port:
    """One session plus its wire, with helpers that read like a terminal transcript."""

    def __init__(self, session: Session, wire: Wire) -> None:
        self.session = session
        self.wire = wire

    async def cmd(self, line: str, within: float = 10.0) -> str:
        """Send `line` + CR, return everything up to and including the final result."""
        self.session.feed(line.encode() + b"\r")
        return (await self.wire.expect(FINAL, within)).decode("latin-1")

    async def send_pdu(self, length: int, hex_pdu: str) -> str:
        self.session.feed(f"AT+CMGS={length}\r".encode())
        await self.wire.expect(b"> ")
        self.session.feed(hex_pdu.encode() + b"\x1a")
        return (await self.wire.expect(FINAL)).decode("latin-1")

    async def urc(self, pattern: bytes | str, within: float = 10.0) -> str:
        regex = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        return (await self.wire.expect(regex, within)).decode("latin-1")


class Rig:
    """A network with modems built from (profile, dual_sim) pairs, each on in-memory ports."""

    def __init__(self, **network: object) -> None:
        self.network = Network(**network)  # type: ignore[arg-type]  # test-only pass-through
        self.factory = SimFactory(7)
        self.modems: list[VirtualModem] = []
        self.ports: dict[str, list[Port]] = {}
        self._index = 0

    def add(self, profile: str = "generic", dual_sim: str = "none") -> VirtualModem:
        prof = get_profile(profile)
        slots = 1 if dual_sim == "none" else 2
        sims = []
        for slot in range(slots):
            sims.append(self.factory.make(slot, self._index))
            self._index += 1
        modem = VirtualModem(
            f"m{len(self.modems) + 1}",
            prof,
            self.factory.imei(prof.imei_prefix),
            sims,
            dual_sim,
            self.network,
        )
        self.network.add_modem(modem)
        self.modems.append(modem)
        ports = []
        for i in range(2 if dual_sim == "ports" else 1):
            wire = Wire()
            session = Session(
                modem,
                wire.write,
                fixed_slot=i if dual_sim == "ports" else None,
                name=f"{modem.id}.{i}",
            )
            modem.sessions.append(session)
            ports.append(Port(session, wire))
        self.ports[modem.id] = ports
        return modem

    def port(self, modem_id: str, index: int = 0) -> Port:
        return self.ports[modem_id][index]

    async def start(self) -> None:
        self.network.start()
        for modem in self.modems:
            for port in self.ports[modem.id]:
                port.session.start()
            modem.boot()
        await asyncio.sleep(0)

    async def stop(self) -> None:
        for modem in self.modems:
            for session in modem.sessions:
                await session.close()
        await self.network.stop()

"""The emulator process: modems on ptys, the shared network, and the state description.

The description (emulator.json) is the contract other tools read: ports, links, SIM identities
and the control URL. It is written atomically whenever a port path changes (start, replug).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import commands_general, commands_sms, ussd  # noqa: F401  (registers the AT commands)
from .engine import Session
from .modem import DUAL_SIM_STYLES, VirtualModem
from .network import Network
from .profiles import get_profile
from .pty import PtyPort
from .sim import SimFactory

log = logging.getLogger(__name__)


@dataclass
class EmulatorConfig:
    modems: int = 1
    profiles: list[str] = field(default_factory=lambda: ["generic"])
    dual_sim: list[str | None] = field(default_factory=lambda: [None])  # None = profile default
    state_dir: Path = Path(".")
    latency: float = 0.0
    latency_jitter: float = 0.0
    report_delay: float = 0.0
    report_outcome: str = "delivered"
    seed: int = 0
    faults: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)

    def validate(self) -> None:
        if not 1 <= self.modems <= 256:
            raise ValueError("--modems must be 1..256")
        for name in self.profiles:
            get_profile(name)
        for style in self.dual_sim:
            if style is not None and style not in DUAL_SIM_STYLES:
                raise ValueError(f"--dual-sim must be one of {', '.join(DUAL_SIM_STYLES)}")
        if self.latency < 0 or self.report_delay < 0:
            raise ValueError("--latency and --report-delay must be >= 0")


class ModemPorts:
    """The ptys and AT sessions of one modem: one port, or one per SIM in the two-port layout."""

    def __init__(self, modem: VirtualModem, state_dir: Path) -> None:
        self.modem = modem
        self.state_dir = state_dir
        count = 2 if modem.dual_sim == "ports" else 1
        self.links = [
            state_dir / (modem.id if i == 0 else f"{modem.id}-sim{i + 1}") for i in range(count)
        ]
        self.ports: list[PtyPort] = []

    def open(self) -> None:
        modem = self.modem
        modem.sessions = []
        self.ports = []
        for i, link in enumerate(self.links):
            fixed = i if modem.dual_sim == "ports" else None
            name = modem.id if len(self.links) == 1 else f"{modem.id}/sim{i + 1}"
            port = PtyPort(link, self._feeder(i))
            session = Session(modem, port.write, fixed_slot=fixed, name=name)
            port.open()
            session.start()
            self.ports.append(port)
            modem.sessions.append(session)
        modem.plugged = True
        modem.boot()

    def _feeder(self, index: int) -> Callable[[bytes], None]:
        def feed(data: bytes) -> None:
            if index < len(self.modem.sessions):
                self.modem.sessions[index].feed(data)

        return feed

    async def close(self, *, remove_links: bool = True) -> None:
        self.modem.plugged = False
        for port in self.ports:
            port.close(remove_link=remove_links)
        for session in self.modem.sessions:
            await session.close()
        self.modem.sessions = []
        self.ports = []

    def port_of(self, index: int) -> tuple[str | None, str | None]:
        if index < len(self.ports) and self.ports[index].is_open:
            return self.ports[index].path, str(self.links[index])
        return None, str(self.links[index])


class Emulator:
    def __init__(self, config: EmulatorConfig) -> None:
        config.validate()
        self.config = config
        self.state_dir = config.state_dir.resolve()
        self.network = Network(
            report_delay=config.report_delay,
            report_outcome=config.report_outcome,
            latency=config.latency,
        )
        self.network.latency_jitter = config.latency_jitter
        self.network.seed_jitter(config.seed)
        self.control_url = ""
        self.modems: dict[str, ModemPorts] = {}
        factory = SimFactory(config.seed)
        sim_index = 0
        for n in range(config.modems):
            profile = get_profile(config.profiles[n % len(config.profiles)])
            style = config.dual_sim[n % len(config.dual_sim)]
            if style is None:
                style = profile.dual_sim_styles[0] if profile.dual_sim_styles else "none"
            slots = 1 if style == "none" else 2
            sims = []
            for slot in range(slots):
                sims.append(factory.make(slot, sim_index))
                sim_index += 1
            modem = VirtualModem(
                f"m{n + 1}", profile, factory.imei(profile.imei_prefix), sims, style, self.network
            )
            self.network.add_modem(modem)
            self.modems[modem.id] = ModemPorts(modem, self.state_dir)
        for target, spec in config.faults:
            ids = [target] if target else list(self.modems)
            for mid in ids:
                if mid not in self.modems:
                    raise ValueError(f"--fault names unknown modem {mid!r}")
                self.modems[mid].modem.apply_faults(spec)

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.network.start()
        for ports in self.modems.values():
            ports.modem.on_change = self.write_state
            ports.open()

    async def stop(self) -> None:
        for ports in self.modems.values():
            await ports.close()
        await self.network.stop()
        with_state = self.state_dir / "emulator.json"
        log.info("emulator stopped; %s left for inspection", with_state)

    def get(self, modem_id: str) -> ModemPorts:
        try:
            return self.modems[modem_id]
        except KeyError:
            raise KeyError(f"no modem {modem_id!r}") from None

    async def unplug(self, modem_id: str) -> None:
        ports = self.get(modem_id)
        if ports.modem.plugged:
            await ports.close()
            self.write_state()

    async def replug(self, modem_id: str) -> None:
        ports = self.get(modem_id)
        if not ports.modem.plugged:
            ports.open()
            self.write_state()
            self.network.kick()

    def describe(self) -> dict[str, Any]:
        modems = []
        for ports in self.modems.values():
            m = ports.modem
            port, link = ports.port_of(0)
            sims = []
            for state in m.sims:
                sim = state.sim
                sport, slink = ports.port_of(sim.slot) if m.dual_sim == "ports" else (None, None)
                sims.append(
                    {
                        "slot": sim.slot,
                        "number": sim.number,
                        "iccid": sim.iccid,
                        "imsi": sim.imsi,
                        "operator": sim.serving.name,
                        "operator_code": sim.serving.code,
                        "port": sport,
                        "link": slink,
                    }
                )
            modems.append(
                {
                    "id": m.id,
                    "port": port,
                    "link": link,
                    "profile": m.profile.name,
                    "dual_sim": m.dual_sim,
                    "imei": m.imei,
                    "sims": sims,
                }
            )
        return {"pid": os.getpid(), "control": self.control_url, "modems": modems}

    def live_state(self) -> dict[str, Any]:
        state = self.describe()
        for entry in state["modems"]:
            ports = self.modems[entry["id"]]
            live = ports.modem.describe()
            entry["live"] = live
        state["network"] = self.network.describe()
        return state

    def write_state(self) -> None:
        path = self.state_dir / "emulator.json"
        tmp = path.with_name(f".emulator.json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.describe(), indent=2) + "\n")
        os.replace(tmp, path)

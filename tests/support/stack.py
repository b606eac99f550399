"""The whole gateway as real processes on loopback: server, modem emulator, agent (and a proxy).

    stack = GatewayStack(tmp_path, modems=1, dual_sim="cdsds").start()
    try:
        sms_id = stack.addsms(stack.devices[0], to=number, body="hi", sim=1)
        stack.wait_status(sms_id, {7})
    finally:
        stack.close()

Everything goes through the public surfaces a user has: the account and the devices are created
with `simhive-server account create` / `device create` (the click commands, run in the test's
process), the agent's TOML is written from the
emulator's `emulator.json`, messages go in through `/getdata/*`. Ports are picked at run time.
`close()` stops every process it started (SIGTERM, then SIGKILL) and is safe to call twice;
children also die with the test process (see proc.py).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from simhive.hardware.emulator.client import EmulatorClient
from tests.support.proc import Proc
from tests.support.procs import console_script, free_port, wait_port
from tests.support.tcpproxy import TcpProxy

T = TypeVar("T")
# No pacing floor and no caps: tests and benchmarks that measure the software, not the radio.
FAST_PACING: dict[str, object] = {
    "sim_min_interval": 0,
    "sim_per_minute": None,
    "sim_per_hour": None,
    "sim_per_day": None,
}
PASSWORD = "e2e-password-123"


class ApiError(AssertionError):
    """The compat API answered error:1 where the test expected success."""


def wait_until(
    probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1
) -> T:
    """Call probe until it returns something other than None/False; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last is not None and last is not False:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def _stop_and_tell(proc: Proc) -> None:
    started = time.monotonic()
    code = proc.stop()
    took = time.monotonic() - started
    if took > 5 or code not in (0, None, -9):
        print(f"{proc.name} stopped with {code} after {took:.1f} s")


@dataclass
class Device:
    """A server device bound to one emulated modem."""

    device_id: int
    token: str
    modem: dict[str, Any]

    @property
    def modem_id(self) -> str:
        return str(self.modem["id"])

    def number(self, slot: int = 0) -> str:
        return str(self.modem["sims"][slot]["number"])


@dataclass
class GatewayStack:
    root: Path
    modems: int = 1
    profile: str = "sim800c-ds"
    dual_sim: str = "cdsds"
    emulator_args: Sequence[str] = ()
    agent_options: dict[str, Any] = field(default_factory=dict)
    with_proxy: bool = False
    agent_log_level: str = "info"
    # Several agent processes against the one server: devices are dealt out round-robin.
    agent_count: int = 1
    email: str = "e2e@simhive.test"
    # Device settings (server side, handed to the agent in hello), e.g. FAST_PACING.
    device_settings: dict[str, object] = field(default_factory=dict)
    # Extra `simhive-server run` options, e.g. ["--lease-seconds", "3"].
    server_args: Sequence[str] = ()

    server: Proc | None = None
    emulator: Proc | None = None
    agent: Proc | None = None  # the first (or only) agent
    agents: list[Proc] = field(default_factory=list)
    proxy: TcpProxy | None = None
    server_port: int = 0
    token: str = ""
    devices: list[Device] = field(default_factory=list)
    emu_state: dict[str, Any] = field(default_factory=dict)

    # ---- paths --------------------------------------------------------------------------------

    @property
    def db(self) -> Path:
        return self.root / "server.sqlite3"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    @property
    def agent_url(self) -> str:
        """Where the agent sends its requests: the proxy if there is one."""
        port = self.proxy.port if self.proxy is not None else self.server_port
        return f"http://127.0.0.1:{port}"

    @property
    def emu(self) -> EmulatorClient:
        return EmulatorClient(str(self.emu_state["control"]))

    # ---- start and stop -----------------------------------------------------------------------

    def start(self) -> GatewayStack:
        self.root.mkdir(parents=True, exist_ok=True)
        # The emulator needs nothing from the server: it starts first and comes up while the
        # server starts and the account is created (each a Python start-up of half a second or
        # more), instead of after them.
        self.launch_emulator()
        self.start_server()
        self.token = str(self.cli("account", "create", "--email", self.email,
                                  "--password", PASSWORD)["token"])  # fmt: skip
        self.wait_emulator()
        for modem in self.emu_state["modems"]:
            made = self.cli("device", "create", "--email", self.email, "--title", modem["id"])
            self.devices.append(Device(int(made["device_id"]), str(made["token"]), modem))
            if self.device_settings:
                self.set_device_settings(self.devices[-1], self.device_settings)
        if self.with_proxy:
            self.proxy = TcpProxy(self.server_port)
        for index in range(self.agent_count):
            self.write_agent_config(index)
            self.start_agent(index)
        return self

    def close(self) -> None:
        # The agents first (a stopping agent may still talk to the server), then the emulator
        # and the server; the processes of each step stop side by side, since each SIGTERM
        # wait is mostly an idle process finishing its shutdown.
        for step in (self.agents, [self.emulator, self.server]):
            procs = [p for p in step if p is not None]
            with ThreadPoolExecutor(max(1, len(procs))) as pool:
                list(pool.map(_stop_and_tell, procs))
        if self.proxy is not None:
            self.proxy.close()

    def processes(self) -> list[Proc]:
        return [p for p in (self.server, self.emulator, *self.agents) if p is not None]

    def logs(self, chars: int = 3000) -> str:
        return "\n".join(f"---- {p.name} ({p.log})\n{p.tail(chars)}" for p in self.processes())

    def start_server(self) -> None:
        if self.server is None:
            self.server_port = free_port()
            argv = [console_script("simhive-server"), "run", "--db", str(self.db),
                    "--host", "127.0.0.1", "--port", str(self.server_port),
                    "--no-access-log", *self.server_args]  # fmt: skip
            self.server = Proc("server", argv, log=self.root / "server.log")
        self.server.start()
        try:
            wait_port(self.server_port, timeout=30)
        except TimeoutError:
            raise AssertionError(f"server did not listen:\n{self.server.tail()}") from None

    @property
    def _emulator_state_file(self) -> Path:
        return self.root / "emu" / "emulator.json"

    def start_emulator(self) -> None:
        self.launch_emulator()
        self.wait_emulator()

    def launch_emulator(self) -> None:
        """Start the emulator process without waiting for it (see wait_emulator)."""
        state_file = self._emulator_state_file
        state_file.parent.mkdir(exist_ok=True)
        state_file.unlink(missing_ok=True)
        argv = [console_script("simhive-emulator"), "run", "--modems", str(self.modems),
                "--profile", self.profile, "--dual-sim", self.dual_sim,
                "--state", str(state_file.parent), *self.emulator_args]  # fmt: skip
        self.emulator = Proc("emulator", argv, log=self.root / "emulator.log").start()

    def wait_emulator(self) -> None:
        """Until the launched emulator has written emulator.json (its modems and control URL)."""
        assert self.emulator is not None, "launch_emulator first"
        emulator = self.emulator
        state_file = self._emulator_state_file

        def ready() -> dict[str, Any] | None:
            if not emulator.alive():
                raise AssertionError(f"emulator exited:\n{emulator.tail()}")
            try:
                data: dict[str, Any] = json.loads(state_file.read_text())
                return data
            except (OSError, ValueError):
                return None

        self.emu_state = wait_until(ready, 30, "emulator.json")

    def _agent_name(self, index: int) -> str:
        return "agent" if self.agent_count == 1 else f"agent-{index}"

    def agent_devices(self, index: int) -> list[Device]:
        return self.devices[index :: self.agent_count]

    def write_agent_config(self, index: int = 0) -> Path:
        """An agent's TOML, one [[device]] per emulated modem it drives, from emulator.json."""
        name = self._agent_name(index)
        lines = [
            f'server = "{self.agent_url}"',
            f'journal = "{self.root / (name + "-journal.sqlite3")}"',
            f'log_level = "{self.agent_log_level}"',
        ]
        lines += [f"{k} = {json.dumps(v)}" for k, v in self.agent_options.items()]
        for dev in self.agent_devices(index):
            m = dev.modem
            lines += ["", "[[device]]", f'name = "{m["id"]}"', f'token = "{dev.token}"']
            if m["dual_sim"] == "ports":
                ports = [s["link"] for s in m["sims"]]
                lines.append(f"ports = {json.dumps(ports)}")
            else:
                lines.append(f'port = "{m["link"]}"')
                lines.append(f'dual_sim = "{m["dual_sim"]}"')
            lines.append(f'profile = "{m["profile"]}"')
        path = self.root / f"{name}.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start_agent(self, index: int = 0) -> Proc:
        """Start (or restart after a stop or kill) agent number `index`."""
        while len(self.agents) <= index:
            name = self._agent_name(len(self.agents))
            argv = [console_script("simhive-agent"), "run", "--config",
                    str(self.root / f"{name}.toml")]  # fmt: skip
            self.agents.append(Proc(name, argv, log=self.root / f"{name}.log"))
        self.agent = self.agents[0]
        return self.agents[index].start()

    # ---- the server's command line --------------------------------------------------------------

    def cli(self, *args: str) -> dict[str, Any]:
        """`simhive-server <args> --db <db>`: the same click command a user runs, invoked in this
        process. A child process per call cost half a second to two seconds of interpreter and
        import start-up (more under coverage) for a command that takes milliseconds, and a stack
        makes one per device before its agent can start; what the command does (argument
        parsing, the store opened on the file the running server uses, JSON out) is the same."""
        from click.testing import CliRunner

        from simhive.server.cli import main

        out = CliRunner().invoke(main, [*args, "--db", str(self.db)], catch_exceptions=False)
        if out.exit_code != 0:
            raise AssertionError(f"{' '.join(args)} failed ({out.exit_code}): {out.stderr}")
        data: dict[str, Any] = json.loads(out.stdout)
        return data

    def set_device_settings(self, device: Device, values: dict[str, object]) -> None:
        """Pacing and caps of a device, through the server's store interface (the same call the
        admin CLI makes); the agent picks them up with its next hello."""
        from simhive.server.store.sqlite import SqliteStore

        async def go() -> None:
            store = SqliteStore(self.db)
            await store.open()
            try:
                await store.update_device_settings(device.device_id, values)
            finally:
                await store.close()

        asyncio.run(go())

    # ---- the compat API -------------------------------------------------------------------------

    def api(self, method: str, *, check: bool = True, timeout: float = 30, **params: Any) -> Any:
        """POST /getdata/<method> form-encoded with the account token; the decoded JSON answer."""
        fields = {"token": self.token, **{k: str(v) for k, v in params.items()}}
        req = urllib.request.Request(
            f"{self.url}/getdata/{method}", data=urllib.parse.urlencode(fields).encode()
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            answer = json.loads(resp.read())
        if check and answer.get("error") != 0:
            raise ApiError(f"{method} {params}: {answer}")
        return answer

    def addsms(self, device: Device, to: str, body: str, sim: int = 0, **extra: Any) -> int:
        answer = self.api("addsms", device_id=device.device_id, sendto=to, body=body, sim=sim,
                          **extra)  # fmt: skip
        return int(answer["sms_id"])

    def to_pool(self, pool: str, to: str, body: str, **extra: Any) -> int:
        """addsms to a pool (`all`, `device:<id>` or a named one) instead of a SIM."""
        return int(self.api("addsms", pool=pool, sendto=to, body=body, **extra)["sms_id"])

    def sim_ready(self) -> dict[tuple[int, int], tuple[bool, str]]:
        """{(device, slot): (ready, reason)} as the agents' latest pulls told the server (a
        read-only look at its database)."""
        import contextlib
        import sqlite3

        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT device_id, slot, ready, reason FROM sim_ready").fetchall()
        return {(int(d), int(s)): (bool(r), str(why)) for d, s, r, why in rows}

    def status(self, sms_id: int) -> int:
        return int(self.api("getsmsstatus", sms_id=sms_id)["status"])

    def wait_status(self, sms_id: int, wanted: Collection[int], timeout: float = 60) -> int:
        def probe() -> int | None:
            s = self.status(sms_id)
            return s if s in wanted else None

        try:
            return wait_until(probe, timeout, f"sms {sms_id} to reach status {sorted(wanted)}")
        except AssertionError as exc:
            raise AssertionError(f"{exc} (now {self.status(sms_id)})\n{self.logs()}") from None

    def all_sms(self, **filters: Any) -> dict[str, dict[str, Any]]:
        smss: dict[str, dict[str, Any]] = self.api("getallsms", **filters)["smss"]
        return smss

    def siminfo(self, device: Device) -> list[dict[str, Any]]:
        info: list[dict[str, Any]] = self.api("getalldevices")["device"][str(device.device_id)][
            "siminfo"
        ]
        return info

    def wait_agent_ready(self, timeout: float = 60) -> None:
        """Until every device has SIM info: the agent said hello with its modem up."""
        for dev in self.devices:

            def has_info(d: Device = dev) -> list[dict[str, Any]] | None:
                return self.siminfo(d) or None

            try:
                wait_until(has_info, timeout, "siminfo")
            except AssertionError:
                raise AssertionError(f"no siminfo for {dev.modem_id}\n{self.logs()}") from None

    def submitted(self) -> list[dict[str, Any]]:
        return self.emu.submitted()

"""`simhive-agent doctor`: each fault an admin meets on a modem host is found and gets its fix.

Modem faults come from the real emulator (its fault injection: PIN prompt, no SIM, no
network); ports held or unreadable are real (another process locks the pty; the doctor runs
as a user who may not read it); ModemManager, a Pi's under-voltage and a stick in USB storage
mode come from fake /proc and /sys trees handed to the doctor as its roots.
"""

from __future__ import annotations

import grp
import json
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from simhive.agent.config import parse
from simhive.agent.doctor import Report, run_doctor
from simhive.agent.doctor.host import check_port
from simhive.agent.modem.portaccess import Roots
from simhive.hardware.emulator.client import EmulatorProcess, run_emulator
from tests.agent.fakeserver import FakeAgentServer
from tests.support.procs import console_script, free_port
from tests.support.tls import self_signed

pytestmark = pytest.mark.integration

TOKEN = "0123456789abcdef0123456789abcdef"  # the shape `simhive-server device create` prints


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    with run_emulator(modems=1, profile="generic") as e:
        yield e


@pytest.fixture
def modem(emu: EmulatorProcess) -> Iterator[dict[str, Any]]:
    emu.client.clear_faults("m1")
    yield dict(emu.state["modems"][0])
    emu.client.clear_faults("m1")


def empty_roots(tmp_path: Path, **over: Path) -> Roots:
    """Roots with nothing in them: no ModemManager, no USB devices, no ports to discover."""
    for name in ("proc", "sys", "dev", "run", "etc"):
        (tmp_path / "root" / name).mkdir(parents=True, exist_ok=True)
    roots = {n: tmp_path / "root" / n for n in ("proc", "sys", "dev", "run", "etc")}
    return Roots(**{**roots, **over})


def config(tmp_path: Path, port: str, server: str, **dev: Any) -> Any:
    device = {"name": "hall", "token": TOKEN, "port": port, **dev}
    return parse({"server": server, "journal": str(tmp_path / "j" / "journal.sqlite3"),
                  "device": [device]})  # fmt: skip


def finding(report: Report, check: str) -> Any:
    found = [f for f in report.findings if f.check == check]
    assert found, (check, report.render())
    return found[0]


async def test_all_well_exits_zero_with_a_server_that_takes_the_token(
    modem: dict[str, Any], tmp_path: Path, server: FakeAgentServer
) -> None:
    server.tokens[TOKEN] = 1
    report = await run_doctor(config(tmp_path, modem["link"], server.url), empty_roots(tmp_path))
    assert not report.problems, report.render()
    expected = ("modem.at", "sim.pin", "network.registration", "sms.smsc", "sim.number",
                "server.reachable", "server.token", "server.clock", "journal.writable")  # fmt: skip
    for check in expected:
        assert finding(report, check).level == "ok", check
    assert modem["sims"][0]["number"] in finding(report, "sim.number").message


@pytest.mark.parametrize(
    ("fault", "check", "words", "fix"),
    [
        ({"pin": "1234"}, "sim.pin", "asks for a PIN", 'set pin = "'),
        ({"sim_missing": True}, "sim.present", "no SIM", "insert the SIM"),
        ({"no_network": True}, "network.registration", "not registered", "antenna"),
    ],
    ids=["pin", "no-sim", "no-network"],
)
async def test_modem_faults_are_found_with_their_fix(
    emu: EmulatorProcess, modem: dict[str, Any], tmp_path: Path, fault: dict[str, Any],
    check: str, words: str, fix: str,
) -> None:  # fmt: skip
    emu.client.set_faults("m1", fault)
    cfg = config(tmp_path, modem["link"], f"http://127.0.0.1:{free_port()}")
    report = await run_doctor(cfg, empty_roots(tmp_path))
    f = finding(report, check)
    assert f.level == "fail" and words in f.message and fix in f.fix, report.render()


async def test_a_configured_pin_is_not_a_problem(
    emu: EmulatorProcess, modem: dict[str, Any], tmp_path: Path
) -> None:
    emu.client.set_faults("m1", {"pin": "1234"})
    cfg = config(tmp_path, modem["link"], "http://127.0.0.1:1", pin="1234")
    report = await run_doctor(cfg, empty_roots(tmp_path))
    assert finding(report, "sim.pin").level == "ok"


async def test_unreachable_server_gets_the_running_hint(
    modem: dict[str, Any], tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    report = await run_doctor(config(tmp_path, modem["link"], url), empty_roots(tmp_path))
    f = finding(report, "server.reachable")
    assert f.level == "fail" and "cannot reach" in f.message
    assert "is simhive-server running" in f.fix and url in f.fix


async def test_refused_token_and_clock_skew(modem: dict[str, Any], tmp_path: Path) -> None:
    # A server that refuses the token and whose clock is 10 minutes off.
    async def refuse(request: web.Request) -> web.Response:
        return web.json_response(
            {"error": {"code": "unauthorized", "message": "no"}}, status=401,
            headers={"Date": "Mon, 01 Jan 2024 00:00:00 GMT"},
        )  # fmt: skip

    app = web.Application()
    app.router.add_post("/agent/v1/report", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        report = await run_doctor(
            config(tmp_path, modem["link"], f"http://127.0.0.1:{port}"), empty_roots(tmp_path),
            modem_checks=False,
        )  # fmt: skip
    finally:
        await runner.cleanup()
    assert finding(report, "server.reachable").level == "ok"
    token = finding(report, "server.token")
    assert token.level == "fail" and "401" in token.message and "device create" in token.fix
    clock = finding(report, "server.clock")
    assert clock.level == "fail" and "ahead of the server" in clock.message
    assert "timedatectl set-ntp true" in clock.fix


async def test_an_untrusted_tls_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    runner = web.AppRunner(web.Application())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls).start()
    try:
        cfg = config(tmp_path, "/dev/null", f"https://127.0.0.1:{port}")
        report = await run_doctor(cfg, empty_roots(tmp_path), modem_checks=False)
    finally:
        await runner.cleanup()
    f = finding(report, "server.tls")
    assert f.level == "fail" and "certificate" in f.message.lower()
    assert "not trusted here (self-signed" in f.fix


def test_a_port_held_by_another_process_names_it(modem: dict[str, Any], tmp_path: Path) -> None:
    # A second program (as minicom or a second agent would) opens the port exclusively.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import serial, sys; s = serial.Serial(sys.argv[1], exclusive=True);"
         " print('held', flush=True); sys.stdin.read()", modem["link"]],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        out = run_cli(tmp_path, modem["link"])
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 1, out.stdout
    held = [f for f in json.loads(out.stdout)["findings"] if f["check"] == "port.held"]
    assert held and f"pid {holder.pid}" in held[0]["message"], out.stdout
    assert f"(pid {holder.pid})" in held[0]["fix"] and "fuser -v" in held[0]["fix"]


def run_cli(tmp_path: Path, port: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'server = "http://127.0.0.1:{free_port()}"\njournal = "{tmp_path / "journal.sqlite3"}"\n'
        f'[[device]]\nname = "hall"\ntoken = "{TOKEN}"\nport = "{port}"\n'
    )
    roots = empty_roots(tmp_path)
    argv = [console_script("simhive-agent"), "doctor", "--config", str(cfg), "--json",
            "--dev-root", str(roots.dev), "--sys-root", str(roots.sys)]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def as_user_without_dialout(port: str) -> dict[str, Any]:
    """The port checks run in a child that is user nobody (uid 65534, no groups), as root can
    only show a permission problem by being someone else."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            report = Report()
            check_port(report, port, Roots())
            os.write(w, json.dumps(report.as_json()).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return dict(json.loads(data))


def test_a_port_the_user_cannot_read_names_the_dialout_group(
    modem: dict[str, Any], tmp_path: Path
) -> None:
    pty = os.path.realpath(modem["link"])
    st = os.stat(pty)
    # The usual state of a USB modem port: root:dialout 0660, the agent's user not in dialout.
    # As root that is made real with chgrp and a user without the group; otherwise the pty
    # (ours) is closed to everyone, and the doctor runs as a process of its own.
    try:
        if os.geteuid() == 0:
            os.chown(pty, 0, grp.getgrnam("dialout").gr_gid)
            os.chmod(pty, 0o660)
            result = as_user_without_dialout(pty)
        else:
            os.chmod(pty, 0)
            out = run_cli(tmp_path, pty)
            assert out.returncode == 1, out.stdout + out.stderr
            result = json.loads(out.stdout)
    finally:
        if os.geteuid() == 0:
            os.chown(pty, st.st_uid, st.st_gid)
        os.chmod(pty, st.st_mode & 0o777)
    access = [f for f in result["findings"] if f["check"] == "port.access"]
    assert access and access[0]["level"] == "fail", result
    assert "dialout" in access[0]["fix"] and "sudo usermod -aG dialout" in access[0]["fix"]


def plug_in(roots: Roots, port: str, name: str) -> None:
    """The port appears in the fake /dev as a USB serial port would."""
    (roots.dev / name).symlink_to(os.path.realpath(port))


def fake_proc(tmp_path: Path, port: str) -> Path:
    """A /proc with a ModemManager process that has `port` open."""
    proc = tmp_path / "fakeproc"
    (proc / "812" / "fd").mkdir(parents=True)
    (proc / "812" / "comm").write_text("ModemManager\n")
    (proc / "812" / "cmdline").write_bytes(b"/usr/sbin/ModemManager\0")
    os.symlink(os.path.realpath(port), proc / "812" / "fd" / "9")
    return proc


async def test_modemmanager_holding_the_port(modem: dict[str, Any], tmp_path: Path) -> None:
    roots = empty_roots(tmp_path, proc=fake_proc(tmp_path, modem["link"]))
    report = await run_doctor(config(tmp_path, modem["link"], "http://127.0.0.1:1"), roots)
    mm = finding(report, "modemmanager")
    assert mm.level == "warn" and "pid 812" in mm.message and "udev" in mm.fix
    held = finding(report, "port.modemmanager")
    assert held.level == "fail" and "systemctl disable --now ModemManager" in held.fix
    assert not [f for f in report.findings if f.check == "modem.at"], "a held port is not probed"
    # With simhive's udev rule installed ModemManager may run: it leaves the modems alone.
    rules = roots.etc / "udev" / "rules.d"
    rules.mkdir(parents=True)
    shutil.copy(Path(__file__).parents[2] / "hardware/udev/77-simhive-modems.rules", rules)
    report = await run_doctor(None, roots)
    assert finding(report, "modemmanager").level == "ok"


async def test_modemmanager_and_the_ports_udev_record(
    modem: dict[str, Any], tmp_path: Path
) -> None:
    # ModemManager runs but does not hold the port: udev's record says whether it will probe it.
    proc = tmp_path / "fakeproc"
    (proc / "812").mkdir(parents=True)
    (proc / "812" / "comm").write_text("ModemManager\n")
    roots = empty_roots(tmp_path, proc=proc)
    rdev = os.stat(modem["link"]).st_rdev
    record = roots.run / "udev" / "data" / f"c{os.major(rdev)}:{os.minor(rdev)}"
    record.parent.mkdir(parents=True)
    record.write_text("E:ID_BUS=usb\nE:ID_USB_INTERFACE_NUM=02\n")
    cfg = config(tmp_path, modem["link"], "http://127.0.0.1:1")
    probe = finding(await run_doctor(cfg, roots, modem_checks=False), "port.modemmanager")
    assert probe.level == "warn" and "probes it" in probe.message and "udev" in probe.fix
    record.write_text("E:ID_BUS=usb\nE:ID_MM_DEVICE_IGNORE=1\n")
    probe = finding(await run_doctor(cfg, roots, modem_checks=False), "port.modemmanager")
    assert probe.level == "ok"


@pytest.mark.parametrize(
    ("value", "level"), [("50005", "fail"), ("50000", "warn"), ("0", "ok")],
    ids=["under-voltage-now", "since-boot", "fine"],
)  # fmt: skip
async def test_raspberry_pi_under_voltage(tmp_path: Path, value: str, level: str) -> None:
    roots = empty_roots(tmp_path)
    model = roots.sys / "firmware" / "devicetree" / "base" / "model"
    model.parent.mkdir(parents=True)
    model.write_text("Raspberry Pi 4 Model B Rev 1.4\0")
    throttled = roots.sys / "devices" / "platform" / "soc" / "soc:firmware" / "get_throttled"
    throttled.parent.mkdir(parents=True)
    throttled.write_text(value + "\n")
    f = finding(await run_doctor(None, roots), "pi.power")
    assert f.level == level
    if level != "ok":
        assert "supply" in f.fix and f"0x{value}" in f.message


async def test_not_a_pi_has_no_power_finding(tmp_path: Path) -> None:
    report = await run_doctor(None, empty_roots(tmp_path))
    assert not [f for f in report.findings if f.check == "pi.power"]


async def test_stick_in_usb_storage_mode(tmp_path: Path) -> None:
    roots = empty_roots(tmp_path)
    stick = roots.sys / "bus" / "usb" / "devices" / "1-1.3"
    (stick / "1-1.3:1.0").mkdir(parents=True)
    (stick / "idVendor").write_text("12d1\n")
    (stick / "idProduct").write_text("1f01\n")
    (stick / "1-1.3:1.0" / "bInterfaceClass").write_text("08\n")
    f = finding(await run_doctor(None, roots), "usb.storage_mode")
    assert f.level == "fail" and "usb_modeswitch" in f.fix and "12d1:1f01" in f.subject


async def test_ports_found_on_the_host_are_checked(modem: dict[str, Any], tmp_path: Path) -> None:
    roots = empty_roots(tmp_path)
    plug_in(roots, modem["link"], "ttyUSB2")
    report = await run_doctor(None, roots)
    assert finding(report, "modem.at").subject == str(roots.dev / "ttyUSB2")
    assert not report.problems, report.render()

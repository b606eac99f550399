"""Host checks of `simhive-agent doctor`: serial ports, ModemManager, USB storage mode, the
journal's disk, and a Raspberry Pi's power supply. Everything is read from the roots
(agent/modem/portaccess.py Roots), so tests run them against fake /proc, /sys and /dev trees."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

from simhive.agent.modem.portaccess import (
    MM_FIX,
    Holder,
    Roots,
    access_problem,
    holders,
    modemmanager_pids,
)

from .findings import Report

# Modem vendors whose sticks start as a CD-ROM/storage device until usb_modeswitch flips them.
MODEM_VENDORS = {
    "12d1": "Huawei",
    "19d2": "ZTE",
    "1e0e": "SIMCom",
    "2c7c": "Quectel",
    "1c9e": "Longcheer",
    "05c6": "Qualcomm",
    "2001": "D-Link",
    "1bbb": "Alcatel",
}
# Huawei HiLink firmware: a network card with a web API and no AT port at all.
HILINK = {("12d1", "14db"), ("12d1", "14dc")}
MASS_STORAGE = "08"
FREE_FAIL_BYTES = 50 * 1024 * 1024
FREE_WARN_BYTES = 500 * 1024 * 1024
UNDER_VOLTAGE_NOW, THROTTLED_NOW, UNDER_VOLTAGE_SEEN, THROTTLED_SEEN = 0x1, 0x4, 0x10000, 0x40000
PI_POWER_FIX = (
    "use the official 5.1 V/3 A supply (Pi 4/5) and a powered USB hub with at least 2 A per"
    " 2G modem; short thick cables"
)


def discover_ports(roots: Roots) -> list[str]:
    """USB serial ports of the host: ttyUSB*/ttyACM* (by-id links are named when present)."""
    by_real: dict[str, str] = {}
    by_id = roots.dev / "serial" / "by-id"
    if by_id.is_dir():
        for link in sorted(by_id.iterdir()):
            by_real.setdefault(os.path.realpath(link), str(link))
    out: list[str] = []
    for pattern in ("ttyUSB*", "ttyACM*"):
        for p in sorted(roots.dev.glob(pattern)):
            out.append(by_real.get(os.path.realpath(p), str(p)))
    return out


def udev_ignores_mm(roots: Roots) -> bool:
    """A udev rules file (ours or the admin's) that tells ModemManager to keep off."""
    for d in (roots.etc / "udev" / "rules.d", roots.run / "udev" / "rules.d"):
        try:
            files = sorted(d.glob("*.rules"))
        except OSError:
            continue
        for f in files:
            try:
                text = f.read_text(errors="replace")
            except OSError:
                continue
            if "ID_MM_DEVICE_IGNORE" in text or "ID_MM_PORT_IGNORE" in text:
                return True
    return False


def check_modemmanager(report: Report, roots: Roots) -> list[int]:
    pids = modemmanager_pids(roots)
    if not pids:
        report.ok("modemmanager", "host", "ModemManager is not running")
    elif udev_ignores_mm(roots):
        report.ok(
            "modemmanager", "host",
            f"ModemManager runs (pid {pids[0]}); a udev rule tells it to ignore modems",
        )  # fmt: skip
    else:
        report.warn(
            "modemmanager", "host",
            f"ModemManager runs (pid {pids[0]}) and no udev rule tells it to ignore the modems:"
            " it probes every new serial port and holds it",
            MM_FIX,
        )  # fmt: skip
    return pids


def udev_says_ignore(port: str, roots: Roots) -> bool | None:
    """Whether udev tagged the port (or its USB device) for ModemManager to ignore; None when
    udev has no record of it (`/run/udev/data/c<major>:<minor>`)."""
    try:
        rdev = os.stat(port).st_rdev
    except OSError:
        return None
    record = roots.run / "udev" / "data" / f"c{os.major(rdev)}:{os.minor(rdev)}"
    try:
        lines = record.read_text(errors="replace").splitlines()
    except OSError:
        return None
    return any(ln in ("E:ID_MM_DEVICE_IGNORE=1", "E:ID_MM_PORT_IGNORE=1") for ln in lines)


def check_mm_probing(report: Report, port: str, roots: Roots) -> None:
    """ModemManager runs but does not hold the port now: will it probe it (at the next replug
    or restart)? udev's record of the port says."""
    ignored = udev_says_ignore(port, roots)
    if ignored:
        report.ok("port.modemmanager", port, "udev tells ModemManager to ignore this port")
    elif ignored is False:
        report.warn(
            "port.modemmanager", port,
            "ModemManager runs and udev does not tell it to ignore this port: it probes it at"
            " every replug, and holds it meanwhile",
            MM_FIX,
        )  # fmt: skip


def check_port(report: Report, port: str, roots: Roots) -> bool:
    """Existence, permissions and other holders of one port; True when it is free to probe."""
    if not os.path.exists(port):
        report.fail(
            "port.exists", port, f"{port} does not exist",
            "plug the modem in (and wait for usb_modeswitch); list ports with"
            " ls -l /dev/serial/by-id/ and fix `port` in the config",
        )  # fmt: skip
        return False
    problem = access_problem(port)
    if problem is not None:
        report.fail(
            "port.access", port, f"permission denied: {port} cannot be opened by this user",
            problem,
        )  # fmt: skip
        return False
    found = holders(port, roots)
    mm = [h for h in found if h.is_modemmanager]
    if mm:
        report.fail(
            "port.modemmanager", port, f"ModemManager (pid {mm[0].pid}) has {port} open", MM_FIX
        )
        return False
    locked = [h for h in found if h.how in ("lock", "lockfile")]
    if locked:
        report.fail(
            "port.held", port, f"{port} is held by {_who(locked)}", _held_fix(locked[0], port)
        )
        return False
    report.ok("port.access", port, f"{port} exists and this user may open it")
    return True


def _who(found: list[Holder]) -> str:
    return ", ".join(f"{h.describe()}" + (f" [{h.cmdline}]" if h.cmdline else "") for h in found)


def _held_fix(h: Holder, port: str) -> str:
    if "simhive-agent" in h.cmdline:
        return (
            f"a running simhive-agent (pid {h.pid}) owns it: stop it (sudo systemctl stop"
            " simhive-agent) to run the modem checks, or read its log"
        )
    return f"stop {h.name} (pid {h.pid}) or give it another port; check with: fuser -v {port}"


def busy_finding(report: Report, port: str, roots: Roots, text: str) -> None:
    """The open failed as busy without a visible lock (TIOCEXCL): name whoever has it open."""
    found = holders(port, roots)
    if found:
        report.fail(
            "port.held", port, f"{port} is held by {_who(found)}", _held_fix(found[0], port)
        )
    else:
        report.fail(
            "port.held", port, f"{port} is busy ({text})", f"find the holder: sudo fuser -v {port}"
        )


def check_usb_storage(report: Report, roots: Roots) -> None:
    base = roots.sys / "bus" / "usb" / "devices"
    try:
        devices = sorted(p for p in base.iterdir() if ":" not in p.name)
    except OSError:
        return
    for dev in devices:
        try:
            vid = (dev / "idVendor").read_text().strip().lower()
            pid = (dev / "idProduct").read_text().strip().lower()
        except OSError:
            continue
        if vid not in MODEM_VENDORS:
            continue
        name = f"USB {vid}:{pid} ({MODEM_VENDORS[vid]})"
        if (vid, pid) in HILINK:
            report.fail(
                "usb.hilink", name,
                f"{name} runs HiLink firmware: a network card without an AT port",
                "use a stick in stick mode (e.g. Huawei 12d1:1506) or flash stick-mode firmware;"
                " HiLink cannot send SMS over AT",
            )  # fmt: skip
            continue
        classes = set()
        for intf in dev.glob(f"{dev.name}:*"):
            try:
                classes.add((intf / "bInterfaceClass").read_text().strip().lower())
            except OSError:
                continue
        if classes and classes <= {MASS_STORAGE}:
            report.fail(
                "usb.storage_mode", name,
                f"{name} is still in USB storage (CD-ROM) mode: no serial port yet",
                "install usb-modeswitch and usb-modeswitch-data (sudo apt install usb-modeswitch"
                f" usb-modeswitch-data) and replug; or switch it by hand: sudo usb_modeswitch"
                f" -v {vid} -p {pid} -X",
            )  # fmt: skip


def check_journal(report: Report, journal: Path) -> None:
    subject = f"journal {journal}"
    directory = journal.parent
    probe_dir = directory
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent  # the agent creates missing directories
    target = journal if journal.exists() else probe_dir
    if not os.access(target, os.W_OK) or (journal.exists() and not os.access(directory, os.W_OK)):
        report.fail(
            "journal.writable", subject, f"{target} is not writable by this user",
            f"give the agent's user the directory: sudo chown -R $(id -un) {directory}"
            " (under systemd the unit's StateDirectory does this)",
        )  # fmt: skip
        return
    if directory.exists():
        # A real write, not just permission bits: a read-only mount passes os.access.
        probe = directory / f".simhive-doctor-{uuid.uuid4().hex}"
        try:
            probe.write_bytes(b"x")
            probe.unlink()
        except OSError as exc:
            report.fail(
                "journal.writable", subject, f"cannot write in {directory}: {exc.strerror}",
                "put the journal on a writable, persistent file system",
            )  # fmt: skip
            return
    report.ok("journal.writable", subject, "writable")
    free = shutil.disk_usage(probe_dir).free
    mib = free // (1024 * 1024)
    if free < FREE_FAIL_BYTES:
        report.fail(
            "disk.free", subject, f"only {mib} MiB free",
            "free disk space: a full disk stops the journal and with it all sending",
        )  # fmt: skip
    elif free < FREE_WARN_BYTES:
        report.warn("disk.free", subject, f"{mib} MiB free", "free some disk space soon")
    else:
        report.ok("disk.free", subject, f"{mib} MiB free")


def _is_pi(roots: Roots) -> bool:
    models = (roots.sys / "firmware/devicetree/base/model", roots.proc / "device-tree/model")
    for p in models:
        try:
            if "raspberry pi" in p.read_text(errors="replace").lower():
                return True
        except OSError:
            continue
    return False


def read_throttled(roots: Roots) -> int | None:
    sysfs = roots.sys / "devices" / "platform" / "soc" / "soc:firmware" / "get_throttled"
    try:
        return int(sysfs.read_text().strip(), 16)  # the firmware driver prints it in hex
    except (OSError, ValueError):
        pass
    if roots.sys != Path("/sys") or shutil.which("vcgencmd") is None:
        return None  # a fake tree never falls back to the host's own tool
    try:
        out = subprocess.run(
            ["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
        return int(out.strip().split("=", 1)[1], 16)  # "throttled=0x50005"
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def check_pi_power(report: Report, roots: Roots) -> None:
    if not _is_pi(roots):
        return
    value = read_throttled(roots)
    if value is None:
        report.warn(
            "pi.power", "host", "Raspberry Pi: cannot read the throttling state",
            "install vcgencmd (libraspberrypi-bin) so the under-voltage state can be read",
        )  # fmt: skip
    elif value & (UNDER_VOLTAGE_NOW | THROTTLED_NOW):
        report.fail(
            "pi.power", "host",
            f"Raspberry Pi: under-voltage or throttling now (get_throttled=0x{value:x}):"
            " modems reset under load",
            PI_POWER_FIX,
        )  # fmt: skip
    elif value & (UNDER_VOLTAGE_SEEN | THROTTLED_SEEN):
        report.warn(
            "pi.power", "host",
            f"Raspberry Pi: under-voltage or throttling happened since boot"
            f" (get_throttled=0x{value:x})",
            PI_POWER_FIX,
        )  # fmt: skip
    else:
        report.ok("pi.power", "host", "Raspberry Pi: no under-voltage or throttling since boot")

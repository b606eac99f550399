"""gammu-smsd, Debian's Gammu SMS daemon, run as the peer that bench/_peer.py measures.

gammu-smsd drives one phone per process, so N modems take N daemons, each with its own config
and its own outbox. It uses the FILES service: messages are files in an outbox directory that
the daemon scans. Its SQL service with SQLite (through libdbi) was tried and is slower here: its
outbox query only takes rows whose SendingDateTime (second resolution) has passed, and with
LoopSleep=0 its constant polling held the database lock against gammu-smsd-inject ("database
is locked", then a reconnect after 1 s).

A message is injected with gammu-smsd-inject into a staging directory and then renamed into the
daemon's outbox: a rename is atomic, while gammu-smsd-inject writes straight into the outbox
creates the file first and fills it after, which a daemon scanning without pause can find
half-written. The rename is the moment of acceptance, the counterpart of simhive's addsms answer.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.support.proc import Proc

DAEMON = "gammu-smsd"
INJECT = "gammu-smsd-inject"

# The [smsd] settings of every run, declared once: printed with the figures and listed in
# docs/benchmarks.md. Each is the fastest value that still leaves a daemon one would run.
SETTINGS: dict[str, str] = {
    "Service": "files",  # see the module docstring for why not SQL
    "CommTimeout": "0",  # scan the outbox again at once after finding it empty (default 30 s)
    "StatusFrequency": "0",  # no periodic battery and signal refresh (default 60 s)
    "ReceiveFrequency": "60",  # look for incoming SMS once a minute (default 15 s): fewer
    # AT round trips between sends; an incoming SMS may then wait up to a minute
    "CheckSecurity": "0",  # no AT+CPIN? check: these SIMs have no PIN
    "CheckBattery": "0",  # a USB modem has no battery; skips a query before every send
    "CheckSignal": "0",  # skips AT+CSQ before every send (simhive reads it every 30 s)
    "DeliveryReport": "no",  # no status reports to receive and match (simhive asks for one
    # per message and processes it in the same window: more work on its side, not less)
}
# LoopSleep is what the two measured configurations differ in: 0 never sleeps between rounds
# (a busy loop: the lowest latency, and CPU burnt while idle), 1 is the shipped default.
LOOP_SLEEPS = (0, 1)
INJECT_ANSWER = re.compile(r"Written message with ID (\S+)")


def missing() -> str | None:
    """Why gammu-smsd cannot be measured here, or None when it can."""
    for tool in (DAEMON, INJECT):
        if shutil.which(tool) is None:
            return (f"{tool} is not installed: scripts/bootstrap test (and scripts/run-benchmarks)"
                    " installs Debian's gammu-smsd package")  # fmt: skip
    return None


class SmsdFleet:
    """One gammu-smsd per modem link, with its own config, outbox, sent and error directories."""

    def __init__(self, root: Path, links: Sequence[str], loop_sleep: int) -> None:
        reason = missing()
        if reason is not None:
            raise RuntimeError(reason)
        self.root = root
        self.links = list(links)
        self.loop_sleep = loop_sleep
        self.procs: list[Proc] = []
        for index, link in enumerate(self.links):
            base = self.dir(index)
            for sub in ("inbox", "outbox", "sent", "error", "staging"):
                (base / sub).mkdir(parents=True, exist_ok=True)
            self.write_config(index, link, base / "smsdrc", base / "outbox")
            # gammu-smsd-inject reads the same settings but writes into the staging directory.
            self.write_config(index, link, base / "inject-smsdrc", base / "staging")
            argv = [DAEMON, "--config", str(base / "smsdrc")]
            self.procs.append(Proc(f"gammu-smsd-{index}", argv, log=base / "daemon.log"))

    def dir(self, index: int) -> Path:
        return self.root / f"smsd-loop{self.loop_sleep}-{index}"

    def write_config(self, index: int, link: str, path: Path, outbox: Path) -> None:
        base = self.dir(index)
        smsd = {
            **SETTINGS,
            "LoopSleep": str(self.loop_sleep),
            "InboxPath": f"{base / 'inbox'}/",
            "OutboxPath": f"{outbox}/",
            "SentSMSPath": f"{base / 'sent'}/",
            "ErrorSMSPath": f"{base / 'error'}/",
            "LogFile": str(base / "smsd.log"),
            "DebugLevel": "0",
        }
        lines = ["[gammu]", f"device = {link}", "connection = at", "", "[smsd]"]
        lines += [f"{key} = {value}" for key, value in smsd.items()]
        path.write_text("\n".join(lines) + "\n")

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    def start(self) -> None:
        for proc in self.procs:
            proc.start()

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()

    def check_alive(self) -> None:
        for index, proc in enumerate(self.procs):
            if not proc.alive():
                log = self.dir(index) / "smsd.log"
                tail = log.read_text()[-2000:] if log.exists() else proc.tail()
                raise RuntimeError(f"{proc.name} exited ({proc.popen and proc.popen.returncode})"
                                   f":\n{tail}")  # fmt: skip

    def stage(self, index: int, number: str, text: str) -> Path:
        """gammu-smsd-inject a text message for daemon `index`; the file it wrote, not yet
        visible to the daemon."""
        config = str(self.dir(index) / "inject-smsdrc")
        out = subprocess.run(
            [INJECT, "--config", config, "TEXT", number, "-text", text],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        found = INJECT_ANSWER.search(out.stdout + out.stderr)
        if out.returncode != 0 or found is None:
            raise RuntimeError(f"gammu-smsd-inject failed ({out.returncode}): {out.stderr}")
        return Path(found.group(1))

    def release(self, index: int, staged: Path) -> None:
        """Hand a staged message to daemon `index`: one atomic rename into its outbox."""
        os.rename(staged, self.dir(index) / "outbox" / staged.name)

    def pending(self) -> int:
        """Messages still in any outbox (not yet sent or failed)."""
        return sum(len(os.listdir(self.dir(i) / "outbox")) for i in range(len(self.links)))

    def counts(self) -> tuple[int, int]:
        """(sent, failed) files over all daemons."""
        sent = sum(len(os.listdir(self.dir(i) / "sent")) for i in range(len(self.links)))
        failed = sum(len(os.listdir(self.dir(i) / "error")) for i in range(len(self.links)))
        return sent, failed

"""The documented install (docs/hardware.md: `sudo scripts/install`) from a fresh clone of the
committed tree (uncommitted edits are not in it): it builds the wheel, installs it into a venv,
creates the service user and private data directories, and writes units that
`systemd-analyze verify` accepts; the installed server then runs as the service user and answers
on loopback.

Everything goes to a scratch directory through scripts/install's options, and the user gets a
name of its own; both are removed afterwards. Creating a user needs root (or sudo without a
password), as the real install does.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hardware.systemd_analyze import security, verify
from tests.support.procs import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
SUDO = [] if os.geteuid() == 0 else ["sudo", "-n"]

pytestmark = pytest.mark.integration


@dataclass
class Install:
    base: Path
    user: str
    output: str

    @property
    def venv(self) -> Path:
        return self.base / "opt" / "venv"

    @property
    def units(self) -> Path:
        return self.base / "units"

    @property
    def data(self) -> Path:
        return self.base / "data"


def _root(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """argv as root: directly when the tests run as root, else through sudo."""
    return subprocess.run(SUDO + argv, capture_output=True, text=True, check=False)


@pytest.fixture
def installed() -> Iterator[Install]:
    # Not below pytest's tmp_path: its 0700 parents would keep the service user out.
    base = Path(tempfile.mkdtemp(prefix="simhive-install-"))
    base.chmod(0o755)
    user = f"simhive-t{os.getpid()}"
    try:
        clone = base / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        done = _root(
            [
                str(clone / "scripts" / "install"),
                *("--prefix", str(base / "opt"), "--user", user),
                *("--data-dir", str(base / "data"), "--agent-dir", str(base / "agent")),
                *("--config-dir", str(base / "etc"), "--unit-dir", str(base / "units")),
                *("--udev-dir", str(base / "udev")),
                "--gammu",  # the optional backend: a wheel here, Debian's package on armhf
            ]
        )
        assert done.returncode == 0, done.stdout + done.stderr
        yield Install(base, user, done.stdout)
    finally:
        _root(["userdel", user])  # its group goes with it
        _root(["rm", "-rf", str(base)])


def _install_lays_out_private_data_and_shared_config(installed: Install) -> None:
    user = pwd.getpwnam(installed.user)
    assert user.pw_shell == "/usr/sbin/nologin"
    groups = subprocess.run(["id", "-nG", installed.user], capture_output=True, text=True)
    assert "dialout" in groups.stdout.split()
    for name in ("data", "agent"):
        st = (installed.base / name).stat()
        assert (st.st_mode & 0o777, st.st_uid) == (0o700, user.pw_uid), name
    st = (installed.base / "etc").stat()
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o750, 0, user.pw_gid)
    rule = (installed.base / "udev" / "77-simhive-modems.rules").read_text()
    assert rule == (ROOT / "hardware" / "udev" / "77-simhive-modems.rules").read_text()


def _wheel_installs_one_simhive_namespace(installed: Install) -> None:
    site = next(installed.venv.glob("lib/python3*/site-packages"))
    assert (site / "simhive" / "server" / "cli.py").is_file()
    # no generic top-level packages beside it
    for generic in ("server", "agent", "hardware"):
        assert not (site / generic).exists(), generic
    for script in ("simhive-server", "simhive-agent", "simhive-emulator"):
        assert (installed.venv / "bin" / script).is_file(), script
    # --gammu: the service user can load the Gammu backend's library
    python = str(installed.venv / "bin" / "python")
    loaded = _root(["runuser", "-u", installed.user, "--", python, "-c", "import gammu"])
    assert loaded.returncode == 0, loaded.stderr


def _installed_units_name_this_install_verify_and_are_rated(
    installed: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    server = (installed.units / "simhive-server.service").read_text()
    agent = (installed.units / "simhive-agent.service").read_text()
    assert f"ExecStart={installed.venv}/bin/simhive-server run" in server
    assert f"Environment=SIMHIVE_DATA={installed.data}\n" in server
    assert f"ReadWritePaths={installed.data}\n" in server
    assert f"ReadWritePaths={installed.base / 'agent'}\n" in agent
    assert f"--config {installed.base / 'etc'}/agent.toml" in agent
    for text in (server, agent):
        assert f"User={installed.user}\nGroup={installed.user}\n" in text
        # outside /var/lib there is no StateDirectory: ReadWritePaths alone names the data
        assert "StateDirectory" not in text and "/opt/simhive" not in text
    units = sorted(installed.units.glob("*.service"))
    checked = verify(*units)
    assert checked.returncode == 0 and checked.stderr == "", checked.stderr
    limits = {"simhive-server.service": 2.5, "simhive-agent.service": 4.0}
    for unit in units:
        score, word, table = security(unit)
        with capsys.disabled():
            print(f"\ninstalled {unit.name}: systemd-analyze security {score} {word}")
        assert score <= limits[unit.name], table


def _installed_server_runs_as_the_service_user(installed: Install) -> None:
    port = free_port()
    argv = [
        *SUDO,
        *("setpriv", "--reuid", installed.user, "--regid", installed.user, "--init-groups"),
        *("env", "-i", "PATH=/usr/bin:/bin", f"SIMHIVE_DATA={installed.data}"),
        str(installed.venv / "bin" / "simhive-server"),
        *("run", "--host", "127.0.0.1", "--port", str(port)),
    ]
    log = installed.base / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(port, timeout=60)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as answer:
            assert answer.status == 200
        uid = pwd.getpwnam(installed.user).pw_uid
        owners = {p.stat().st_uid for p in installed.data.iterdir()}
        assert owners == {uid}, log.read_text()
        status = Path(f"/proc/{_server_pid(proc.pid)}/status").read_text()
        uids = next(ln for ln in status.splitlines() if ln.startswith("Uid:")).split()[1:]
        assert set(uids) == {str(uid)}
    finally:
        _root(["kill", "-TERM", str(_server_pid(proc.pid))])
        proc.wait(30)
    assert proc.returncode == 0, log.read_text()
    assert "listening on http://127.0.0.1:" in log.read_text()


def _server_pid(pid: int) -> int:
    """setpriv execs the server in place; through sudo it is sudo's child."""
    if not SUDO:
        return pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0]) if children else pid


def _clone_is_left_clean(installed: Install) -> None:
    """The build copies the source first, so the checkout gains no build/ or egg-info."""
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored"],
        cwd=installed.base / "clone",
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout == ""


def test_fresh_clone_installs_and_runs_as_the_service_user(
    installed: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    # One test for one install (about 20 s): split into several, pytest-xdist could run the
    # install once per worker.
    _install_lays_out_private_data_and_shared_config(installed)
    _wheel_installs_one_simhive_namespace(installed)
    _installed_units_name_this_install_verify_and_are_rated(installed, capsys)
    _installed_server_runs_as_the_service_user(installed)
    _clone_is_left_clean(installed)


def _refusal(argv: list[str]) -> str:
    """scripts/install's last stderr line when it refuses (exit 1, no traceback)."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith("simhive install: "), done.stderr
    return last


def test_refusals_are_one_line_with_a_hint() -> None:
    script = str(ROOT / "scripts" / "install")
    nobody = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]
    as_user = nobody if os.geteuid() == 0 else []
    assert "run as root: sudo " in _refusal([*as_user, script])
    assert "unknown option '--bogus'" in _refusal([script, "--bogus"])
    assert "'relative' is not an absolute path" in _refusal([script, "--prefix", "relative"])

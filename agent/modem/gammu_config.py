"""The Gammu backend's configuration: which gammurc Gammu reads, and whether python-gammu exists.

Gammu is always configured from a file with `StateMachine.ReadConfig(Filename=...)`, never with
`SetConfig()`: `SetConfig` leaves Gammu's CNMI parameters at 0 and `SetIncomingSMS(True)` then
fails with ERR_NOTSUPPORTED, while `ReadConfig` presets them to -1. So even
a device given only as a port and connection string gets a gammurc written for it.

A user's own gammurc (e.g. the one gammu-smsd used) is read, the chosen section is copied, and
simhive adds what it needs:

- `atgen_setcnmi = ,,,1` unless the user set it: status reports then arrive directly as `+CDS`
  and reach the incoming callback in full; with ds=2 Gammu only hands over a location that cannot
  be told from an SMS.
- `logfile`/`logformat = errors`: python-gammu raises ERR_UNKNOWN for most `+CMS ERROR: <n>`
  answers, but Gammu writes `CMS Error <n>` to its log, and the code decides whether a failed
  send is retried (see gammu_convert.py). A logfile the user named is kept and read instead.
"""

from __future__ import annotations

import configparser
import importlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

# simhive is not on a package index; python-gammu is, and is all the `gammu` extra adds.
INSTALL_HINT = (
    "sudo scripts/install --gammu, or pip install 'python-gammu>=3.2' into simhive's venv"
)

# Keys simhive sets itself; a user's value for `device` is overridden only when a port was given.
_CNMI_KEY = "atgen_setcnmi"
_LOG_KEYS = ("logfile", "logformat")


class GammuUnavailable(RuntimeError):
    """python-gammu cannot be imported; the message says how to install it."""


class GammuConfigError(ValueError):
    """A gammurc that cannot be used (missing file, section, device or connection)."""


def require_gammu() -> ModuleType:
    """Import python-gammu, or raise GammuUnavailable with the install command."""
    try:
        return importlib.import_module("gammu")
    except ImportError as exc:
        raise GammuUnavailable(
            f'backend = "gammu" needs python-gammu, which is not installed ({exc}). '
            f"Install it with: {INSTALL_HINT}  (on 32-bit Raspberry Pi OS: apt install "
            "python3-gammu, see docs/gammu.md)"
        ) from None


@dataclass(frozen=True)
class GammuSettings:
    """Where the modem is and how Gammu talks to it, as written into the generated gammurc."""

    device: str
    connection: str
    model: str = ""
    extra: tuple[tuple[str, str], ...] = ()  # other keys of the user's section, in order
    user_logfile: str | None = None  # a logfile the user's gammurc named (kept, and read)
    user_logformat: str | None = None  # the user's level; "errors" and all text levels log codes
    source: str = ""  # "port" or "<gammurc path> [section]", for log lines

    @property
    def is_dummy(self) -> bool:
        return self.model.strip().lower() == "dummy"


def section_name(section: int | str | None) -> str:
    """Gammu's numbering: 0 (or None) is [gammu], 1 is [gammu1], ...; a name is taken as is."""
    if section is None or section == 0:
        return "gammu"
    if isinstance(section, int):
        if section < 0:
            raise GammuConfigError(f"gammu_section must be 0 or more, not {section}")
        return f"gammu{section}"
    name = section.strip().strip("[]")
    if not name:
        raise GammuConfigError("gammu_section must not be empty")
    return name


def from_port(port: str, connection: str, *, model: str = "") -> GammuSettings:
    """Settings for a device given as a port and a Gammu connection string (e.g. at115200)."""
    if not port.strip():
        raise GammuConfigError("the gammu backend needs a port (or a gammurc)")
    _check_value("connection", connection)
    _check_value("port", port)
    return GammuSettings(
        device=port.strip(), connection=connection.strip(), model=model, source="port"
    )


def from_gammurc(
    path: str | Path, section: int | str | None = None, *, port: str | None = None
) -> GammuSettings:
    """Settings taken from one section of an existing gammurc; `port` overrides its device."""
    p = Path(path)
    name = section_name(section)
    parser = configparser.ConfigParser(
        interpolation=None, strict=False, comment_prefixes=("#", ";")
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep keys as written
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise GammuConfigError(f"cannot read gammurc {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise GammuConfigError(f"gammurc {p} is not UTF-8 text") from None
    try:
        parser.read_string(text, source=str(p))
    except configparser.Error as exc:
        raise GammuConfigError(f"gammurc {p} cannot be parsed: {exc}") from None
    matches = [s for s in parser.sections() if s.lower() == name.lower()]
    if not matches:
        found = ", ".join(f"[{s}]" for s in parser.sections()) or "none"
        raise GammuConfigError(f"gammurc {p} has no [{name}] section (found: {found})")
    values = {k.strip().lower(): v.strip() for k, v in parser.items(matches[0])}
    device = (port or values.get("device") or values.get("port") or "").strip()
    connection = values.get("connection", "").strip()
    model = values.get("model", "").strip()
    if not device:
        raise GammuConfigError(f"gammurc {p} [{name}]: no device (give one, or a port)")
    if not connection:
        raise GammuConfigError(f"gammurc {p} [{name}]: no connection (e.g. at115200)")
    skip = {"device", "port", "connection", "model", *_LOG_KEYS}
    extra = tuple((k, v) for k, v in values.items() if k not in skip)
    for key, value in extra:
        _check_value(key, value)
    return GammuSettings(
        device=device,
        connection=connection,
        model=model,
        extra=extra,
        user_logfile=values.get("logfile") or None,
        user_logformat=values.get("logformat") or None,
        source=f"{p} [{name}]",
    )


def render(settings: GammuSettings, logfile: str) -> str:
    """The text of the generated gammurc (one [gammu] section)."""
    lines = ["; written by simhive's gammu backend; edit the source config instead", "[gammu]"]
    lines.append(f"device = {settings.device}")
    lines.append(f"connection = {settings.connection}")
    if settings.model:
        lines.append(f"model = {settings.model}")
    keys = {k for k, _ in settings.extra}
    lines += [f"{k} = {v}" for k, v in settings.extra]
    if _CNMI_KEY not in keys and not settings.is_dummy:
        lines.append(f"{_CNMI_KEY} = ,,,1")
    lines.append(f"logfile = {settings.user_logfile or logfile}")
    lines.append(f"logformat = {settings.user_logformat or 'errors'}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class WrittenConfig:
    path: Path  # the gammurc to pass to ReadConfig
    logfile: Path  # where Gammu writes its log (read for CMS/CME codes)
    owns_log: bool  # simhive may truncate it; a user's own logfile is never truncated


def write_gammurc(settings: GammuSettings, directory: str | Path | None = None) -> WrittenConfig:
    """Write the gammurc into `directory` (a new private temp dir when None)."""
    d = (
        Path(directory)
        if directory is not None
        else Path(tempfile.mkdtemp(prefix="simhive-gammu-"))
    )
    d.mkdir(parents=True, exist_ok=True)
    own_log = d / "gammu.log"
    logfile = Path(settings.user_logfile) if settings.user_logfile else own_log
    path = d / "gammurc"
    tmp = d / "gammurc.tmp"
    tmp.write_text(render(settings, str(own_log)), "utf-8")
    os.replace(tmp, path)
    return WrittenConfig(path=path, logfile=logfile, owns_log=settings.user_logfile is None)


def _check_value(key: str, value: str) -> None:
    # One value per line in an INI file: a newline would smuggle another key into the gammurc.
    if any(c in value for c in "\r\n\x00"):
        raise GammuConfigError(f"{key}: must be one line")

"""The agent's TOML configuration: parsing, validation, clear errors.

Every problem is reported as a `ConfigError` naming the key (``device[1].port``) and what is
wrong, so `simhive-agent check-config` can print it and exit non-zero instead of a traceback.
Tokens are kept out of `repr()` so a logged config object never leaks one.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from simhive.agent.modem.digits import is_digits
from simhive.agent.modem.profiles import PROFILES

BACKENDS = ("at", "gammu")  # gammu: python-gammu, an optional extra; factory: agent/backends.py
DUAL_SIM_STYLES = ("none", "cdsds", "qdsim")
LOG_LEVELS = ("debug", "info", "warning", "error")
BAUDRATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid."""


@dataclass(frozen=True)
class DeviceConfig:
    name: str
    token: str = field(repr=False)
    server: str
    backend: str = "at"
    # One port with `dual_sim` naming the switching style, or one port per slot (a composite).
    ports: tuple[str, ...] = ()
    dual_sim: str = "none"
    profile: str | None = None
    baudrate: int = 115200
    pin: str | None = field(default=None, repr=False)
    # Own number per slot, for SIMs that do not store it (AT+CNUM empty); "" = unknown.
    numbers: tuple[str, ...] = ()
    # backend = "gammu": a gammurc (+ section, 0 = [gammu]) or the port with a connection string.
    gammurc: str | None = None
    gammu_section: int | str | None = None
    connection: str | None = None
    # Prepaid balance per slot: the USSD code to ask ("" = none), the amount below which the
    # agent warns (0 = never), and how often it asks (agent/balance.py).
    balance_ussd: tuple[str, ...] = ()
    balance_warn_below: tuple[float, ...] = ()
    balance_interval_seconds: float = 6 * 3600.0

    @property
    def slots(self) -> list[int]:
        if len(self.ports) > 1:
            return list(range(len(self.ports)))
        return [0, 1] if self.dual_sim != "none" else [0]

    @property
    def single_standby(self) -> bool:
        """Two SIMs behind one radio: only one is registered at a time, switching costs seconds."""
        return len(self.ports) == 1 and self.dual_sim in ("cdsds", "qdsim")

    def number_for(self, slot: int) -> str | None:
        if slot < len(self.numbers) and self.numbers[slot]:
            return self.numbers[slot]
        return None


@dataclass(frozen=True)
class AgentConfig:
    server: str
    journal: Path
    devices: tuple[DeviceConfig, ...]
    log_level: str = "info"
    # Dispatch policy (docs/agent.md): bounded retries, then park; pause a failing SIM.
    max_attempts: int = 3
    retry_backoff_seconds: float = 30.0
    sim_failure_threshold: int = 5
    sim_pause_seconds: float = 600.0
    # Delivery reports are matched to parts sent within this window (Gammu SMSD uses 600 s).
    report_window_seconds: float = 600.0
    status_interval_seconds: float = 300.0
    # How long the incoming handler waits for the server before relying on the journal copy.
    incoming_forward_timeout: float = 10.0
    # An idle single-standby dual-SIM modem makes its other SIM active this often, so SMS and
    # status reports held by the network for that SIM come in.
    sim_visit_seconds: float = 60.0
    # A message still "sent" this long after its submit gets no report any more: the SC gives
    # up after the validity period we ask for (24 h, agent/modem/pdu.py) and reports that too,
    # so silence beyond it plus an hour's slack means the report was lost. It is then reported
    # outcome-unknown (status 9, reason says so). 0 = never: leave it at "sent" (6).
    delivery_report_timeout_seconds: float = 25 * 3600.0
    # How long one call to the server may take (a pull: its long-poll wait on top). A stalled
    # link ends a call only by this timeout, so it bounds how long the agent takes to notice.
    request_timeout_seconds: float = 30.0


_TOP_KEYS = {
    "server",
    "journal",
    "log_level",
    "device",
    "max_attempts",
    "retry_backoff_seconds",
    "sim_failure_threshold",
    "sim_pause_seconds",
    "report_window_seconds",
    "status_interval_seconds",
    "incoming_forward_timeout",
    "sim_visit_seconds",
    "delivery_report_timeout_seconds",
    "request_timeout_seconds",
}
_DEVICE_KEYS = {
    "name",
    "token",
    "token_file",
    "server",
    "backend",
    "port",
    "ports",
    "dual_sim",
    "profile",
    "baudrate",
    "pin",
    "numbers",
    "gammurc",
    "gammu_section",
    "connection",
    "balance_ussd",
    "balance_warn_below",
    "balance_interval_seconds",
}


def load(path: str | Path) -> AgentConfig:
    """Read and validate a config file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    return parse(data, base_dir=p.parent)


def parse(data: dict[str, Any], *, base_dir: Path | None = None) -> AgentConfig:
    """Validate an already-decoded TOML document. Relative paths resolve against base_dir."""
    base = base_dir or Path.cwd()
    _no_unknown(data, _TOP_KEYS, "")
    server = _url(data.get("server"), "server", required=True)
    assert server is not None
    journal_raw = _str(data.get("journal"), "journal", required=True)
    journal = Path(journal_raw)
    if not journal.is_absolute():
        journal = base / journal
    log_level = _str(data.get("log_level", "info"), "log_level", required=True).lower()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"log_level: must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}")

    raw_devices = data.get("device")
    if raw_devices is None:
        raise ConfigError("device: at least one [[device]] table is required")
    if not isinstance(raw_devices, list) or not all(isinstance(d, dict) for d in raw_devices):
        raise ConfigError("device: must be an array of tables ([[device]])")
    if not raw_devices:
        raise ConfigError("device: at least one [[device]] table is required")
    devices = tuple(_device(d, f"device[{i}]", server, base) for i, d in enumerate(raw_devices))
    _unique([d.name for d in devices], "name")
    _unique([port for d in devices for port in d.ports], "port")
    _unique([d.token for d in devices], "token", show=False)

    return AgentConfig(
        server=server,
        journal=journal,
        devices=devices,
        log_level=log_level,
        max_attempts=int(_num(data, "max_attempts", AgentConfig.max_attempts, 1, 20, integer=True)),
        retry_backoff_seconds=_num(
            data, "retry_backoff_seconds", AgentConfig.retry_backoff_seconds, 0.0, 3600.0
        ),
        sim_failure_threshold=int(
            _num(
                data,
                "sim_failure_threshold",
                AgentConfig.sim_failure_threshold,
                1,
                1000,
                integer=True,
            )
        ),
        sim_pause_seconds=_num(
            data, "sim_pause_seconds", AgentConfig.sim_pause_seconds, 1.0, 86400.0
        ),
        report_window_seconds=_num(
            data, "report_window_seconds", AgentConfig.report_window_seconds, 10.0, 7 * 86400.0
        ),
        status_interval_seconds=_num(
            data, "status_interval_seconds", AgentConfig.status_interval_seconds, 5.0, 86400.0
        ),
        incoming_forward_timeout=_num(
            data, "incoming_forward_timeout", AgentConfig.incoming_forward_timeout, 0.0, 120.0
        ),
        sim_visit_seconds=_num(
            data, "sim_visit_seconds", AgentConfig.sim_visit_seconds, 1.0, 86400.0
        ),
        delivery_report_timeout_seconds=_num(
            data,
            "delivery_report_timeout_seconds",
            AgentConfig.delivery_report_timeout_seconds,
            0.0,
            30 * 86400.0,
        ),
        request_timeout_seconds=_num(
            data, "request_timeout_seconds", AgentConfig.request_timeout_seconds, 2.0, 600.0
        ),
    )


def _device(d: dict[str, Any], where: str, default_server: str, base: Path) -> DeviceConfig:
    _no_unknown(d, _DEVICE_KEYS, where + ".")
    name = _str(d.get("name"), f"{where}.name", required=True)
    if any(c in name for c in "\r\n\t"):
        raise ConfigError(f"{where}.name: must be one line")

    if "token" in d and "token_file" in d:
        raise ConfigError(f"{where}: give token or token_file, not both")
    if "token_file" in d:
        tf = Path(_str(d["token_file"], f"{where}.token_file", required=True))
        if not tf.is_absolute():
            tf = base / tf
        try:
            token = tf.read_text("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}.token_file: cannot read {tf}: {exc}") from None
    else:
        token = _str(d.get("token"), f"{where}.token", required=True)
    if not token or any(c.isspace() for c in token) or not token.isprintable():
        raise ConfigError(f"{where}.token: must be a non-empty token without spaces")

    server = _url(d.get("server"), f"{where}.server", required=False) or default_server
    backend = _str(d.get("backend", "at"), f"{where}.backend", required=True)
    if backend not in BACKENDS:
        raise ConfigError(f"{where}.backend: must be one of {', '.join(BACKENDS)}, not {backend!r}")

    if "port" in d and "ports" in d:
        raise ConfigError(f"{where}: give port (one modem) or ports (one per SIM slot), not both")
    if "port" in d:
        ports: tuple[str, ...] = (_str(d["port"], f"{where}.port", required=True),)
    elif "ports" in d:
        raw_ports = d["ports"]
        if not isinstance(raw_ports, list) or not all(isinstance(p, str) and p for p in raw_ports):
            raise ConfigError(f"{where}.ports: must be a list of port paths")
        if not 1 <= len(raw_ports) <= 2:
            raise ConfigError(f"{where}.ports: one or two ports (one per SIM slot)")
        ports = tuple(raw_ports)
    elif backend == "gammu" and "gammurc" in d:
        ports = ()  # the gammurc's device, filled in by _gammu below
    else:
        raise ConfigError(f"{where}.port: required (the modem's serial port, e.g. /dev/ttyUSB2)")
    _unique(list(ports), f"{where}.ports")

    dual_sim = _str(d.get("dual_sim", "none"), f"{where}.dual_sim", required=True)
    if dual_sim not in DUAL_SIM_STYLES:
        raise ConfigError(
            f"{where}.dual_sim: must be one of {', '.join(DUAL_SIM_STYLES)}, not {dual_sim!r}"
        )
    if len(ports) > 1 and dual_sim != "none":
        raise ConfigError(f"{where}.dual_sim: only with a single port; with ports, each is one SIM")

    profile = d.get("profile")
    if profile is not None:
        profile = _str(profile, f"{where}.profile", required=True)
        if profile not in PROFILES:
            raise ConfigError(
                f"{where}.profile: unknown profile {profile!r}; known: {', '.join(PROFILES)}"
            )
    baudrate = d.get("baudrate", 115200)
    if not isinstance(baudrate, int) or isinstance(baudrate, bool) or baudrate not in BAUDRATES:
        raise ConfigError(
            f"{where}.baudrate: one of {', '.join(map(str, BAUDRATES))}, not {baudrate!r}"
        )
    pin = d.get("pin")
    if pin is not None:
        if isinstance(pin, int) and not isinstance(pin, bool):
            raise ConfigError(f'{where}.pin: write the PIN as a string ("0123") to keep zeros')
        pin = _str(pin, f"{where}.pin", required=True)
        if not (is_digits(pin) and 4 <= len(pin) <= 8):
            raise ConfigError(f"{where}.pin: 4 to 8 digits")

    slot_count = len(ports) if len(ports) > 1 else (2 if dual_sim != "none" else 1)
    raw_numbers = d.get("numbers", [])
    if not isinstance(raw_numbers, list) or not all(isinstance(n, str) for n in raw_numbers):
        raise ConfigError(f'{where}.numbers: a list of own numbers by slot, "" for unknown')
    if len(raw_numbers) > slot_count:
        raise ConfigError(f"{where}.numbers: {len(raw_numbers)} given for {slot_count} SIM slot(s)")
    for i, n in enumerate(raw_numbers):
        if n and not (n.startswith("+") and is_digits(n[1:]) and 6 <= len(n) <= 16):
            raise ConfigError(f"{where}.numbers[{i}]: E.164 like +4915752982212, not {n!r}")

    balance_ussd, warn_below, interval = _balance(d, where, slot_count)
    gammurc, section, connection, ports = _gammu(d, where, backend, ports, dual_sim, base)
    return DeviceConfig(
        name=name,
        token=token,
        server=server,
        backend=backend,
        ports=ports,
        dual_sim=dual_sim,
        profile=profile,
        baudrate=baudrate,
        pin=pin,
        numbers=tuple(raw_numbers),
        gammurc=gammurc,
        gammu_section=section,
        connection=connection,
        balance_ussd=balance_ussd,
        balance_warn_below=warn_below,
        balance_interval_seconds=interval,
    )


def _balance(
    d: dict[str, Any], where: str, slot_count: int
) -> tuple[tuple[str, ...], tuple[float, ...], float]:
    """balance_ussd (codes by slot), balance_warn_below (amounts by slot), the interval."""
    from simhive.agent.modem.ussd import cusd_request

    codes = d.get("balance_ussd", [])
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise ConfigError(f'{where}.balance_ussd: a list of USSD codes by slot, "" for none')
    if len(codes) > slot_count:
        raise ConfigError(f"{where}.balance_ussd: {len(codes)} given for {slot_count} SIM slot(s)")
    for i, code in enumerate(codes):
        if code:
            try:
                cusd_request(code)
            except ValueError as exc:
                raise ConfigError(f"{where}.balance_ussd[{i}]: {exc}") from None
    warn = d.get("balance_warn_below", [])
    if not isinstance(warn, list) or not all(
        isinstance(w, int | float) and not isinstance(w, bool) and w >= 0 for w in warn
    ):
        raise ConfigError(f"{where}.balance_warn_below: a list of amounts by slot, 0 for none")
    if len(warn) > slot_count:
        raise ConfigError(
            f"{where}.balance_warn_below: {len(warn)} given for {slot_count} SIM slot(s)"
        )
    try:
        interval = _num(d, "balance_interval_seconds", 6 * 3600.0, 1.0, 30 * 86400.0)
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc}") from None
    return tuple(codes), tuple(float(w) for w in warn), interval


def _gammu(
    d: dict[str, Any], where: str, backend: str, ports: tuple[str, ...], dual_sim: str, base: Path
) -> tuple[str | None, int | str | None, str | None, tuple[str, ...]]:
    """The gammu backend's keys: (gammurc, section, connection, ports with the gammurc's device)."""
    keys = [k for k in ("gammurc", "gammu_section", "connection") if k in d]
    if backend != "gammu":
        if keys:
            raise ConfigError(f'{where}.{keys[0]}: only with backend = "gammu"')
        return None, None, None, ports
    from simhive.agent.modem.gammu_config import GammuConfigError, from_gammurc, section_name

    if len(ports) > 1 or dual_sim != "none":
        raise ConfigError(f"{where}: the gammu backend drives one SIM (no ports list, no dual_sim)")
    connection = None
    if "connection" in d:
        connection = _str(d["connection"], f"{where}.connection", required=True)
        if any(c.isspace() for c in connection):
            raise ConfigError(f"{where}.connection: one word like at115200, not {connection!r}")
    section = d.get("gammu_section")
    if section is not None and (isinstance(section, bool) or not isinstance(section, int | str)):
        raise ConfigError(f"{where}.gammu_section: a number (0 = [gammu]) or a section name")
    if "gammurc" not in d:
        if section is not None:
            raise ConfigError(f"{where}.gammu_section: only together with gammurc")
        return None, None, connection, ports
    rc = Path(_str(d["gammurc"], f"{where}.gammurc", required=True))
    if not rc.is_absolute():
        rc = base / rc
    try:
        section_name(section)
        settings = from_gammurc(rc, section, port=ports[0] if ports else None)
    except GammuConfigError as exc:
        raise ConfigError(f"{where}.gammurc: {exc}") from None
    return str(rc), section, connection, (settings.device,)


def _no_unknown(d: dict[str, Any], allowed: set[str], prefix: str) -> None:
    # A typo (e.g. "delaybetweeneachsms" here, which the server owns) must not be silently ignored.
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ConfigError(
            f"{prefix}{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})"
        )


def _str(v: object, where: str, *, required: bool) -> str:
    if v is None:
        if required:
            raise ConfigError(f"{where}: required")
        return ""
    if not isinstance(v, str):
        raise ConfigError(f"{where}: must be a string, not {type(v).__name__}")
    if required and not v.strip():
        raise ConfigError(f"{where}: must not be empty")
    return v.strip()


def _url(v: object, where: str, *, required: bool) -> str | None:
    if v is None and not required:
        return None
    s = _str(v, where, required=True)
    parts = urlsplit(s)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: an http(s) URL like http://127.0.0.1:8080, not {s!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"{where}: no query, fragment or credentials in the server URL")
    return s.rstrip("/")


def _num(
    d: dict[str, Any], key: str, default: float, lo: float, hi: float, *, integer: bool = False
) -> float:
    v = d.get(key, default)
    ok = isinstance(v, int | float) and not isinstance(v, bool)
    if ok and integer and not isinstance(v, int):
        ok = False
    if not ok:
        raise ConfigError(f"{key}: must be {'an integer' if integer else 'a number'}")
    if not lo <= v <= hi:
        raise ConfigError(f"{key}: must be between {lo:g} and {hi:g}, not {v}")
    return float(v)


def _unique(values: list[str], what: str, *, show: bool = True) -> None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise ConfigError(f"{what}: {v!r} is used twice" if show else f"{what}: used twice")
        seen.add(v)

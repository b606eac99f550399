"""Fault injection per modem: parsed from JSON (control API) or the command line, with clear errors.

Each fault mirrors a failure real deployments report: operator
throttling as +CMS ERROR 41, a SIM that is busy for seconds after boot, sticks that stop answering
after hours, line noise, full SIM storage stopping all reception.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from typing import Any

from simhive.agent.modem.digits import is_digits


class FaultError(ValueError):
    """A fault specification that cannot be applied; the message says which field and why."""


@dataclass
class CmsRule:
    code: int
    count: int | None = None  # fail the next N sends; None = every send that matches
    number_pattern: str | None = None  # glob on the destination, e.g. "+4930*"
    slot: int | None = None

    def matches(self, destination: str, slot: int) -> bool:
        if self.slot is not None and self.slot != slot:
            return False
        if self.number_pattern is not None and not fnmatch.fnmatchcase(
            destination, self.number_pattern
        ):
            return False
        return self.count is None or self.count > 0

    def describe(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class HangRule:
    command: str | None = None  # upper-case prefix like "AT+CSQ"; None = every command
    count: int | None = None  # None = until cleared

    def matches(self, command: str) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        return self.command is None or command.upper().startswith(self.command)


@dataclass
class Faults:
    latency: float | None = None  # seconds per SMS submit; None = the emulator-wide --latency
    cms_errors: list[CmsRule] = field(default_factory=list)
    no_network: bool = False
    sim_missing: bool = False
    sim_busy: float = 0.0  # seconds of +CME ERROR: 14 / +CMS ERROR: 314 after boot or switch
    hang: HangRule | None = None
    garbage: float = 0.0  # seconds between bursts of junk bytes; 0 = off
    full_storage: bool = False
    pin: str | None = None  # the SIM asks for this PIN at boot (+CPIN: SIM PIN)
    urc_in_reply: bool = False  # URCs are not held during commands: they land inside replies
    switch_delay: float | None = None  # re-registration after a SIM switch; None = the profile's

    def describe(self) -> dict[str, object]:
        return {
            "latency": self.latency,
            "cms_error": [r.describe() for r in self.cms_errors],
            "no_network": self.no_network,
            "sim_missing": self.sim_missing,
            "sim_busy": self.sim_busy,
            "hang": None if self.hang is None else asdict(self.hang),
            "garbage": self.garbage,
            "full_storage": self.full_storage,
            "pin": None if self.pin is None else "****",
            "urc_in_reply": self.urc_in_reply,
            "switch_delay": self.switch_delay,
        }

    def take_cms_error(self, destination: str, slot: int) -> int | None:
        """The +CMS ERROR code for this send, consuming one count of a counted rule."""
        for rule in self.cms_errors:
            if rule.matches(destination, slot):
                if rule.count is not None:
                    rule.count -= 1
                return rule.code
        return None

    def take_hang(self, command: str) -> bool:
        if self.hang is None or not self.hang.matches(command):
            return False
        if self.hang.count is not None:
            self.hang.count -= 1
        return True


FAULT_NAMES = (
    "latency",
    "cms_error",
    "no_network",
    "sim_missing",
    "sim_busy",
    "hang",
    "garbage",
    "full_storage",
    "pin",
    "urc_in_reply",
    "switch_delay",
)


def _number(name: str, value: Any, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise FaultError(f"{name}: expected a number >= {minimum}, got {value!r}")
    return float(value)


def _opt_int(name: str, value: Any, *, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FaultError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise FaultError(f"{name}: expected true or false, got {value!r}")
    return value


def _cms_rule(value: Any) -> CmsRule:
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"code": value}
    if not isinstance(value, dict):
        raise FaultError(
            f"cms_error: expected an object {{code, count?, number_pattern?}}, got {value!r}"
        )
    unknown = set(value) - {"code", "count", "number_pattern", "slot"}
    if unknown:
        raise FaultError(f"cms_error: unknown field(s) {sorted(unknown)}")
    code = _opt_int("cms_error.code", value.get("code"), minimum=0)
    if code is None or code > 999:
        raise FaultError("cms_error.code: required, 0..999")
    pattern = value.get("number_pattern")
    if pattern is not None and not isinstance(pattern, str):
        raise FaultError(f"cms_error.number_pattern: expected a glob string, got {pattern!r}")
    return CmsRule(
        code=code,
        count=_opt_int("cms_error.count", value.get("count"), minimum=1),
        number_pattern=pattern,
        slot=_opt_int("cms_error.slot", value.get("slot"), minimum=0),
    )


def _hang(value: Any) -> HangRule | None:
    if value is False or value is None:
        return None
    if value is True:
        return HangRule()
    if isinstance(value, str):
        return HangRule(command=value.upper())
    if isinstance(value, dict):
        unknown = set(value) - {"command", "count"}
        if unknown:
            raise FaultError(f"hang: unknown field(s) {sorted(unknown)}")
        command = value.get("command")
        if command is not None and not isinstance(command, str):
            raise FaultError(f"hang.command: expected a command prefix string, got {command!r}")
        return HangRule(
            command=command.upper() if command else None,
            count=_opt_int("hang.count", value.get("count"), minimum=1),
        )
    raise FaultError(f"hang: expected true, a command prefix or {{command, count}}, got {value!r}")


def apply_faults(faults: Faults, spec: Any) -> list[str]:
    """Validate all of `spec` first, then apply it; returns the names that changed."""
    if not isinstance(spec, dict):
        raise FaultError("faults: expected a JSON object")
    unknown = set(spec) - set(FAULT_NAMES)
    if unknown:
        raise FaultError(f"unknown fault(s) {sorted(unknown)}; known: {', '.join(FAULT_NAMES)}")
    new = Faults(**{k: getattr(faults, k) for k in faults.__dataclass_fields__})
    new.cms_errors = list(faults.cms_errors)
    if "latency" in spec:
        new.latency = None if spec["latency"] is None else _number("latency", spec["latency"])
    if "cms_error" in spec:
        raw = spec["cms_error"]
        if raw is None:
            new.cms_errors = []
        else:
            items = raw if isinstance(raw, list) else [raw]
            new.cms_errors = [_cms_rule(item) for item in items]
    if "no_network" in spec:
        new.no_network = _flag("no_network", spec["no_network"])
    if "sim_missing" in spec:
        new.sim_missing = _flag("sim_missing", spec["sim_missing"])
    if "sim_busy" in spec:
        raw = spec["sim_busy"]
        new.sim_busy = 3.0 if raw is True else 0.0 if raw is False else _number("sim_busy", raw)
    if "hang" in spec:
        new.hang = _hang(spec["hang"])
    if "garbage" in spec:
        raw = spec["garbage"]
        new.garbage = 1.0 if raw is True else 0.0 if raw is False else _number("garbage", raw)
        if 0 < new.garbage < 0.01:
            raise FaultError("garbage: interval below 0.01 s would flood the port")
    if "full_storage" in spec:
        new.full_storage = _flag("full_storage", spec["full_storage"])
    if "switch_delay" in spec:
        raw_delay = spec["switch_delay"]
        new.switch_delay = None if raw_delay is None else _number("switch_delay", raw_delay)
    if "urc_in_reply" in spec:
        new.urc_in_reply = _flag("urc_in_reply", spec["urc_in_reply"])
    if "pin" in spec:
        pin = spec["pin"]
        if pin is not None and not (isinstance(pin, str) and is_digits(pin) and 4 <= len(pin) <= 8):
            raise FaultError(f"pin: expected 4 to 8 digits as a string, or null, got {pin!r}")
        new.pin = pin
    for name in new.__dataclass_fields__:
        setattr(faults, name, getattr(new, name))
    return sorted(spec)


def parse_cli_fault(text: str) -> dict[str, Any]:
    """`--fault name=value` on the command line, value as JSON or a bare word."""
    import json

    name, sep, raw = text.partition("=")
    if not sep:
        return {name.strip(): True}
    if name.strip() == "pin":
        return {"pin": raw.strip()}  # digits, but a string: "0000" must keep its zeros
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return {name.strip(): value}

"""Dates in and out of the compat API (docs/compat-api.md, "Dates").

Inside simhive every instant is an integer count of microseconds since the Unix epoch, UTC. Input
dates are read as UTC because the vendor's own examples do so (an SMS added with 12:00 is listed
at 14:00 +02:00). Output is a PHP `DateTime` serialised to JSON, which is what every existing client
parses: `{"date": "Y-m-d H:i:s.u", "timezone_type": 1|3, "timezone": ...}`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from simhive.server.core.errors import InvalidInput

US = 1_000_000
DAY_US = 86_400 * US

# re.ASCII: \d would also match other scripts' digits (fullwidth, Arabic-Indic), which no
# client means as a date and which int() would then quietly read as ASCII digits.
_DATE_RE = re.compile(
    r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?\s*$",
    re.ASCII,
)
# savepaket's `time_to_send` is documented as `DD.MM.YYYY H:i:s`.
_DOTTED_RE = re.compile(
    r"^\s*(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*$", re.ASCII
)
_OFFSET_RE = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE | re.ASCII)
_INT_RE = re.compile(r"^[+-]?\d{1,2}$", re.ASCII)


def now_us() -> int:
    return time.time_ns() // 1000


def to_us(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def from_us(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)


@dataclass(frozen=True, slots=True)
class ParsedDate:
    """An input date in UTC microseconds, and whether it carried a time of day."""

    us: int
    has_time: bool


def parse_input(value: str, name: str) -> ParsedDate:
    """Parse `YYYY-MM-DD[ HH:MM[:SS]]` (or `DD.MM.YYYY ...`) as UTC.

    Raises InvalidInput("Invalid date in <name>") for anything else, including impossible dates.
    """
    m = _DATE_RE.match(value)
    if m:
        y, mo, d, h, mi, s, frac = m.groups()
    else:
        m = _DOTTED_RE.match(value)
        if not m:
            raise InvalidInput(f"Invalid date in {name}")
        d, mo, y, h, mi, s = m.groups()
        frac = None
    try:
        dt = datetime(
            int(y),
            int(mo),
            int(d),
            int(h or 0),
            int(mi or 0),
            int(s or 0),
            int((frac or "0").ljust(6, "0")),
            tzinfo=UTC,
        )
    except ValueError:
        raise InvalidInput(f"Invalid date in {name}") from None
    if dt.year < 1970:
        raise InvalidInput(f"Invalid date in {name}")
    return ParsedDate(to_us(dt), h is not None)


@dataclass(frozen=True, slots=True)
class OutputZone:
    """Where output dates are rendered: zone identifier (PHP type 3) or fixed offset (type 1)."""

    tz: tzinfo
    name: str
    php_type: int


UTC_ZONE = OutputZone(UTC, "UTC", 3)


@lru_cache(maxsize=512)
def resolve_zone(value: str) -> OutputZone:
    """An IANA name (`Europe/Paris`, `UTC`), a whole-hour offset (`2`, `-5`) or `+02:00`.

    The vendor documents `timezone` as an int but exemplifies it with an IANA name; accept both.
    """
    text = value.strip()
    if not text:
        return UTC_ZONE
    if text.upper() in ("UTC", "Z", "GMT"):
        return UTC_ZONE
    if _INT_RE.match(text):
        hours = int(text)
        if -12 <= hours <= 14:
            return _fixed(hours * 60)
        raise InvalidInput(f"Invalid timezone: {value}")
    m = _OFFSET_RE.match(text)
    if m:
        sign, hh, mm = m.groups()
        minutes = int(hh) * 60 + int(mm or 0)
        if minutes > 14 * 60 or int(mm or 0) >= 60:
            raise InvalidInput(f"Invalid timezone: {value}")
        return _fixed(-minutes if sign == "-" else minutes)
    if "/" in text or text.isalpha():
        try:
            return OutputZone(ZoneInfo(text), text, 3)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise InvalidInput(f"Invalid timezone: {value}")


def _fixed(minutes: int) -> OutputZone:
    sign = "-" if minutes < 0 else "+"
    hh, mm = divmod(abs(minutes), 60)
    return OutputZone(timezone(timedelta(minutes=minutes)), f"{sign}{hh:02d}:{mm:02d}", 1)


def php_datetime(value_us: int | None, zone: OutputZone) -> dict[str, object] | None:
    """A PHP DateTime as json_encode renders it; None stays None (JSON null)."""
    if value_us is None:
        return None
    local = from_us(value_us).astimezone(zone.tz)
    return {
        "date": local.strftime("%Y-%m-%d %H:%M:%S.%f"),
        "timezone_type": zone.php_type,
        "timezone": zone.name,
    }


def human(value_us: int | None, zone: OutputZone) -> str | None:
    """The `*humanformat` companion: PHP `d.m.Y H:i:s`."""
    if value_us is None:
        return None
    return from_us(value_us).astimezone(zone.tz).strftime("%d.%m.%Y %H:%M:%S")


def iso(value_us: int | None) -> str | None:
    """ISO 8601 with offset, as the agent protocol uses."""
    if value_us is None:
        return None
    return from_us(value_us).replace(microsecond=0).isoformat()

"""SMPP time fields (SMPP 3.4 section 7.1.1) and receipt dates, without I/O.

Absolute: "YYMMDDhhmmsstnnp" (t tenths of a second, nn quarter hours from UTC, p "+" or "-").
Relative: "YYMMDDhhmmss000R" counted from now (a month as 30 days, a year as 365, which is what
SMSCs do). An empty field means "not given".
"""

from __future__ import annotations

import datetime as dt

from simhive.server.core.dates import US

_UTC = dt.UTC


class TimeError(ValueError):
    pass


def parse(value: str, now: int) -> int | None:
    """An SMPP time -> UTC microseconds; None for an empty field; TimeError when malformed."""
    if value == "":
        return None
    if len(value) != 16 or not value[:15].isdigit() or value[15] not in "+-R":
        raise TimeError(f"not an SMPP time: {value!r}")
    yy, mo, dd, hh, mi, ss = (int(value[i : i + 2]) for i in range(0, 12, 2))
    tenths, quarters, sign = int(value[12]), int(value[13:15]), value[15]
    if sign == "R":
        seconds = ((yy * 365 + mo * 30 + dd) * 24 + hh) * 3600 + mi * 60 + ss
        return now + seconds * US
    if quarters > 48:
        raise TimeError(f"UTC offset out of range: {value!r}")
    try:
        local = dt.datetime(2000 + yy, mo, dd, hh, mi, ss, tenths * 100_000, tzinfo=_UTC)
    except ValueError:
        raise TimeError(f"not a date: {value!r}") from None
    offset = dt.timedelta(minutes=15 * quarters) * (1 if sign == "+" else -1)
    return int((local - offset).timestamp() * US)


def absolute(value_us: int) -> str:
    """UTC microseconds -> "YYMMDDhhmmss000+" (query_sm_resp final_date)."""
    t = dt.datetime.fromtimestamp(value_us / US, _UTC)
    return t.strftime("%y%m%d%H%M%S") + f"{t.microsecond // 100_000}00+"


def receipt_date(value_us: int) -> str:
    """UTC microseconds -> "YYMMDDhhmm", the receipt text's date format."""
    return dt.datetime.fromtimestamp(value_us / US, _UTC).strftime("%y%m%d%H%M")

"""Compat-API leniency rules for single fields (docs/compat-api.md), as pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simhive.server.api.params import scalar_text
from simhive.server.api.params import short as _short
from simhive.server.core.dates import DAY_US, parse_input
from simhive.server.core.errors import InvalidInput

_INT64_MAX = 2**63 - 1


def to_int(value: Any, name: str) -> int | None:
    """An integer parameter; absent/empty is None, anything non-numeric a clear error."""
    if type(value) is int and abs(value) <= _INT64_MAX:  # JSON numbers need no parsing
        return value
    text = scalar_text(value, name)
    if text is None or not text.strip():
        return None
    text = text.strip()
    # int() also reads "1_000" and other scripts' digits ("١٢" is 12): no client means those.
    if not text.isascii() or "_" in text:
        raise InvalidInput(f"Invalid {name}: {_short(text)}")
    try:
        number = int(text, 10)
    except ValueError:
        raise InvalidInput(f"Invalid {name}: {_short(text)}") from None
    if abs(number) > _INT64_MAX:
        raise InvalidInput(f"Invalid {name}: {_short(text)}")
    return number


def required_int(value: Any, name: str) -> int:
    number = to_int(value, name)
    if number is None:
        raise InvalidInput(f"Parameter {name} is required")
    return number


def to_sim(value: Any) -> int:
    """`sim`: 0 = slot 1, 1 = slot 2, missing = 0; channel values (2-5) are refused, not guessed."""
    if value is None or (type(value) is int and value in (0, 1)):
        return value or 0
    text = scalar_text(value, "sim")
    if text is None or not text.strip():
        return 0
    text = text.strip()
    if text in ("0", "1"):
        return int(text)
    raise InvalidInput(f"Unsupported sim {_short(text)}")


def to_send_sim(value: Any) -> int | None:
    """`sim` of a message to send: as `to_sim`, plus `any` (None): any SIM of the device,
    chosen when one of them asks for work (the device's own pool)."""
    if isinstance(value, str) and value.strip().lower() == "any":
        return None
    return to_sim(value)


def to_bool(value: Any, name: str) -> bool:
    """`urgent` and friends: 1/0/true/false in any case; empty is false (the Java SDK sends
    true/false, PHP sends 1/0)."""
    if value is None or value is True or value is False:
        return bool(value)
    if type(value) is int and value in (0, 1):
        return value == 1
    text = scalar_text(value, name)
    if text is None:
        return False
    folded = text.strip().lower()
    if folded in ("", "0", "false", "no", "off"):
        return False
    if folded in ("1", "true", "yes", "on"):
        return True
    raise InvalidInput(f"Invalid value for {name}: {_short(text)}")


def customer_id(source: Mapping[str, Any]) -> int | None:
    """`customerid`, or the camelCase `customerId` that the PHP and Java SDKs send."""
    value = source.get("customerid")
    if scalar_text(value, "customerid") is None:
        value = source.get("customerId")
    return to_int(value, "customerid")


def to_time(value: Any, name: str, *, end_of_day: bool = False) -> int | None:
    """A UTC input date; with end_of_day a date without time covers that whole day."""
    if value is None:
        return None
    text = scalar_text(value, name)
    if text is None or not text.strip() or text.strip() == "0":
        return None
    parsed = parse_input(text, name)
    if end_of_day and not parsed.has_time:
        return parsed.us + DAY_US - 1
    return parsed.us

"""Number normalisation and dates (docs/compat-api.md) as pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simhive.server.core.dates import human, parse_input, php_datetime, resolve_zone, to_us
from simhive.server.core.errors import InvalidInput
from simhive.server.core.numbers import normalise, region_of


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+4915752982212", "+4915752982212"),
        ("+49 157 52982212", "+4915752982212"),
        ("+1- (928) -111-22-33", "+19281112233"),
        (" 4915752982212", "+4915752982212"),  # unencoded "+"
        ("004915752982212", "+4915752982212"),
        ("015752982212", "015752982212"),  # national numbers are kept
        (" 015752982212", "015752982212"),
        ("+49.157/529.822.12", "+4915752982212"),
        ("+1 17642031984", "+117642031984"),  # the vendor docs' own example
        ("112", "112"),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "   ", "abc", "12", "+0157529", "+", "1" * 21, "+" + "4" * 16, "+49 157 x", "٣٣٣٣"]
)
def test_normalise_rejects(raw: str) -> None:
    with pytest.raises(InvalidInput, match="Invalid phone number"):
        normalise(raw)


def test_prefix_rules() -> None:
    rules = (("0", "+49"), ("49", "+49"))
    assert normalise("015752982212", rules) == "+4915752982212"
    assert normalise("4915752982212", rules) == "+4915752982212"
    assert normalise("+4915752982212", rules) == "+4915752982212"


def test_region_of() -> None:
    assert region_of("+4915752982212") == "de"
    assert region_of("015752982212") is None


@given(st.text(max_size=30))
def test_normalise_never_crashes(raw: str) -> None:
    try:
        out = normalise(raw)
    except InvalidInput:
        return
    digits = out.removeprefix("+")
    assert digits.isdigit() and 3 <= len(digits) <= 20


def test_parse_input_forms() -> None:
    assert parse_input("2021-08-01", "t").us == to_us_str("2021-08-01 00:00:00")
    assert parse_input("2021-08-01 12:00", "t").us == to_us_str("2021-08-01 12:00:00")
    assert parse_input("2021-08-01 12:00:05", "t").has_time
    assert not parse_input("2021-08-01", "t").has_time
    assert parse_input("01.08.2021 12:00:05", "t").us == to_us_str("2021-08-01 12:00:05")
    for bad in ("2021-13-01", "2021-02-29", "x", "2021-08-01 24:00", "2021/08/01"):
        with pytest.raises(InvalidInput, match="Invalid date in t"):
            parse_input(bad, "t")


def to_us_str(text: str) -> int:
    from datetime import UTC, datetime

    return to_us(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC))


def test_php_datetime_and_human() -> None:
    value = to_us_str("2020-03-28 20:10:29")
    assert php_datetime(value, resolve_zone("UTC")) == {
        "date": "2020-03-28 20:10:29.000000",
        "timezone_type": 3,
        "timezone": "UTC",
    }
    assert php_datetime(value, resolve_zone("Europe/Paris")) == {
        "date": "2020-03-28 21:10:29.000000",
        "timezone_type": 3,
        "timezone": "Europe/Paris",
    }
    assert php_datetime(value, resolve_zone("3"))["timezone"] == "+03:00"  # type: ignore[index]
    assert php_datetime(None, resolve_zone("UTC")) is None
    assert human(value, resolve_zone("UTC")) == "28.03.2020 20:10:29"


@pytest.mark.parametrize(
    "bad", ["Nowhere/City", "+25", "99", "12:00", "UTC+1:99", "+\u0662", "\uff12"]
)
def test_resolve_zone_rejects(bad: str) -> None:
    with pytest.raises(InvalidInput, match="Invalid timezone"):
        resolve_zone(bad)

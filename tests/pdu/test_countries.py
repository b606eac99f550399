"""MCC -> country table and IMSI / operator code splitting."""

import pytest

from simhive.agent.modem.countries import (
    MCC_TO_COUNTRY,
    country_for_imsi,
    country_for_mcc,
    country_for_operator,
    split_imsi,
    split_operator_code,
)


@pytest.mark.parametrize(
    ("mcc", "country"),
    [
        ("262", "de"),
        (262, "de"),
        ("234", "gb"),
        ("235", "gb"),
        ("208", "fr"),
        ("250", "ru"),
        ("404", "in"),
        ("405", "in"),
        ("440", "jp"),
        ("460", "cn"),
        ("505", "au"),
        ("655", "za"),
        ("724", "br"),
        ("302", "ca"),
        ("334", "mx"),
    ],
)
def test_known_mccs(mcc, country) -> None:
    assert country_for_mcc(mcc) == country


def test_united_states_owns_310_to_316() -> None:
    assert {country_for_mcc(m) for m in range(310, 317)} == {"us"}


@pytest.mark.parametrize("mcc", ["901", "001", "999", "", "abc", "26"])
def test_unknown_or_non_geographic(mcc) -> None:
    assert country_for_mcc(mcc) is None


def test_table_shape() -> None:
    assert len(MCC_TO_COUNTRY) > 230
    for mcc, cc in MCC_TO_COUNTRY.items():
        assert len(mcc) == 3 and mcc.isdigit() and mcc[0] in "234567"
        assert len(cc) == 2 and cc.isalpha() and cc.islower()


def test_operator_codes() -> None:
    assert split_operator_code("26201") == ("262", "01")
    assert split_operator_code('"310260"') == ("310", "260")
    assert split_operator_code("2620") is None
    assert split_operator_code("Telekom") is None
    assert country_for_operator("23415") == "gb"
    assert country_for_operator("") is None


def test_imsi_split() -> None:
    assert split_imsi("262011234567890") == ("262", "01")
    assert split_imsi("310260123456789") == ("310", "260")
    assert split_imsi("404451234567890", mnc_length=3) == ("404", "451")
    assert split_imsi("12345") is None
    assert split_imsi("26201abc") is None
    assert country_for_imsi("262011234567890") == "de"
    assert country_for_imsi("not an imsi") is None
    with pytest.raises(ValueError):
        split_imsi("262011234567890", mnc_length=4)

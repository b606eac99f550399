"""Translations between python-gammu's data and simhive's types, without a device."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gammu
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from simhive.agent.modem import pdu
from simhive.agent.modem.base import SendError, SendOutcome
from simhive.agent.modem.gammu_backend import GammuModem
from simhive.agent.modem.gammu_config import from_port
from simhive.agent.modem.gammu_convert import (
    deliver,
    delivery_report,
    is_link_error,
    last_modem_code,
    operator_code,
    send_error_from_gammu,
    signal_dbm,
    sim_info,
)
from simhive.agent.modem.gammu_session import PartFailed, send_parts
from simhive.agent.modem.reassembly import Reassembler


def gsm_error(name: str, where: str = "SendSMS") -> Exception:
    cls = getattr(gammu, name)
    return cls({"Text": "text", "Where": where, "Code": 1})  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("name", "outcome", "status"),
    [
        ("ERR_TIMEOUT", SendOutcome.UNKNOWN, 9),  # the submit may have reached the network
        ("ERR_DEVICEREADERROR", SendOutcome.UNKNOWN, 9),
        ("ERR_DEVICEWRITEERROR", SendOutcome.RETRY, 9),  # nothing was written
        ("ERR_DEVICENOTEXIST", SendOutcome.RETRY, 9),
        ("ERR_NETWORK_ERROR", SendOutcome.RETRY, 9),
        ("ERR_UNKNOWN", SendOutcome.RETRY, 9),
        ("ERR_GETTING_SMSC", SendOutcome.RETRY, 9),
        ("ERR_BUG", SendOutcome.PERMANENT, 11),
        ("ERR_NOTSUPPORTED", SendOutcome.PERMANENT, 11),
        ("ERR_SECURITYERROR", SendOutcome.PERMANENT, 100),
        ("ERR_EMPTYSMSC", SendOutcome.PERMANENT, 100),
        ("ERR_INVALIDDATA", SendOutcome.RETRY, 9),  # unclassified: bounded retries
    ],
)
def test_gammu_errors_without_a_modem_code(name: str, outcome: SendOutcome, status: int) -> None:
    err = send_error_from_gammu(gsm_error(name), parts_sent=1, modem_code=None)
    assert (err.outcome, err.status, err.parts_sent) == (outcome, status, 1)
    assert name in str(err) and "part 2" in str(err)


def test_the_modem_code_from_gammus_log_decides() -> None:
    log = b'1 "AT+CMGS=17"\nCMS Error 38: "x"\n3 "+CMS ERROR: 1"\nCMS Error 1: "Unassigned"\n'
    assert last_modem_code(log) == ("CMS", 1)
    assert last_modem_code(b"CME Error 14: busy") == ("CME", 14)
    assert last_modem_code(b"nothing here") is None
    err = send_error_from_gammu(gsm_error("ERR_UNKNOWN"), parts_sent=0, modem_code=("CMS", 1))
    assert (err.outcome, err.cms) == (SendOutcome.PERMANENT, 1)
    busy = send_error_from_gammu(gsm_error("ERR_UNKNOWN"), parts_sent=0, modem_code=("CME", 14))
    assert (busy.outcome, busy.cme) == (SendOutcome.RETRY, 14)


def test_link_errors() -> None:
    assert is_link_error(gsm_error("ERR_DEVICEWRITEERROR"))
    assert is_link_error(gsm_error("ERR_TIMEOUT"))
    assert not is_link_error(gsm_error("ERR_UNKNOWN"))
    assert not is_link_error(ValueError("x"))


def test_network_and_signal() -> None:
    assert operator_code("262 01") == "26201" and operator_code("310 260") == "310260"
    assert operator_code("") is None and operator_code("GammuT3l") is None
    assert signal_dbm({"SignalStrength": -71}) == -71
    assert signal_dbm({"SignalStrength": -1}) is None  # Gammu's "unknown"
    assert signal_dbm({"SignalStrength": 42}) is None  # the dummy driver's fixed answer
    assert signal_dbm(None) is None
    roaming = sim_info(
        slot=0,
        imsi="262019241157815",
        network={"NetworkCode": "232 03", "NetworkName": "Magenta", "State": "RoamingNetwork"},
        quality={"SignalStrength": -85},
        number=None,
    )
    assert (roaming.operator_code, roaming.country_iso) == ("23203", "at")
    assert roaming.registered and roaming.roaming and roaming.iccid is None
    searching = sim_info(slot=0, imsi=None, network={"State": "RequestingNetwork"}, quality=None,
                         number="+491601112233")  # fmt: skip
    assert not searching.registered and searching.number == "+491601112233"


def test_status_report_from_gammus_decoder() -> None:
    # A verified +CDS example.
    raw = bytes.fromhex("079194710167000006010C9194611011223362112240435000621122404350" + "0000")
    decoded = gammu.DecodePDU(raw, SMSC=True)
    report = delivery_report(0, decoded)
    assert (report.reference, report.recipient, report.status) == (1, "+491601112233", 0)
    assert report.sc_timestamp == datetime(2026, 11, 22, 4, 34, 5, tzinfo=UTC)
    with pytest.raises(ValueError):
        delivery_report(0, {"Type": "Status_Report"})


def test_gammu_and_at_give_the_same_idempotency_key() -> None:
    # The same stored parts read by either backend must be recognised by the server as one SMS.
    sent = datetime(2026, 11, 22, 5, 0, 0, tzinfo=UTC)
    text = "Grüße ✓ " * 12
    coding, chunks = pdu.split_text(text)
    at_side, gammu_side = Reassembler(), Reassembler()
    at_msg = gammu_msg = None
    for seq, chunk in enumerate(chunks, 1):
        concat = pdu.Concat(reference=77, total=len(chunks), seq=seq)
        raw = pdu.encode_deliver(
            "+4917012345678",
            chunk,
            sc_timestamp=sent,
            smsc="+491710760000",
            coding=coding,
            concat=concat,
        )
        decoded = pdu.decode_incoming(raw)
        assert isinstance(decoded, pdu.Deliver)
        at_msg = at_side.add(decoded, scope="0") or at_msg
        gammu_msg = gammu_side.add(deliver(gammu.DecodePDU(raw, SMSC=True)), scope="0") or gammu_msg
    assert at_msg is not None and gammu_msg is not None
    assert gammu_msg.text == at_msg.text == text
    assert gammu_msg.key == at_msg.key and gammu_msg.parts == at_msg.parts == 2


class FakeSM:
    """SendSMS answers 7, then fails the way Gammu does after logging the modem's code."""

    def __init__(self, log: Path) -> None:
        self.log, self.calls = log, 0

    def SendSMS(self, part: dict[str, Any]) -> int:  # python-gammu's method name
        self.calls += 1
        if self.calls == 1:
            return 7
        with self.log.open("ab") as f:
            f.write(b'3 "+CMS ERROR: 42"\nCMS Error 42: "Congestion"\n')
        raise gammu.ERR_UNKNOWN({"Text": "Unknown error.", "Where": "SendSMS", "Code": 27})


def test_a_failure_in_part_two_counts_part_one(tmp_path: Path) -> None:
    modem = GammuModem(from_port("/dev/null", "at"), config_dir=tmp_path)
    modem.rc.logfile.write_bytes(b'CMS Error 1: "an old line before this send"\n')
    with pytest.raises(PartFailed) as failed:
        send_parts(gammu, modem.gammu_log, FakeSM(modem.rc.logfile), [{}, {}, {}])
    assert failed.value.sent == [7] and failed.value.code == ("CMS", 42)
    err = send_error_from_gammu(failed.value.exc, parts_sent=1, modem_code=failed.value.code)
    assert isinstance(err, SendError)
    assert (err.outcome, err.cms, err.parts_sent) == (SendOutcome.RETRY, 42, 1)


_ALPHABET = "abcXYZ 0189.,!?@£$¥èéÄÖÑÜäöñüß€[]{}^~|\\\n" + "çâ✓😀ЖĞ\u00a0"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(alphabet=_ALPHABET, min_size=1, max_size=400),
    ref=st.integers(min_value=0, max_value=255),
)
def test_key_parity_holds_for_any_text(text: str, ref: int) -> None:
    # Property form of the test above: whatever the text, coding and part count, Gammu's
    # decoding of the stored parts and simhive's own give one message with one key.
    coding, chunks = pdu.split_text(text)
    assume(not (coding is pdu.Coding.UCS2 and "~" in text))  # Gammu's quirk, tested below
    sent = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    at_side, gammu_side = Reassembler(), Reassembler()
    at_msg = gammu_msg = None
    for seq, chunk in enumerate(chunks, 1):
        concat = pdu.Concat(ref, len(chunks), seq) if len(chunks) > 1 else None
        raw = pdu.encode_deliver(
            "+4917012345678", chunk, sc_timestamp=sent, smsc="+491710760000", coding=coding,
            concat=concat,
        )  # fmt: skip
        decoded = pdu.decode_incoming(raw)
        assert isinstance(decoded, pdu.Deliver)
        at_msg = at_side.add(decoded, scope="0") or at_msg
        gammu_msg = gammu_side.add(deliver(gammu.DecodePDU(raw, SMSC=True)), scope="0") or gammu_msg
    assert at_msg is not None and gammu_msg is not None
    assert (gammu_msg.text, gammu_msg.key, gammu_msg.parts) == (
        at_msg.text,
        at_msg.key,
        at_msg.parts,
    )


def test_known_gammu_quirk_tilde_in_ucs2_eats_the_next_character() -> None:
    # Gammu 1.45.1 (python-gammu 3.5.1) decodes a UCS2 "~X" as "~~": the character after a
    # tilde is lost before simhive sees it, so the Gammu backend cannot deliver it. GSM 7-bit
    # messages are not affected. docs/gammu.md lists this; when this test fails, Gammu has
    # fixed it and the note can go.
    sent = datetime(2026, 1, 2, tzinfo=UTC)
    raw = pdu.encode_deliver("+4917012345678", "~Ğ", sc_timestamp=sent, coding=pdu.Coding.UCS2)
    assert gammu.DecodePDU(raw)["Text"] == "~~"
    seven = pdu.encode_deliver("+4917012345678", "~a€", sc_timestamp=sent, coding=pdu.Coding.GSM7)
    assert deliver(gammu.DecodePDU(seven)).text == "~a€"

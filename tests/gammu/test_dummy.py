"""The Gammu backend over Gammu's dummy driver: lifecycle, the send loop, polling receive.

The dummy driver is a phone made of files: fixed identity answers, SendSMS
that only encodes and returns reference 255, and an inbox folder that tests fill with smsbackup
files. It has no callbacks, so received messages come in through the backend's sweep.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
from pathlib import Path
from typing import Any

import gammu
import pytest

from simhive.agent.modem import pdu
from simhive.agent.modem.base import (
    IncomingSms,
    ModemState,
    SendError,
    SendOutcome,
)
from simhive.agent.modem.gammu_backend import GammuModem, open_gammu_modem
from simhive.agent.modem.gammu_config import from_port
from tests.gammu.conftest import Recorder, make_dummy_phone

SENDER = "+4917012345678"
_names = itertools.count(1)


def dummy_modem(phone: Path, **options: Any) -> GammuModem:
    options.setdefault("sweep_interval", 0.3)
    options.setdefault("health_interval", 30.0)
    return GammuModem(from_port(str(phone), "none", model="dummy"), **options)


def drop_sms(phone: Path, staging: Path, text: str, *, sender: str = SENDER) -> list[str]:
    """Put a (possibly multipart) received SMS into the phone's SIM inbox as smsbackup files.

    Gammu's own AddSMS writes them into a staging phone; each file is then renamed into place,
    so the backend's sweep never sees a half-written file.
    """
    sm = gammu.StateMachine()
    sm.SetConfig(0, {"Model": "dummy", "Connection": "none", "Device": str(staging)})
    sm.Init()
    parts = gammu.EncodeSMS({"Entries": [{"ID": "ConcatenatedAutoTextLong", "Buffer": text}]})
    names = []
    for part in parts:
        part.update(Folder=1, State="UnRead", Number=sender, Type="Deliver")
        part["SMSC"] = {"Number": "+491710760000"}
        _, location = sm.AddSMS(part)
        name = f"{next(_names) + 100}"
        os.rename(staging / "sms" / "1" / str(location), phone / "sms" / "1" / name)
        names.append(name)
    sm.Terminate()
    return names


def inbox_files(phone: Path) -> list[str]:
    return sorted(os.listdir(phone / "sms" / "1"))


@pytest.fixture
def staging(tmp_path: Path) -> Path:
    return make_dummy_phone(tmp_path / "staging")


async def test_lifecycle_identity_and_sim_info(dummy_phone: Path) -> None:
    events = Recorder()
    modem = dummy_modem(dummy_phone)
    await modem.start(events)
    try:
        assert modem.state is ModemState.READY
        assert events.states()[:2] == [ModemState.CONNECTING, ModemState.READY]
        assert modem.identity.manufacturer == "Gammu"
        assert modem.identity.model == "Dummy"
        assert modem.identity.imei == "999999999999999"
        [sim] = await modem.sim_info()
        assert sim.imsi == "994299429942994"
        assert sim.operator_code == "99999"
        assert sim.country_iso is None  # MCC 999 is nobody's country
        assert sim.registered and not sim.roaming
        assert sim.iccid is None  # Gammu cannot read it: unknown, never invented
        assert sim.signal_dbm is None  # the dummy's "42" is no dBm reading
        assert modem.slots == [0]
        # The gammurc was written and read from a file (SetConfig breaks SetIncomingSMS).
        text = modem.rc.path.read_text()
        assert "model = dummy" in text and f"device = {dummy_phone}" in text
        described = modem.describe()
        assert (described["device"], described["connection"], described["state"]) == (
            str(dummy_phone), "none", "ready",
        )  # fmt: skip
        assert described["model"] == "Dummy" and described["gammurc"] == str(modem.rc.path)
        # The dummy accepts SetIncomingSMS (it never calls back: sweeps bring its messages).
        assert described["incoming_notifications"] is True
    finally:
        await modem.stop()
    assert modem.state.value == "disconnected"
    assert not modem.rc.path.parent.exists()  # the private gammurc directory is cleaned up


async def test_gammurc_file_with_section(dummy_phone: Path, tmp_path: Path) -> None:
    rc = tmp_path / "gammurc"
    rc.write_text(
        "[gammu]\ndevice = /dev/nonexistent\nconnection = at\n\n"
        f"[gammu1]\nmodel = dummy\nconnection = none\ndevice = {dummy_phone}\n"
        "[smsd]\nservice = files\n"
    )
    modem = open_gammu_modem(gammurc=rc, gammu_section=1, sweep_interval=30.0)
    events = Recorder()
    await modem.start(events)
    try:
        assert modem.state is ModemState.READY, modem.state_reason
        assert modem.identity.model == "Dummy"
    finally:
        await modem.stop()


async def test_send_loop_one_reference_per_part(dummy_phone: Path) -> None:
    modem = dummy_modem(dummy_phone)
    await modem.start(Recorder())
    try:
        single = await modem.send("+491601112233", "hello")
        assert single.references == [255] and single.encoding == "gsm7"
        multi = await modem.send("+491601112233", "x" * 400)
        assert multi.references == [255, 255, 255] and multi.encoding == "gsm7"
        uni = await modem.send("+491601112233", "Grüße ✓ " * 20)
        assert uni.encoding == "ucs2" and len(uni.references) == 3
        no_report = await modem.send("+491601112233", "plain", status_report=False)
        assert no_report.references == [255]
        with pytest.raises(SendError) as bad:
            await modem.send("+49 160 abc", "x")
        assert bad.value.outcome is SendOutcome.PERMANENT
        with pytest.raises(SendError) as slot:
            await modem.send("+491601112233", "x", slot=1)
        assert slot.value.outcome is SendOutcome.PERMANENT
    finally:
        await modem.stop()


async def test_parts_and_coding_agree_with_the_at_backends_encoder(dummy_phone: Path) -> None:
    # Gammu picks coding and splits on its own (ConcatenatedAutoTextLong); the AT backend uses
    # agent/modem/pdu.py. The same text must cost the same parts in the same coding.
    alphabet = (
        "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCXYZÄÖÑÜ§¿abcxyzäöñüà"
        "^{}\\[~]|€\n\r" + "çâê`✓😀\u00a0ĞşЖ"
    )
    rng = random.Random(20261122)
    texts = ["", "€" * 80, "€" * 81, "a" * 160, "a" * 161, "[" * 77, "😀" * 35, "😀" * 34 + "a"]
    for _ in range(150):
        pool = alphabet if rng.random() < 0.5 else alphabet[:90]
        size = rng.choice([1, 69, 70, 71, 152, 153, 160, 161, 306, 307, 500])
        texts.append("".join(rng.choice(pool) for _ in range(size)))
    modem = dummy_modem(dummy_phone)
    await modem.start(Recorder())
    try:
        for text in texts:
            ours = pdu.encode_submit("+491601112233", text, concat_reference=1)
            result = await modem.send("+491601112233", text)
            assert (len(result.references), result.encoding) == (
                len(ours),
                ours[0].coding.value,
            ), repr(text)
    finally:
        await modem.stop()


async def test_polling_receive_multipart_deleted_after_handler(
    dummy_phone: Path, staging: Path
) -> None:
    events = Recorder()
    modem = dummy_modem(dummy_phone)
    await modem.start(events)
    try:
        text = "Long message from the dummy inbox. " * 10
        drop_sms(dummy_phone, staging, text)
        drop_sms(dummy_phone, staging, "short one", sender="+4917099999999")
        assert len(inbox_files(dummy_phone)) == 4
        got = await events.wait(lambda: events.of(IncomingSms)[1:] and events.of(IncomingSms))
        by_sender = {sms.sender: sms for sms in got}
        long = by_sender[SENDER]
        assert long.text == text and long.parts == 3 and not long.incomplete
        assert long.key and len(long.storage) == 3
        assert by_sender["+4917099999999"].text == "short one"
        await events.wait(lambda: inbox_files(dummy_phone) == [] or None)
    finally:
        await modem.stop()


async def test_handler_failure_keeps_the_message_and_the_key(
    dummy_phone: Path, staging: Path
) -> None:
    events = Recorder()
    refuse = {"on": True}
    events.fail = lambda e: isinstance(e, IncomingSms) and refuse["on"]
    modem = dummy_modem(dummy_phone)
    await modem.start(events)
    try:
        drop_sms(dummy_phone, staging, "keep me until the journal has me")
        await events.wait(lambda: events.calls >= 4 or None)  # start events + refused sweeps
        before = events.calls
        await events.wait(lambda: events.calls >= before + 2 or None)  # refused again, twice
        assert len(inbox_files(dummy_phone)) == 1  # still stored: never deleted unseen
        refuse["on"] = False
        [sms] = await events.wait(lambda: events.of(IncomingSms))
        assert sms.text == "keep me until the journal has me"
        await events.wait(lambda: inbox_files(dummy_phone) == [] or None)
        await asyncio.sleep(0.8)  # two more sweeps: nothing handed over twice
        assert len(events.of(IncomingSms)) == 1
    finally:
        await modem.stop()


async def test_missing_part_is_released_incomplete_after_the_timeout(
    dummy_phone: Path, staging: Path
) -> None:
    events = Recorder()
    modem = dummy_modem(dummy_phone, reassembly_timeout=1.0)
    await modem.start(events)
    try:
        names = drop_sms(dummy_phone, staging, "part one and part two " * 10)
        os.unlink(dummy_phone / "sms" / "1" / names[1])  # part 2 never arrives
        [sms] = await events.wait(lambda: events.of(IncomingSms), within=20)
        assert sms.incomplete and sms.parts == 2
        assert sms.text.startswith("part one and part two")
        await events.wait(lambda: inbox_files(dummy_phone) == [] or None)
    finally:
        await modem.stop()


async def test_missing_device_starts_disconnected_and_sends_retry(tmp_path: Path) -> None:
    events = Recorder()
    modem = open_gammu_modem(port=str(tmp_path / "no-such-tty"), connection="at115200")
    modem.supervisor.backoff = (0.2, 0.5)  # retry quickly in this test
    await modem.start(events)
    try:
        assert modem.state is ModemState.DISCONNECTED
        assert "init failed" in modem.state_reason
        with pytest.raises(SendError) as failed:
            await modem.send("+491601112233", "x")
        assert failed.value.outcome is SendOutcome.RETRY
        [sim] = await modem.sim_info()
        assert not sim.present and sim.iccid is None
        # The supervisor keeps trying (CONNECTING again) without an agent restart.
        await events.wait(lambda: events.states().count(ModemState.CONNECTING) >= 3 or None)
    finally:
        await modem.stop()

"""Pieces of the field tools that need no process: USSD decoding and amounts, the balance
settings, the token shape, and how a port's holder is found from /proc and lock files."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Any

import pytest

from simhive.agent.config import ConfigError, DeviceConfig, parse
from simhive.agent.modem import gsm7
from simhive.agent.modem.portaccess import Roots, explain_open_error, holders
from simhive.agent.modem.ussd import cusd_request, decode_ussd, parse_amount, parse_cusd
from simhive.agent.tokens import token_problem
from simhive.server.core.security import looks_like_token, new_token

DOC = (Path(__file__).resolve().parents[2] / "docs" / "agent.md").read_text()


def test_cusd_answers_in_each_coding() -> None:
    assert parse_cusd('0,"Balance: 5.00 EUR",15').text == "Balance: 5.00 EUR"
    ucs2 = "Баланс 12.30 руб".encode("utf-16-be").hex().upper()
    assert parse_cusd(f'0,"{ucs2}",72').text == "Баланс 12.30 руб"
    # 0x11: UCS-2 preceded by a two-character language code
    assert decode_ussd(("de" + "\r\n" + "Guthaben 2 €").encode("utf-16-be").hex(), 0x11) == (
        "Guthaben 2 €"
    )
    packed = gsm7.pack(gsm7.encode("Ihr Guthaben: 3,50 EUR")).hex().upper()
    assert parse_cusd(f'1,"{packed}",15').text == "Ihr Guthaben: 3,50 EUR"
    # Digits only are text, never taken for packed septets.
    assert parse_cusd('0,"1234",15').text == "1234"
    reply = parse_cusd("4")
    assert (reply.status, reply.text, reply.ok, reply.describe()) == (
        4, "", False, "operation not supported"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("Ihr Guthaben beträgt 12,34 EUR.", 12.34, "EUR"),
        ("Balance: $5.00, valid to 31.12.2026", 5.0, "$"),
        ("Баланс 12.30 руб", 12.3, "руб"),
        ("Your credit is 7.50. Bonus: 100 SMS", 7.5, None),
        ("€ 0,99 left", 0.99, "€"),
        ("No balance information", None, None),
    ],
)
def test_amounts_in_operator_texts(text: str, amount: float | None, currency: str | None) -> None:
    assert parse_amount(text) == (amount, currency)


def test_a_ussd_code_cannot_smuggle_at_commands() -> None:
    assert cusd_request("*100#") == 'AT+CUSD=1,"*100#",15'
    for bad in ('*100#"\r\nAT+CMGD=1,4', "", "*100#;", "A" * 3):
        with pytest.raises(ValueError):
            cusd_request(bad)


def base(**dev: Any) -> dict[str, Any]:
    return {"server": "http://127.0.0.1:8080", "journal": "/tmp/j.db",
            "device": [{"name": "a", "token": "t", "port": "/dev/x", **dev}]}  # fmt: skip


def test_balance_settings_are_validated() -> None:
    d = parse(base(dual_sim="cdsds", balance_ussd=["*100#", ""], balance_warn_below=[5, 0],
                   balance_interval_seconds=60)).devices[0]  # fmt: skip
    assert (d.balance_ussd, d.balance_warn_below, d.balance_interval_seconds) == (
        ("*100#", ""), (5.0, 0.0), 60.0
    )  # fmt: skip
    for bad, words in (
        ({"balance_ussd": "*100#"}, "balance_ussd: a list"),
        ({"balance_ussd": ["*100#", "*101#"]}, "2 given for 1 SIM slot"),
        ({"balance_ussd": ['*100#"']}, "balance_ussd[0]: a USSD code is digits"),
        ({"balance_warn_below": [-1]}, "balance_warn_below: a list of amounts"),
        ({"balance_interval_seconds": 0}, "device[0].balance_interval_seconds: must be between"),
    ):
        with pytest.raises(ConfigError, match=re.escape(words)):
            parse(base(**bad))


def test_the_documented_balance_interval_is_the_default() -> None:
    documented = re.search(r"^balance_interval_seconds = (\d+)", DOC, flags=re.M)
    assert documented is not None
    default = DeviceConfig(name="a", token="t", server="http://x").balance_interval_seconds
    assert float(documented.group(1)) == default


def test_token_shape_is_the_servers() -> None:
    for token in (new_token(), new_token(), "abc", "A" * 32, "g" * 32, "0" * 31, "0" * 33):
        assert (token_problem(token) is None) == looks_like_token(token), token
    assert token_problem("abc") == (
        "the token has 3 characters; a device token has 32 (lowercase hex)"
    )


def fake_proc(tmp_path: Path, port: str, *, lock: bool) -> Roots:
    proc, run = tmp_path / "proc", tmp_path / "run"
    for pid, name in ((501, "minicom"), (777, "simhive-emulat")):
        (proc / str(pid) / "fd").mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(name + "\n")
        os.symlink(port, proc / str(pid) / "fd" / "3")
    ino = os.stat(port).st_ino
    (proc / "locks").write_text(
        f"1: FLOCK  ADVISORY  WRITE 501 00:19:{ino} 0 EOF\n" if lock else ""
    )
    (run / "lock").mkdir(parents=True)
    return Roots(proc=proc, run=run)


def test_the_locking_process_is_named_first(tmp_path: Path) -> None:
    port = tmp_path / "ttyUSB2"
    port.write_text("")
    found = holders(str(port), fake_proc(tmp_path, str(port), lock=True))
    assert [(h.pid, h.name, h.how) for h in found] == [
        (501, "minicom", "lock"), (777, "simhive-emulat", "open")
    ]  # fmt: skip
    roots = fake_proc(tmp_path / "b", str(port), lock=False)
    (roots.run / "lock" / "LCK..ttyUSB2").write_text("       501\n")  # a UUCP lock file
    assert holders(str(port), roots)[0].how == "lockfile"
    text = explain_open_error(str(port), errno.EBUSY, "busy", roots)
    assert text.startswith(f"port busy: {port} is held by minicom (pid 501)")


def test_a_missing_port_says_so(tmp_path: Path) -> None:
    text = explain_open_error(str(tmp_path / "ttyUSB9"), errno.ENOENT, "x")
    assert text.startswith(f"no such port {tmp_path / 'ttyUSB9'}") and "by-id" in text


class _Ignore:
    """A Receiver for a port that is only opened."""

    def data_received(self, data: bytes) -> None:
        pass

    def link_lost(self, why: str) -> None:
        pass


def test_the_agents_open_error_names_the_dialout_group() -> None:
    """What the agent logs when its port may not be opened: the group and the usermod line,
    not a bare "[Errno 13] Permission denied". As root the open runs as user nobody."""
    import asyncio
    import grp
    import json

    from simhive.agent.modem.transport import SerialTransport, TransportClosed

    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)

    def attempt() -> str:
        try:
            asyncio.run(SerialTransport(path).open(_Ignore()))
        except TransportClosed as exc:
            return str(exc)
        return "opened"

    try:
        if os.geteuid() != 0:
            os.chmod(path, 0)
            message = attempt()
        else:
            os.chown(path, 0, grp.getgrnam("dialout").gr_gid)
            os.chmod(path, 0o660)
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover (the child)
                try:
                    os.close(r)
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                    os.write(w, json.dumps(attempt()).encode())
                finally:
                    os._exit(0)
            os.close(w)
            with os.fdopen(r, "rb") as pipe:
                message = json.loads(pipe.read())
            os.waitpid(pid, 0)
    finally:
        os.close(master)
    assert message.startswith(f"cannot open {path}: permission denied: "), message
    assert "sudo usermod -aG dialout" in message and "Errno" not in message


class _Modem:
    """Just enough of a Modem for the balance checker: ready, one SIM, scripted USSD."""

    def __init__(self, replies: list[str]) -> None:
        from simhive.agent.modem.base import ModemState

        self.state = ModemState.READY
        self.replies = replies
        self.asked: list[tuple[str, int]] = []

    async def ussd(self, code: str, *, slot: int = 0, wait: float = 30.0) -> Any:
        self.asked.append((code, slot))
        return parse_cusd(self.replies.pop(0))


async def test_balance_checker_reports_warns_once_and_retries_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import asyncio
    import logging

    from simhive.agent.balance import RETRY_SECONDS, BalanceChecker

    cfg = parse(base(balance_ussd=["*100#"], balance_warn_below=[5])).devices[0]
    modem = _Modem(['0,"Guthaben 3,50 EUR",15', '0,"Guthaben 3,50 EUR",15', "4"])
    changes: list[int] = []
    checker = BalanceChecker(cfg, modem, lambda: changes.append(1))  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, logger="simhive.agent.balance")
    assert await checker._check(0, "*100#") == cfg.balance_interval_seconds
    assert checker.for_slot(0) is not None and checker.for_slot(0)["amount"] == 3.5  # type: ignore[index]
    assert await checker._check(0, "*100#") == cfg.balance_interval_seconds
    assert await checker._check(0, "*100#") == RETRY_SECONDS  # "not supported": try again soon
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "below 5" in w]) == 1  # the same low amount: once
    assert "the network answered operation not supported" in warnings[-1]
    assert changes == [1, 1] and modem.asked == [("*100#", 0)] * 3

    # A backend without USSD (gammu) is told once, and nothing is asked.
    class NoUssd:
        state = modem.state

    quiet = BalanceChecker(cfg, NoUssd(), lambda: None)  # type: ignore[arg-type]
    await asyncio.wait_for(quiet.run(), 5)
    assert "cannot send USSD; balance not checked" in caplog.records[-1].getMessage()
